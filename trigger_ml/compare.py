"""Compare models side by side: physics, fidelity, latency and resources, Pareto fronts.

``trigger-ml compare [MODEL ...]`` builds whatever is missing (each stage is cached), then
writes under ``comparison/``::

    table.md, table.csv, table.json    one row per model
    rej70_vs_latency.png               light rejection at 70 % vs latency (ns), Pareto front
    rej70_vs_lut.png                   light rejection at 70 % vs LUTs, Pareto front
    roc.png, roc_c.png                 light / c rejection vs b-efficiency of every model, ratio
                                       panel to the reference model (--reference, default the first)

Physics is measured on the evaluation sample of record (:mod:`trigger_ml.evaluation`):
firmware models on what the firmware computes (the emulator of its firmware program, checked
against the C simulation), float references (``hls.enabled: false``) on the float model, with
no cost figures. Symbolic rows stay on their test split and say so in ``physics sample``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from trigger_ml.artefacts import ComparisonRow, ComparisonTable, Report, read_report, write_table_json
from trigger_ml.config import ModelConfig, PhysicsConfig
from trigger_ml.errors import UsageError
from trigger_ml.fileio import atomic_path, write_text_atomic
from trigger_ml.logs import stage_logger
from trigger_ml.workspace import Workspace

logger = stage_logger("compare")

NO_FIRMWARE = "no firmware"
COLUMNS = (
    ("model", "model"),
    ("kind", "kind"),
    ("n_params", "parameters"),
    ("n_seeds", "seeds"),
    ("auc_b_vs_light", "AUC b vs light"),
    ("auc_b_vs_light_seed_std", "± seeds"),
    ("rej_light_at_70", "light rej @70%"),
    ("rej_light_at_70_stat", "± stat"),
    ("rej_light_at_70_seed_std", "± seeds"),
    ("rej_light_at_77", "light rej @77%"),
    ("rej_light_at_77_stat", "± stat"),
    ("rej_light_at_77_seed_std", "± seeds"),
    ("rej_c_at_70", "c rej @70%"),
    ("rej_c_at_77", "c rej @77%"),
    ("physics_sample", "physics sample"),
    ("exact_fraction", "C sim == reference"),
    ("latency_cycles", "latency (cycles)"),
    ("latency_ns", "latency (ns)"),
    ("initiation_interval", "II"),
    ("LUT", "LUT"),
    ("FF", "FF"),
    ("DSP", "DSP"),
    ("BRAM_18K", "BRAM_18K"),
    ("cost_source", "cost source"),
    ("blocks", "+ blocks"),
    ("ant_factor", "ant factor"),
)


def ant_factor(auc: float, n_params: int) -> float:
    """The seed paper's efficiency figure: 10^5 / ((1 - AUC) * N_params)."""
    return 1e5 / ((1.0 - auc) * n_params) if auc < 1 and n_params else float("inf")


DEFAULT_COST_SOURCE = "da4ml"
"""The cost source of every firmware row unless asked otherwise: da4ml's cost model of the
firmware's adder graph, the one source here validated against post-route implementations
(docs/cost-model.md)."""
CostSource = Literal["da4ml", "estimate", "rtl", "vendor", "best"]
"""Where the cost columns of a comparison come from (``best``: each model's most trustworthy)."""
COST_SOURCES: tuple[str, ...] = get_args(CostSource)
COST_KEYS = ("latency_cycles", "latency_ns", "initiation_interval", "LUT", "FF", "DSP", "BRAM_18K")


def cost_columns(project: Path, cost_source: str) -> dict[str, Any]:
    """The cost columns of one firmware row from ``cost_source`` only (``best``: the most
    trustworthy each project has). A project without that source gets ``n/a`` figures and
    the reason in ``cost_source``, so one table never mixes sources silently."""
    from trigger_ml.cost import cost_for_project
    from trigger_ml.cost.sections import add_blocks, stored_blocks

    cost = cost_for_project(project)
    section = cost["best"] if cost_source == "best" else cost["sources"].get(cost_source)
    if section is None:
        reason = cost.get("unavailable", {}).get(cost_source, f"no {cost_source} figures for this project")
        return {**dict.fromkeys(COST_KEYS), "cost_source": f"n/a ({reason})", "blocks": "n/a"}
    # trigger_top: the front end and the decision after the network, each from its own source,
    # added to every row that has them.
    blocks = stored_blocks(project)
    section = add_blocks(section, blocks)
    return {
        "blocks": ", ".join(f"{name} ({blocks[name]['source']})" for name in sorted(blocks)) or "none",
        "latency_cycles": section["latency_cycles"]["max"],
        "latency_ns": section["latency_ns"]["max"],
        "initiation_interval": section["initiation_interval"],
        "cost_source": section["source"],
        **{key: section["resources"][key] for key in ("LUT", "FF", "DSP", "BRAM_18K")},
    }


PHYSICS_KEYS = (
    "auc_b_vs_light",
    "rej_light_at_70",
    "rej_light_at_70_stat",
    "rej_light_at_77",
    "rej_light_at_77_stat",
    "rej_c_at_70",
    "rej_c_at_77",
)


def record_discriminant(report: Report, project_dir: Path, f_c: float) -> tuple[np.ndarray, np.ndarray]:
    """(D_b, classes) of a report's physics of record, from its predictions file: the D_b of
    stored logits at ``f_c``, or a stored discriminant as it is."""
    import h5py

    from trigger_ml.physics import discriminant_from_logits

    predictions = report.record.physics.predictions
    with h5py.File(Path(project_dir) / predictions.path, "r") as handle:
        values, classes = handle[predictions.dataset][()], handle["classes"][()]
    if predictions.dataset.startswith("logits_"):
        return discriminant_from_logits(values.astype(np.float64), f_c), classes
    return np.asarray(values, dtype=np.float64).reshape(-1), classes


def table_row(
    report: Report, project_dir: Path, cost_source: str = DEFAULT_COST_SOURCE, f_c: float | None = None
) -> tuple[ComparisonRow, np.ndarray, np.ndarray]:
    """The comparison row of any report (network or symbolic), from its ``record`` and the
    project's cost; also the discriminant of record (D_b at ``f_c``, the physics default if
    None) and its classes."""
    record = report.record
    physics = record.physics
    sample = "evaluation" if physics.sample == "evaluation" else "test split"
    predictions = Path(project_dir) / physics.predictions.path
    row: dict[str, Any] = {
        "model": report.model,
        "kind": record.kind,
        "config_sha256": report.config_sha256,
        "n_params": record.n_params,
        "exact_fraction": record.fidelity.exact_fraction,
        "fidelity_reference": record.fidelity.label(),
        **cost_columns(project_dir, cost_source),
        "predictions": {"path": str(predictions), "logits": physics.predictions.dataset},
        "physics_sample": f"{sample} ({physics.n_jets} jets)",
        **{key: getattr(physics.metrics, key) for key in PHYSICS_KEYS},
    }
    row["ant_factor"] = ant_factor(row["auc_b_vs_light"], row["n_params"])
    disc, classes = record_discriminant(report, project_dir, PhysicsConfig().f_c if f_c is None else f_c)
    return ComparisonRow.model_validate(row), disc, classes


def _float_reference_row(config: ModelConfig, ws: Workspace) -> tuple[ComparisonRow, np.ndarray, np.ndarray]:
    """The row of a physics-only float model (no firmware, no report): its evaluation in the run."""
    from trigger_ml.evaluation import evaluate_float_reference, read_predictions
    from trigger_ml.physics import discriminant_from_logits
    from trigger_ml.pipeline import ensure_evaluation_data, ensure_trained

    run = ensure_trained(config, ws)
    evaluation, path = evaluate_float_reference(config, run, ensure_evaluation_data(config, ws))
    metrics = evaluation["metrics"]["float"]
    row: dict[str, Any] = {
        "model": config.name,
        "kind": f"{config.architecture.kind}, float",
        "config_sha256": config.digest(),
        "n_params": run.metrics["n_params"]["float"],
        "exact_fraction": NO_FIRMWARE,
        **dict.fromkeys(COST_KEYS, NO_FIRMWARE),
        "cost_source": NO_FIRMWARE,
        "blocks": NO_FIRMWARE,
        "predictions": {"path": str(path), "logits": "logits_float"},
        "physics_sample": f"evaluation ({evaluation['n_jets']} jets)",
        **{key: metrics.get(key) for key in PHYSICS_KEYS},
    }
    row["ant_factor"] = ant_factor(row["auc_b_vs_light"], row["n_params"])
    logits, classes = read_predictions(path, "float")
    return ComparisonRow.model_validate(row), discriminant_from_logits(logits, config.physics.f_c), classes


def model_row(
    config: ModelConfig, ws: Workspace, cost_source: str = DEFAULT_COST_SOURCE
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """One table row for ``config``, building what is missing (:func:`table_row` of its report);
    also its evaluation-sample discriminant D_b and classes. The row is the JSON content of a
    :class:`~trigger_ml.artefacts.ComparisonRow` (scans add to it)."""
    from trigger_ml.pipeline import ensure_hls

    if not config.hls.enabled:
        row, disc, classes = _float_reference_row(config, ws)
    else:
        ensure_hls(config, ws)
        project = ws.hls_dir(config.name)
        row, disc, classes = table_row(read_report(project), project, cost_source, config.physics.f_c)
    return row.as_json(), disc, classes


def pareto_front(cost: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (lower or equal cost and higher or equal gain,
    one of them strictly), ordered by cost."""
    order = np.lexsort((-gain, cost))
    front, best = [], -np.inf
    for i in order:
        if gain[i] > best:
            front.append(i)
            best = gain[i]
    return np.asarray(front, dtype=int)


def _fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}" if key.startswith(("auc_b_vs_light", "exact_fraction")) else f"{value:.1f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], cost_source: str = DEFAULT_COST_SOURCE) -> str:
    lines = [
        f"Cost figures of every firmware row: **{cost_source}**"
        + (" (the most trustworthy each model has: sources are mixed)" if cost_source == "best" else ""),
        "",
        "| " + " | ".join(label for _, label in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(key), key) for key, _ in COLUMNS) + " |")
    notes = [
        "",
        "Physics on the sample named in `physics sample`: the evaluation sample of record (generated "
        "independently of the training sample) for network models, firmware models as their firmware "
        "computes them (the bit-exact emulator, checked against the C simulation), float references in "
        "float; symbolic models on their test split.",
        "`± stat`: binomial statistical uncertainty of the light rejection to its left (light jets "
        "passing the cut); the cut's own uncertainty is not included.",
        "`seeds`: trainings per model (`trigger-ml compare --seeds N`, each with its own training seed, all "
        "on the same evaluation sample): physics figures are means over them, `± seeds` the standard "
        "deviation across them (the spread of one training); cost figures are those of the model's own "
        "seed (its firmware of record).",
        "`C sim == reference`: fraction of test jets whose C-simulation logits equal the QKeras model's "
        "(the float model's for post-training quantization) bit for bit.",
        "Cost figures: every firmware row from one source, named in `cost source` (da4ml: da4ml's cost "
        "model of the traced firmware adder graph; estimate: the analytic model of hls4ml's templates; rtl: "
        "Yosys cell counts; vendor: HLS/Vivado reports); n/a where a model has no figure from that source.",
        "Ant factor = 10^5 / ((1 - AUC) x parameters).",
    ]
    from trigger_ml.seeds import significance_lines

    return "\n".join(lines + notes + significance_lines(rows)) + "\n"


def csv_table(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([key for key, _ in COLUMNS])
    for row in rows:
        writer.writerow(["" if row.get(key) is None else row.get(key) for key, _ in COLUMNS])
    return buffer.getvalue()


SOURCE_MARKERS = {"estimate": "o", "rtl": "s", "vendor": "^", "da4ml": "D"}
"""Marker of each cost source in the front plots, so that mixed sources show."""


def plot_front(path: Path, rows: list[dict[str, Any]], x_key: str, x_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if isinstance(r.get(x_key), int | float) and r.get("rej_light_at_70")]
    fig, ax = plt.subplots(figsize=(7, 5))
    if points:
        x = np.array([float(r[x_key]) for r in points])
        y = np.array([float(r["rej_light_at_70"]) for r in points])
        err = np.array([float(r.get("rej_light_at_70_stat") or 0.0) for r in points])
        sources = [str(r.get("cost_source")) for r in points]
        for source in sorted(set(sources)):
            mine = np.array([s == source for s in sources])
            ax.errorbar(
                x[mine],
                y[mine],
                yerr=err[mine],
                fmt=SOURCE_MARKERS.get(source, "o"),
                capsize=3,
                zorder=3,
                label=f"cost: {source}",
            )
        for r, xi, yi in zip(points, x, y, strict=True):
            ax.annotate(r["model"], (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = pareto_front(x, y)
        ax.step(x[front], y[front], where="post", color="tab:red", label="Pareto front", zorder=2)
        ax.legend()
        if x.max() > 0 and x.min() > 0 and x.max() / x.min() > 20:
            ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("light-jet rejection at 70 % b-efficiency (± stat.)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


ROC_FILES = {"roc.png": "light", "roc_c.png": "c"}
"""The ROC plots of a comparison and the background of each."""


def plot_rocs(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], f_c: float) -> None:
    """Light rejection vs b-efficiency of each model's (logits, classes), D_b at ``f_c``, with
    the ratio to the first model (:func:`trigger_ml.plots.roc.plot_rejection`)."""
    from trigger_ml.physics import discriminant_from_logits
    from trigger_ml.plots.roc import plot_rejection

    discriminants = {
        name: (discriminant_from_logits(logits, f_c), classes) for name, (logits, classes) in curves.items()
    }
    plot_rejection(path, discriminants, "light")


def write_rocs(
    out_dir: Path,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    reference: str | None = None,
    label: Any = None,
) -> None:
    """``ROC_FILES`` of each model's (D_b, classes), ratio panel to ``reference`` (default: the
    first model), the sample ``label`` (:class:`trigger_ml.plots.style.SampleLabel`) on each."""
    from trigger_ml.plots.roc import plot_rejection

    for name, background in ROC_FILES.items():
        plot_rejection(out_dir / name, curves, background, reference, label)


def check_reference(reference: str | None, configs: list[ModelConfig | str]) -> str | None:
    """The compared model ``reference`` names (zoo spelling or canonical name), or a one-line
    error listing the models."""
    if reference is None:
        return None
    names = [c if isinstance(c, str) else c.name for c in configs]
    if reference in names:
        return reference
    from trigger_ml.config import load_model_config
    from trigger_ml.errors import TriggerMLError

    try:
        canonical = load_model_config(reference).name
    except TriggerMLError:
        canonical = None
    if canonical in names:
        return canonical
    raise UsageError(
        f"--reference {reference} is not one of the compared models",
        f"choose one of: {', '.join(names)}",
    )


def _sample_label(
    configs: list[ModelConfig | str], ws: Workspace, rows: list[ComparisonRow], n_jets: int
) -> Any:
    """The sample label of the comparison's ROC plots: the first network model's evaluation
    sample (symbolic rows, on their test split, are named as such)."""
    from trigger_ml.pipeline import ensure_evaluation_data
    from trigger_ml.plots.style import sample_label

    networks = [c for c in configs if not isinstance(c, str)]
    if not networks:
        return None
    which = "evaluation sample"
    if any(row.physics_sample.startswith("test split") for row in rows):
        which += "; symbolic: test split"
    return sample_label(ensure_evaluation_data(networks[0], ws), n_jets, which, networks[0].physics.f_c)


def compare(
    configs: list[ModelConfig | str],
    ws: Workspace,
    out_dir: Path | None = None,
    cost_source: str = DEFAULT_COST_SOURCE,
    seeds: int = 1,
    scheduler: str | None = None,
    n_workers: int | None = None,
    reference: str | None = None,
) -> Path:
    """Build what is missing for every model, then write the table and plots; returns the folder.

    A plain string names a symbolic model (``<teacher>-sr``, see trigger_ml.symbolic). Every
    firmware row takes its cost from ``cost_source`` (one of ``COST_SOURCES``). With
    ``seeds`` > 1 every network model is trained with that many training seeds on Dask
    (:mod:`trigger_ml.seeds`; ``scheduler``/``n_workers`` as for scans) and its physics
    figures are means over the seeds with their spread. The ROC plots' ratio panels divide by
    the model ``reference`` (default: the first).
    """
    if cost_source not in COST_SOURCES:
        raise UsageError(f"unknown cost source '{cost_source}'", f"choose one of: {', '.join(COST_SOURCES)}")
    from trigger_ml.seeds import check_seed_count, spread, train_seeds
    from trigger_ml.symbolic import compare_row

    check_seed_count(seeds)
    reference = check_reference(reference, configs)
    networks = [c for c in configs if not isinstance(c, str)]
    seed_rows = (
        train_seeds(networks, seeds, ws, cost_source, scheduler, n_workers) if seeds > 1 and networks else {}
    )

    out_dir = out_dir or ws.root / "comparison"
    rows: list[ComparisonRow] = []
    curves = {}
    for config in configs:
        logger.info(config if isinstance(config, str) else config.name)
        if isinstance(config, str):
            row, disc, classes = compare_row(config, ws, cost_source=cost_source)
            content = {**row.as_json(), "n_seeds": 1}
        else:
            content, disc, classes = model_row(config, ws, cost_source=cost_source)
            content.update(spread(seed_rows.get(config.name, [content])))
            content["ant_factor"] = ant_factor(content["auc_b_vs_light"], content["n_params"])
        del content["predictions"]
        row = ComparisonRow.model_validate(content)
        rows.append(row)
        curves[row.model] = (disc, classes)
    table = ComparisonTable(columns=[k for k, _ in COLUMNS], cost_source=cost_source, rows=rows)
    plain = [row.as_json() for row in rows]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_text_atomic(tmp / "table.md", markdown_table(plain, cost_source))
        write_text_atomic(tmp / "table.csv", csv_table(plain))
        write_table_json(tmp / "table.json", table)
        plot_front(tmp / "rej70_vs_latency.png", plain, "latency_ns", "latency (ns)")
        plot_front(tmp / "rej70_vs_lut.png", plain, "LUT", "LUT")
        first = curves[reference or rows[0].model][1] if rows else np.zeros(0)
        write_rocs(tmp, curves, reference, _sample_label(configs, ws, rows, len(first)))
    return out_dir
