"""The distillation stage: symbolic regression of a teacher's outputs, then firmware.

``distill(teacher, settings, ws)`` builds, each cached and written atomically::

    runs/<teacher>-sr/<key>/          the fit (key: teacher, data, settings, backend)
        settings.json                 settings, backend choice and why, teacher, flat inputs
        expressions.json              every candidate (complexity, AUC, MSE, text), the
                                      Pareto front, the sweep over complexity, the choice
        chosen.sympy                  srepr of the deployed expression(s), a sympy Tuple
        chosen.txt                    the chosen expression(s) as text, with feature names
        front.png, report.md          AUC vs complexity; the fit in words
    hls_projects/<teacher>-sr/        the firmware (same layout as the networks' projects)
        hls4ml_prj/                   hls4ml symbolic project (firmware/, build_prj.tcl, ...)
        csim_predictions.h5           test-split discriminants of teacher, expression, C sim
        report.json, report.md, roc.png

Inputs are the *flat* jet-level inputs: a dense teacher's own inputs; for a Deep Set
teacher those of ``dense-small`` (leading tracks' features flattened, plus jet features) on
the teacher's sample and split. Targets are the teacher's outputs on a subsample of the
training split (its discriminant D_b and/or its logits). Candidates: the backend's front,
one-input least-squares fits and, for D_b, the hardware-aware sums and the backend's front
with few-bit constants (``trigger_ml.symbolic.sums``); each gets its estimated latency, the
front is over (complexity, latency, validation score: AUC or a light rejection,
``selection_metric``). The validation split chooses among candidates, the test split
measures them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import sympy

from trigger_ml.config import FixedPoint, ModelConfig, load_model_config, parse_model_config
from trigger_ml.data.dataset import PreparedData, model_inputs, prepare, quantize_to_fixed, read_sample
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import (
    atomic_path,
    read_json,
    sha256_of_file,
    sha256_of_obj,
    write_json_atomic,
    write_text_atomic,
)
from trigger_ml.hls.stage import is_current
from trigger_ml.physics import CLASS_NAMES, discriminant_from_logits, tagging_metrics
from trigger_ml.symbolic import SR_SUFFIX
from trigger_ml.symbolic.backends import BackendChoice, Candidate, choose_backend, feature_symbols
from trigger_ml.symbolic.cost import SYMBOLIC_COST_UNAVAILABLE, expression_cost
from trigger_ml.symbolic.firmware import (
    build_project,
    count_constants,
    csim_predict,
    evaluate,
    fixed_point_step,
    fixed_type,
    lut_specs,
    snap_constants,
    unsupported_reason,
)
from trigger_ml.symbolic.metrics import STORED_REJECTIONS, as_logits, discriminant_metrics
from trigger_ml.symbolic.selection import choose, metric_label, ranking_key, validation_score
from trigger_ml.symbolic.settings import FLAT_INPUT_MODEL, SymbolicConfig
from trigger_ml.symbolic.sums import snapped_candidates, sum_candidates
from trigger_ml.workspace import Workspace

FORMAT_VERSION = 2
PROJECT_SUBDIR = "hls4ml_prj"
SINGLE_INPUT = "least squares on one input"
CLOCK_UNCERTAINTY = "12.5%"  # hls4ml's default for its symbolic backend, stated explicitly


# --- inputs and targets -------------------------------------------------------------------


def symbolic_name(teacher: ModelConfig) -> str:
    """Name of the distilled model: ``<teacher>-sr``."""
    return teacher.name + SR_SUFFIX


def flat_input_config(teacher: ModelConfig) -> ModelConfig:
    """The configuration whose (dense) inputs the expressions read.

    A dense teacher: itself. A Deep Set: the teacher's sample, split and input type with the
    inputs of the ``dense-small`` zoo model (``architecture.kind: dense``); the teacher's
    per-layer types, pruning and HGQ settings belong to its own layers and are dropped.
    """
    if teacher.architecture.kind == "dense":
        return teacher
    flat = load_model_config(FLAT_INPUT_MODEL)
    data = teacher.model_dump(mode="json")
    data["name"] = f"{teacher.name}-flat-inputs"
    data["inputs"] = flat.inputs.model_dump(mode="json")
    data["architecture"] = flat.architecture.model_dump(mode="json")
    data["hls"]["track_parallelization"] = None
    # the teacher's per-layer types, pruning and quantization kind describe its own layers
    for key in ("layers", "kind", "hgq"):
        data["quantization"][key] = None
    data["training"]["pruning"] = None
    return parse_model_config(data, f"flat inputs of {teacher.name}")


def flat_feature_names(config: ModelConfig) -> list[str]:
    """Column names of the flat inputs: ``<feature>_<track number>`` then the jet features."""
    names = [
        f"{feature}_{track + 1}"
        for track in range(config.inputs.max_tracks)
        for feature in config.inputs.track_features
    ]
    return names + list(config.inputs.jet_features)


@dataclass(frozen=True)
class DistillData:
    """Flat inputs (quantized onto the input type) and teacher outputs of each split used."""

    x: dict[str, np.ndarray]  # "fit" (training subsample), "val", "test" -> (n, n_flat) float64
    logits: dict[str, np.ndarray]  # same keys -> teacher logits (n, 3) float64
    classes: dict[str, np.ndarray]
    indices: dict[str, np.ndarray]  # row numbers in the sample file
    feature_names: list[str]
    flat: PreparedData


@dataclass(frozen=True)
class Job:
    """One distillation: what it distils, with what, where it writes, its cache key."""

    name: str  # <teacher>-sr
    teacher: ModelConfig
    settings: SymbolicConfig
    choice: BackendChoice
    ws: Workspace
    key: str  # hash of teacher, data, settings, backend: names the fit, marks the project
    data_path: Path
    data_sha256: str
    teacher_report: dict[str, Any] | None  # the teacher's HLS report (None: no firmware)
    teacher_cost: dict[str, Any] | None  # its best cost section

    @property
    def fit_dir(self) -> Path:
        return self.ws.run_dir(self.name, self.key)

    @property
    def project_dir(self) -> Path:
        return self.ws.hls_dir(self.name)


def _teacher_model(teacher: ModelConfig, run: Any) -> tuple[Any, str]:
    kind = "qkeras" if teacher.quantization.enabled else "float"
    return run.load_model(teacher, kind), kind


def load_distill_data(
    teacher: ModelConfig, run: Any, data_path: Path, settings: SymbolicConfig
) -> DistillData:
    """Flat inputs and the teacher's logits on the fit subsample, validation and test splits."""
    sample = read_sample(data_path)
    teacher_data = prepare(sample, teacher, scaling=run.scaling, jet_scaling=run.jet_scaling)
    flat_config = flat_input_config(teacher)
    flat = teacher_data if flat_config is teacher else prepare(sample, flat_config)
    for split, rows in teacher_data.indices.items():
        if not np.array_equal(rows, flat.indices[split]):
            raise TriggerMLError(f"flat inputs and teacher disagree on the {split} split rows")
    n_train = len(teacher_data.indices["train"])
    pick = np.sort(
        np.random.default_rng(settings.seed).choice(n_train, min(settings.subsample, n_train), replace=False)
    )
    model, _ = _teacher_model(teacher, run)
    x, logits, classes, indices = {}, {}, {}, {}
    for key, split, rows in (("fit", "train", pick), ("val", "val", None), ("test", "test", None)):
        rows = slice(None) if rows is None else rows
        teacher_x = model_inputs(teacher_data.inputs[split][rows], teacher)
        logits[key] = model.predict(teacher_x, batch_size=4096, verbose=0).astype(np.float64)
        # The firmware's input encoding, whether or not the teacher itself is quantized.
        x[key] = quantize_to_fixed(flat.inputs[split][rows], flat_config.quantization.input).astype(
            np.float64
        )
        classes[key] = teacher_data.classes[split][rows]
        indices[key] = teacher_data.indices[split][rows]
    return DistillData(x, logits, classes, indices, flat_feature_names(flat_config), flat)


def select_features(x: np.ndarray, y: np.ndarray, k: int | None) -> np.ndarray:
    """Columns of the ``k`` inputs most rank-correlated with ``y`` (|Spearman rho|), in order."""
    from scipy.stats import spearmanr

    if k is None or k >= x.shape[1]:
        return np.arange(x.shape[1])
    rho = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        if np.ptp(x[:, j]) > 0:
            rho[j] = abs(spearmanr(x[:, j], y).statistic)
    return np.sort(np.argsort(-np.nan_to_num(rho), kind="stable")[:k])


# --- expressions --------------------------------------------------------------------------


def expression_complexity(expr: sympy.Expr) -> int:
    """Nodes of the expression as a binary tree: leaves, operators (an n-ary sum or product
    counts n - 1), functions. The same measure for every backend."""
    if not expr.args:
        return 1
    if expr.is_Add or expr.is_Mul:
        return len(expr.args) - 1 + sum(expression_complexity(arg) for arg in expr.args)
    return 1 + sum(expression_complexity(arg) for arg in expr.args)


def readable(expr: sympy.Expr, feature_names: list[str]) -> str:
    """The expression with ``x<i>`` replaced by the flat input names."""
    return str(expr.xreplace({s: sympy.Symbol(feature_names[int(s.name[1:])]) for s in expr.free_symbols}))


def _fit_output(
    choice: BackendChoice, x: np.ndarray, y: np.ndarray, settings: SymbolicConfig, log: bool, label: str
) -> tuple[list[Candidate], list[int], float]:
    """Run the backend on the selected columns; candidates over the global ``x<i>`` symbols."""
    columns = select_features(x, y, settings.select_features)
    if log:
        print(
            f"[distill] {label}: {choice.backend.name} on {len(y)} jets, {len(columns)} inputs, "
            f"complexity up to {max(settings.max_complexity)}",
            flush=True,
        )
    start = time.perf_counter()
    found = choice.backend.fit(x[:, columns], y, settings)
    seconds = time.perf_counter() - start
    local, glob = feature_symbols(len(columns)), feature_symbols(x.shape[1])
    mapping = {local[i]: glob[c] for i, c in enumerate(columns)}
    candidates = [
        Candidate(c.expression.xreplace(mapping), c.loss, c.backend_complexity, choice.backend.name)
        for c in found
    ]
    return candidates, [int(c) for c in columns], seconds


def single_input_fits(x: np.ndarray, y: np.ndarray, columns: list[int]) -> list[Candidate]:
    """Least-squares ``a * x_j + b`` for each offered input: the front's cheapest members.

    The backends rank expressions by their error on the target, not by AUC; these anchor the
    low-complexity end of the AUC front (an input the search passed over may rank jets well).
    """
    symbols = feature_symbols(x.shape[1])
    out = []
    for j in columns:
        design = np.column_stack([x[:, j], np.ones(len(x))])
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        loss = float(np.mean((design @ np.array([a, b]) - y) ** 2))
        out.append(Candidate(sympy.Float(a, 17) * symbols[j] + sympy.Float(b, 17), loss, 3, SINGLE_INPUT))
    return out


def _discriminant(outputs: np.ndarray, kind: str, f_c: float) -> np.ndarray:
    return outputs[:, 0] if kind == "discriminant" else discriminant_from_logits(outputs, f_c)


def pareto_indices(complexity: list[int], latency: list[int], auc: list[float]) -> list[int]:
    """Candidates no other beats in (complexity, latency, AUC): none has lower or equal
    complexity and latency and higher or equal AUC, one of them strictly. Ordered by input."""
    points = list(zip(complexity, latency, auc, strict=True))

    def beats(a: tuple[int, int, float], b: tuple[int, int, float]) -> bool:
        return a[0] <= b[0] and a[1] <= b[1] and a[2] >= b[2] and a != b

    return [i for i, p in enumerate(points) if not any(beats(q, p) for q in points)]


def _score(exprs: list[sympy.Expr], kind: str, data: DistillData, f_c: float) -> dict[str, Any]:
    """Complexity, MSE, AUC and light rejections at 70 % / 77 % (validation, test) of one
    model (one or three expressions); the metrics are ``tagging_metrics``'."""
    row: dict[str, Any] = {"complexity": sum(expression_complexity(e) for e in exprs)}
    reason = next((r for r in map(unsupported_reason, exprs) if r), None)
    row["firmware"] = reason is None
    if reason:
        row["unsupported"] = reason
    for split in ("val", "test"):
        outputs = evaluate(exprs, data.x[split])
        disc = _discriminant(outputs, kind, f_c)
        target = (
            discriminant_from_logits(data.logits[split], f_c)[:, None]
            if kind == "discriminant"
            else data.logits[split]
        )
        finite = np.all(np.isfinite(outputs))
        row[f"mse_{split}"] = float(np.mean((outputs - target) ** 2)) if finite else None
        metrics = discriminant_metrics(disc, data.classes[split]) if finite else {}
        row[f"auc_{split}"] = metrics.get("auc_b_vs_light")
        for key in STORED_REJECTIONS:
            row[f"{key}_{split}"] = metrics.get(key)
    return row


# --- the fit ------------------------------------------------------------------------------


def run_fit(
    teacher: ModelConfig,
    data: DistillData,
    settings: SymbolicConfig,
    choice: BackendChoice,
    teacher_cost: dict[str, Any] | None,
    log: bool,
) -> dict[str, Any]:
    """All candidates, the Pareto front, the sweep and the choice (expressions.json content)."""
    f_c = teacher.physics.f_c
    kind = "discriminant" if "discriminant" in settings.targets else "logits"
    fits: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    seconds = cpu_seconds = 0.0
    for target in settings.targets:
        outputs = ["discriminant"] if target == "discriminant" else [f"logit_{c}" for c in CLASS_NAMES]
        per_output = {}
        for i, output in enumerate(outputs):
            y = (
                discriminant_from_logits(data.logits["fit"], f_c)
                if target == "discriminant"
                else data.logits["fit"][:, i]
            )
            cpu = time.process_time()
            candidates, columns, took = _fit_output(choice, data.x["fit"], y, settings, log, output)
            cpu = time.process_time() - cpu
            candidates += single_input_fits(data.x["fit"], y, columns)
            sums_seconds = 0.0
            if target == "discriminant" and settings.sums.enabled:
                sums_start = time.perf_counter()
                candidates += snapped_candidates(
                    [c for c in candidates if c.source == choice.backend.name],
                    data.x["fit"],
                    y,
                    data.x["val"],
                    data.classes["val"],
                    settings,
                )
                candidates += sum_candidates(
                    data.x["fit"],
                    y,
                    data.x["val"],
                    data.classes["val"],
                    [int(c) for c in select_features(data.x["fit"], y, settings.sums.features)],
                    [int(c) for c in select_features(data.x["fit"], y, settings.sums.product_features)]
                    if settings.sums.product_features
                    else [],
                    settings,
                )
                sums_seconds = time.perf_counter() - sums_start
                if log:
                    print(f"[distill] {output}: sums and snapped front in {sums_seconds:.0f} s", flush=True)
            seconds += took + sums_seconds
            cpu_seconds += cpu
            per_output[output] = candidates
            fits[output] = {
                "inputs": [data.feature_names[c] for c in columns],
                "candidates": [
                    {
                        "complexity": expression_complexity(c.expression),
                        "backend_complexity": c.backend_complexity,
                        "train_mse": c.loss,
                        "expression": str(c.expression),
                        "source": c.source,
                    }
                    for c in candidates
                ],
                "seconds": took,
                "sums_seconds": sums_seconds,
                "cpu_seconds": cpu,
            }
        if target != kind:
            continue
        if kind == "discriminant":
            groups = [([c.expression], c.source) for c in per_output["discriminant"]]
        else:  # one logits model per sweep limit: the best fit of each class within it
            groups = []
            for limit in settings.max_complexity:
                best = [
                    min(
                        (c for c in per_output[o] if expression_complexity(c.expression) <= limit),
                        key=lambda c: c.loss,
                        default=None,
                    )
                    for o in outputs
                ]
                if all(best):
                    groups.append(([c.expression for c in best], choice.backend.name))
        for exprs, source in groups:
            models.append({"expressions": exprs, "source": source, **_score(exprs, kind, data, f_c)})
    result = _choose(teacher, data, settings, choice, teacher_cost, kind, models, fits)
    result.update(search_seconds=seconds, search_cpu_seconds=cpu_seconds)
    return result


def teacher_scores(disc: dict[str, np.ndarray], classes: dict[str, np.ndarray]) -> dict[str, Any]:
    """The teacher's AUC and light rejections (validation, test) as the candidates store them."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        metrics = discriminant_metrics(disc[split], classes[split])
        out[f"auc_{split}"] = float(metrics["auc_b_vs_light"])
        for key in STORED_REJECTIONS:
            out[f"{key}_{split}"] = metrics[key]
    return out


def _choose(
    teacher: ModelConfig,
    data: DistillData,
    settings: SymbolicConfig,
    choice: BackendChoice,
    teacher_cost: dict[str, Any] | None,
    kind: str,
    models: list[dict[str, Any]],
    fits: dict[str, Any],
) -> dict[str, Any]:
    """Front, latency of its members, the choice (docs/symbolic.md) and the sweep."""
    f_c = teacher.physics.f_c
    metric = settings.selection_metric
    n_light = int(np.count_nonzero(data.classes["val"] == CLASS_NAMES.index("light")))
    usable = [m for m in models if m["firmware"] and m["auc_val"] is not None]
    if not usable:
        raise TriggerMLError(
            "the search found no expression that can become firmware", "widen the search (generations)"
        )
    # Deduplicate (the same expression can come from several generations or limits).
    unique = {tuple(str(e) for e in m["expressions"]): m for m in usable}
    usable = sorted(unique.values(), key=ranking_key(metric, n_light))
    teacher_latency = teacher_cost["latency_cycles"]["max"] if teacher_cost else None
    budget = (
        settings.max_latency_fraction * teacher_latency
        if teacher_latency is not None and settings.max_latency_fraction is not None
        else None
    )
    hls = teacher.hls
    for m in usable:
        deployed = [snap_constants(e, settings.precision) for e in m["expressions"]]
        cost = expression_cost(
            deployed,
            settings.precision,
            hls.part,
            hls.clock_period_ns,
            CLOCK_UNCERTAINTY,
            settings.lut.table_size,
        )
        m["latency_cycles"] = cost["latency_cycles"]["max"]
        m["within_latency_budget"] = budget is None or m["latency_cycles"] <= budget + 1e-9
    front = [
        usable[i]
        for i in pareto_indices(
            [m["complexity"] for m in usable],
            [m["latency_cycles"] for m in usable],
            [validation_score(m, metric, n_light) for m in usable],
        )
    ]
    teacher_row = teacher_scores(
        {split: discriminant_from_logits(data.logits[split], f_c) for split in ("val", "test")}, data.classes
    )
    chosen, selection = choose(
        front, settings, validation_score(teacher_row, metric, n_light), n_light, budget
    )
    sweep = []
    for limit in settings.max_complexity:
        inside = [m for m in usable if m["complexity"] <= limit]
        best = max(inside, key=lambda m: validation_score(m, metric, n_light), default=None)
        sweep.append({"max_complexity": limit, "model": usable.index(best) if best else None})

    def public(m: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in m.items() if k != "expressions"}
        out["expressions"] = [str(e) for e in m["expressions"]]
        out["readable"] = [readable(e, data.feature_names) for e in m["expressions"]]
        return out

    return {
        "format_version": FORMAT_VERSION,
        "output": kind,
        "backend": choice.as_dict(),
        "feature_names": data.feature_names,
        "teacher": {**teacher_row, "latency_cycles": teacher_latency},
        "selection": selection,
        "models": [public(m) for m in usable],
        "front": [usable.index(m) for m in front],
        "sweep": sweep,
        "chosen": usable.index(chosen),
        "fits": fits,
        "_chosen_expressions": chosen["expressions"],
    }


def _plot_front(path: Path, result: dict[str, Any], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result["selection"].get("metric", "auc")
    key = f"{metric}_val"

    def shown(rows: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
        kept = [m for m in rows if m.get(key) is not None]
        return [m["complexity"] for m in kept], [m[key] for m in kept]

    models = result["models"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(*shown(models), s=12, c="0.6", label="candidates")
    front = [m for m in (models[i] for i in result["front"]) if m.get(key) is not None]
    points = ax.scatter(
        *shown(front),
        s=24,
        c=[m["latency_cycles"] for m in front],
        cmap="viridis",
        label=f"Pareto front (complexity, latency, {metric_label(metric)})",
    )
    fig.colorbar(points, ax=ax, label="latency (cycles, estimate)")
    ax.scatter(
        *shown([models[result["chosen"]]]),
        marker="*",
        s=150,
        color="tab:green",
        label="chosen",
        zorder=3,
    )
    if result["teacher"].get(key) is not None:
        ax.axhline(result["teacher"][key], color="k", ls="--", label="teacher")
    if metric != "auc":
        ax.set_yscale("log")
    ax.set_xlabel("expression complexity (nodes)")
    ax.set_ylabel(
        "AUC b vs light (validation)" if metric == "auc" else f"{metric_label(metric)} (validation)"
    )
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fit_markdown(name: str, result: dict[str, Any]) -> str:
    backend, teacher = result["backend"], result["teacher"]
    metric = result["selection"].get("metric", "auc")
    rejections = ["rej_light_at_70"] + ([metric] if metric == "rej_light_at_77" else [])
    lines = [
        f"# {name}: symbolic fit",
        "",
        f"- backend: **{backend['used']}** {backend['version']} (requested {backend['requested']}: {backend['reason']})",
        f"- output: {result['output']}; selection by validation {metric_label(metric)}: {result['selection']['rule']}",
        f"- teacher AUC (validation / test): {teacher['auc_val']:.4f} / {teacher['auc_test']:.4f}",
    ]
    for key in rejections:
        lines.append(
            f"- teacher {metric_label(key)} (validation / test): "
            f"{_fmt(teacher.get(f'{key}_val'), '{:.1f}')} / {_fmt(teacher.get(f'{key}_test'), '{:.1f}')}"
        )
    if metric != "auc":
        sel = result["selection"]
        lines.append(
            f"- good enough: validation {metric_label(metric)} >= (1 - {sel['rejection_tolerance']}) x the "
            f"teacher's = {sel['good_at_least']:.1f}"
        )
    header = ["complexity", "AUC val", "AUC test"]
    for key in rejections:
        header += [f"{metric_label(key)} val", "test"]
    lines += [
        "",
        f"## Pareto front (complexity, latency, validation {metric_label(metric)})",
        "",
        "| " + " | ".join([*header, "latency (cycles)", "from", "expression"]) + " |",
        "|" + "---|" * (len(header) + 3),
    ]
    for i in result["front"]:
        m = result["models"][i]
        mark = " **(chosen)**" if i == result["chosen"] else ""
        cells = [str(m["complexity"]), f"{m['auc_val']:.4f}", f"{m['auc_test']:.4f}"]
        for key in rejections:
            cells += [_fmt(m.get(f"{key}_val"), "{:.1f}"), _fmt(m.get(f"{key}_test"), "{:.1f}")]
        cells += [str(m["latency_cycles"]), m["source"], f"`{'; '.join(m['readable'])}`{mark}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "![front](front.png)", ""]
    return "\n".join(lines)


def ensure_fit(job: Job, data: DistillData, log: bool) -> tuple[dict[str, Any], list[sympy.Expr]]:
    """The fit of ``job.fit_dir`` (run now unless stored): expressions.json and the chosen expressions."""
    fit_dir, teacher, settings, choice = job.fit_dir, job.teacher, job.settings, job.choice
    if (fit_dir / "expressions.json").is_file() and (fit_dir / "chosen.sympy").is_file():
        result = read_json(fit_dir / "expressions.json")
        chosen = list(sympy.sympify((fit_dir / "chosen.sympy").read_text()))
        return result, chosen
    result = run_fit(teacher, data, settings, choice, job.teacher_cost, log)
    chosen = result.pop("_chosen_expressions")
    with atomic_path(fit_dir) as tmp:
        tmp.mkdir()
        write_json_atomic(
            tmp / "settings.json",
            {
                "settings": settings.model_dump(mode="json"),
                "backend": choice.as_dict(),
                "teacher": {"name": teacher.name, "config_sha256": teacher.digest()},
                "flat_inputs": data.feature_names,
                "n_jets": {k: int(len(v)) for k, v in data.x.items()},
            },
        )
        write_json_atomic(tmp / "expressions.json", result)
        write_text_atomic(tmp / "chosen.sympy", sympy.srepr(sympy.Tuple(*chosen)) + "\n")
        write_text_atomic(
            tmp / "chosen.txt",
            "\n".join(f"{str(e)}\n# {readable(e, data.feature_names)}" for e in chosen) + "\n",
        )
        _plot_front(tmp / "front.png", result, job.name)
        write_text_atomic(tmp / "report.md", _fit_markdown(job.name, result))
    return result, chosen


# --- the firmware project -----------------------------------------------------------------


def teacher_reference(teacher: ModelConfig, ws: Workspace, log: bool) -> tuple[dict[str, Any] | None, Any]:
    """The teacher's HLS report (None for a float reference without firmware) and its run."""
    from trigger_ml.pipeline import ensure_hls, ensure_trained

    report = ensure_hls(teacher, ws, log=log) if teacher.hls.enabled else None
    return report, ensure_trained(teacher, ws, log=log)


def teacher_test(
    teacher: ModelConfig,
    ws: Workspace,
    report: dict[str, Any] | None,
    test_rows: np.ndarray,
    test_classes: np.ndarray,
    keras_logits: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """Teacher logits on the test split (rows ``test_rows`` of the sample) as its firmware
    computes them: its C simulation when it has one on the same rows, else ``keras_logits``
    (the QKeras or float model); with their metrics and which of the two they are."""
    if report is not None:
        with h5py.File(ws.hls_dir(teacher.name) / "csim_predictions.h5", "r") as handle:
            rows, logits = handle["test_index"][()], handle["logits_csim"][()].astype(np.float64)
        if np.array_equal(rows, test_rows):
            return logits, tagging_metrics(logits, test_classes, teacher.physics.f_c), "C simulation"
    return keras_logits, tagging_metrics(keras_logits, test_classes, teacher.physics.f_c), "Keras model"


def check_precision_holds(precision: FixedPoint, input_type: FixedPoint) -> None:
    """One-line error unless the expressions' precision holds every value of the input type."""
    if (
        precision.integer < input_type.integer
        or precision.bits - precision.integer < input_type.bits - input_type.integer
    ):
        raise UsageError(
            f"symbolic precision {fixed_type(precision)} cannot hold the input type "
            f"(bits {input_type.bits}, integer {input_type.integer}) exactly",
            "widen precision.bits / precision.integer",
        )


@dataclass(frozen=True)
class DistillInputs:
    """What a distillation starts from: the teacher, its sample, and the cache key."""

    teacher_report: dict[str, Any] | None  # the teacher's HLS report (None: no firmware)
    run: Any  # the teacher's trained run
    teacher_cost: dict[str, Any] | None  # its best cost section
    data_path: Path
    data_sha256: str
    key: str  # hash of teacher, data, settings, backend (+ key_extra)


def distill_inputs(
    teacher: ModelConfig,
    settings: SymbolicConfig,
    choice: BackendChoice,
    ws: Workspace,
    log: bool,
    **key_extra: Any,
) -> DistillInputs:
    """Train (and build the firmware of) the teacher if needed, generate its sample, and hash
    what determines the distillation; ``key_extra`` (format version, structure) joins the key."""
    from trigger_ml.cost import cost_for_project
    from trigger_ml.pipeline import ensure_data

    teacher_report, run = teacher_reference(teacher, ws, log)
    teacher_cost = cost_for_project(ws.hls_dir(teacher.name))["best"] if teacher_report else None
    data_path = ensure_data(teacher, ws, log=False)
    data_sha = sha256_of_file(data_path)
    key = sha256_of_obj(
        {
            **key_extra,
            "teacher": teacher.digest(),
            "data": data_sha,
            "settings": settings.key_dump(),
            "backend": [choice.backend.name, choice.backend.version()],
            "teacher_latency": teacher_cost["latency_cycles"] if teacher_cost else None,
        }
    )
    return DistillInputs(teacher_report, run, teacher_cost, data_path, data_sha, key)


def distill(
    teacher: ModelConfig, settings: SymbolicConfig, ws: Workspace, log: bool = True, force: bool = False
) -> dict[str, Any]:
    """Distil ``teacher`` into expressions and their firmware; returns report.json's content."""
    name = symbolic_name(teacher)
    check_precision_holds(settings.precision, flat_input_config(teacher).quantization.input)
    choice = choose_backend(settings)
    if log:
        print(f"[distill] {name}: backend {choice.backend.name} ({choice.reason})", flush=True)
    inputs = distill_inputs(teacher, settings, choice, ws, log, format_version=FORMAT_VERSION)
    job = Job(
        name,
        teacher,
        settings,
        choice,
        ws,
        inputs.key,
        inputs.data_path,
        inputs.data_sha256,
        inputs.teacher_report,
        inputs.teacher_cost,
    )
    if not force and is_current(job.project_dir, inputs.key, inputs.data_sha256):
        if log:
            print(f"[distill] {name}: {job.project_dir} is current; nothing to do", flush=True)
        return read_json(job.project_dir / "report.json")

    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = load_distill_data(teacher, inputs.run, inputs.data_path, settings)
    timings["prepare_s"] = time.perf_counter() - start
    start = time.perf_counter()
    result, chosen = ensure_fit(job, data, log)
    timings["fit_s"] = time.perf_counter() - start
    return build_symbolic_project(job, data, result, chosen, timings, log)


def simulate_project(
    name: str,
    deployed: list[sympy.Expr],
    x_test: np.ndarray,
    fp: FixedPoint,
    luts: dict[str, Any],
    teacher: ModelConfig,
    out_dir: Path,
    timings: dict[str, float],
    log: bool,
) -> np.ndarray:
    """Convert ``deployed`` with hls4ml into ``out_dir``, compile it and C-simulate ``x_test``;
    records convert_compile_s and csim_s in ``timings``; returns the C simulation's outputs."""
    if log:
        print(
            f"[distill] {name}: hls4ml symbolic project, g++ C simulation of {len(x_test)} jets", flush=True
        )
    start = time.perf_counter()
    hls_model = build_project(
        deployed,
        x_test.shape[1],
        fp,
        luts,
        teacher.hls.part,
        teacher.hls.clock_period_ns,
        out_dir / PROJECT_SUBDIR,
    )
    timings["convert_compile_s"] = time.perf_counter() - start
    start = time.perf_counter()
    outputs_csim = csim_predict(hls_model, x_test)
    timings["csim_s"] = time.perf_counter() - start
    return outputs_csim


def metrics_section(
    disc: dict[str, np.ndarray], teacher_metrics: dict[str, Any], classes: np.ndarray
) -> dict[str, Any]:
    """report.json ``metrics``: the teacher's, the float expression's and the C simulation's."""
    return {
        "teacher": teacher_metrics,
        "expression_float": discriminant_metrics(disc["expression_float"], classes),
        "csim": discriminant_metrics(disc["csim"], classes),
    }


def write_csim_predictions(
    out_dir: Path,
    test_index: np.ndarray,
    classes: np.ndarray,
    disc: dict[str, np.ndarray],
    logits_csim: np.ndarray | None = None,
) -> None:
    """``csim_predictions.h5``: test rows, classes, each discriminant (and the logits if any)."""
    with h5py.File(out_dir / "csim_predictions.h5", "w") as handle:
        handle.create_dataset("test_index", data=test_index, track_times=False)
        handle.create_dataset("classes", data=classes, track_times=False)
        for label, values in disc.items():
            handle.create_dataset(f"discriminant_{label}", data=values, track_times=False)
        if logits_csim is not None:
            handle.create_dataset("logits_csim", data=logits_csim, track_times=False)


def fidelity_section(
    outputs_csim: np.ndarray, outputs_float: np.ndarray, fp: FixedPoint, luts: dict[str, Any]
) -> dict[str, Any]:
    """report.json ``fidelity``: the C simulation against the float expression, per jet."""
    step = fixed_point_step(fp)
    deviation = np.abs(outputs_csim - outputs_float)
    return {
        "reference": "expression_float",
        "n_jets": int(len(outputs_csim)),
        "max_abs_deviation": float(deviation.max()),
        "fixed_point_step": step,
        "within_step_fraction": float(np.mean(np.all(deviation <= step, axis=1))),
        "lut_functions": luts,
    }


def hls_section(teacher: ModelConfig, fp: FixedPoint) -> dict[str, Any]:
    """report.json ``hls`` of a symbolic project (hls4ml's SymbolicExpression backend)."""
    return {
        "backend": "SymbolicExpression",
        "part": teacher.hls.part,
        "clock_period_ns": teacher.hls.clock_period_ns,
        "clock_uncertainty": CLOCK_UNCERTAINTY,
        "io_type": "io_parallel",
        "project": PROJECT_SUBDIR,
        "precision": fixed_type(fp),
    }


def build_symbolic_project(
    job: Job,
    data: DistillData,
    result: dict[str, Any],
    chosen: list[sympy.Expr],
    timings: dict[str, float],
    log: bool,
) -> dict[str, Any]:
    """Convert the chosen expression(s), C-simulate the test split, compare, report."""
    name, teacher, settings = job.name, job.teacher, job.settings
    f_c = teacher.physics.f_c
    kind = result["output"]
    fp = settings.precision
    deployed = [snap_constants(e, fp) for e in chosen]
    luts = lut_specs(deployed, data.x["fit"], settings.lut)
    x_test, classes = data.x["test"], data.classes["test"]
    teacher_logits, teacher_metrics, teacher_source = teacher_test(
        teacher, job.ws, job.teacher_report, data.indices["test"], data.classes["test"], data.logits["test"]
    )
    outputs_float = evaluate(deployed, x_test)
    with atomic_path(job.project_dir) as tmp:
        tmp.mkdir()
        outputs_csim = simulate_project(name, deployed, x_test, fp, luts, teacher, tmp, timings, log)
        fidelity = fidelity_section(outputs_csim, outputs_float, fp, luts)
        if luts:
            step = fixed_point_step(fp)
            emulated = evaluate(deployed, x_test, luts, fp)
            lut_dev = np.abs(outputs_csim - emulated)
            fidelity["max_abs_deviation_to_emulated_tables"] = float(lut_dev.max())
            fidelity["within_step_fraction_to_emulated_tables"] = float(
                np.mean(np.all(lut_dev <= step, axis=1))
            )
        disc = {
            "teacher": discriminant_from_logits(teacher_logits, f_c),
            "expression_float": _discriminant(outputs_float, kind, f_c),
            "csim": _discriminant(outputs_csim, kind, f_c),
        }
        metrics = metrics_section(disc, teacher_metrics, classes)
        cost = expression_cost(
            deployed,
            fp,
            teacher.hls.part,
            teacher.hls.clock_period_ns,
            CLOCK_UNCERTAINTY,
            settings.lut.table_size,
        )
        write_csim_predictions(
            tmp, data.indices["test"], classes, disc, outputs_csim if kind == "logits" else None
        )
        chosen_row = result["models"][result["chosen"]]
        report: dict[str, Any] = {
            "model": name,
            "description": f"symbolic distillation of {teacher.name} ({result['output']})",
            "config_sha256": job.key,
            "teacher": {
                "model": teacher.name,
                "config_sha256": teacher.digest(),
                "metrics_source": teacher_source,
                "latency_cycles": result["teacher"]["latency_cycles"],
                "cost_source": job.teacher_cost["source"] if job.teacher_cost else None,
            },
            "run_dir": str(job.fit_dir),
            "data": {
                "path": str(job.data_path),
                "sha256": job.data_sha256,
                "jets_per_split": {k: int(len(v)) for k, v in data.x.items()},
                "n_truncated_jets": data.flat.n_truncated_jets,
            },
            "n_params": {"expression": sum(count_constants(e) for e in deployed)},
            "symbolic": {
                "backend": result["backend"],
                "output": kind,
                "expressions": [str(e) for e in chosen],
                "deployed": [str(e) for e in deployed],
                "readable": [readable(e, data.feature_names) for e in deployed],
                "produced_by": chosen_row["source"],
                "complexity": chosen_row["complexity"],
                "selection": result["selection"],
                "validation": validation_section(chosen_row, result["teacher"]),
                "front_size": len(result["front"]),
                "settings": settings.model_dump(mode="json"),
            },
            "metrics": metrics,
            "fidelity": fidelity,
            "hls": hls_section(teacher, fp),
            "cost": {"best": cost, "sources": {"estimate": cost}, "unavailable": SYMBOLIC_COST_UNAVAILABLE},
            "timings_s": {"distill": timings},
        }
        write_symbolic_report(tmp, report, disc, classes)
    return read_json(job.project_dir / "report.json")


# --- report -------------------------------------------------------------------------------

VALIDATION_KEYS = ("auc_val", *(f"{key}_val" for key in STORED_REJECTIONS))


def validation_section(chosen: dict[str, Any], teacher: dict[str, Any]) -> dict[str, Any]:
    """report.json ``symbolic.validation``: the scores the choice saw, chosen and teacher
    (absent from a fit stored before the rejections were)."""
    return {
        "chosen": {k: chosen.get(k) for k in VALIDATION_KEYS},
        "teacher": {k: teacher.get(k) for k in VALIDATION_KEYS},
    }


def _fmt(value: Any, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def _validation_lines(section: dict[str, Any] | None) -> list[str]:
    if not section or section["chosen"].get("rej_light_at_70_val") is None:
        return []
    chosen, teacher = section["chosen"], section["teacher"]
    return [
        f"- validation: AUC {_fmt(chosen['auc_val'], '{:.4f}')} (teacher {_fmt(teacher['auc_val'], '{:.4f}')}), "
        + ", ".join(
            f"{metric_label(k)} {_fmt(chosen[f'{k}_val'], '{:.1f}')} (teacher {_fmt(teacher[f'{k}_val'], '{:.1f}')})"
            for k in STORED_REJECTIONS
        )
    ]


def symbolic_markdown(report: dict[str, Any]) -> str:
    """report.md of a symbolic project."""
    from trigger_ml.cost import format_cost_table
    from trigger_ml.report import METRIC_ROWS

    sym, fid, metrics = report["symbolic"], report["fidelity"], report["metrics"]
    backend = sym["backend"]
    labels = {
        "teacher": f"teacher {report['teacher']['model']}",
        "expression_float": "expression (float)",
        "csim": "C simulation",
    }
    lines = [
        f"# {report['model']}",
        "",
        report["description"],
        "",
        f"- backend: **{backend['used']}** {backend['version']} — requested `{backend['requested']}`: {backend['reason']}",
        f"- chosen expression produced by: **{sym['produced_by']}**",
        f"- output: {sym['output']}; complexity {sym['complexity']}; {report['n_params']['expression']} constants",
        f"- selection by validation {metric_label(sym['selection'].get('metric', 'auc'))}: "
        f"{sym['selection']['rule']} (Pareto front of {sym['front_size']} expressions: `{report['run_dir']}`)",
        *_validation_lines(sym.get("validation")),
        f"- data: `{report['data']['path']}` (sha256 `{report['data']['sha256'][:16]}…`), "
        + ", ".join(f"{k} {v}" for k, v in report["data"]["jets_per_split"].items())
        + " jets",
        "",
        "## Expression",
        "",
    ]
    for text, deployed, words in zip(sym["expressions"], sym["deployed"], sym["readable"], strict=True):
        lines += [
            f"- found: `{text}`",
            f"- deployed (constants on `{report['hls']['precision']}`): `{deployed}`",
            f"- in words: `{words}`",
        ]
    lines += [
        "",
        "## Physics on the test split",
        "",
        "| metric | " + " | ".join(labels[k] for k in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for key, label, pattern in METRIC_ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(metrics[k].get(key), pattern) for k in metrics) + " |")
    lines += [
        "",
        f"Teacher measured on its {report['teacher']['metrics_source']}.",
        "",
        "![ROC](roc.png)",
        "",
        "## Fidelity: C simulation vs the expression in float (same quantized inputs)",
        "",
        f"- jets: {fid['n_jets']}; fixed-point step {fid['fixed_point_step']:.3g}",
        f"- largest |difference|: {fid['max_abs_deviation']:.3g}; within one step: **{fid['within_step_fraction']:.6f}**",
    ]
    if fid["lut_functions"]:
        lines.append(
            f"- look-up tables {sorted(fid['lut_functions'])}: largest |difference| to the float expression with "
            f"emulated tables {fid['max_abs_deviation_to_emulated_tables']:.3g} "
            f"(within one step: {fid['within_step_fraction_to_emulated_tables']:.6f})"
        )
    hls = report["hls"]
    lines += [
        "",
        "## HLS project",
        "",
        f"`{hls['project']}/`: hls4ml {hls['backend']} backend, part `{hls['part']}`, clock {hls['clock_period_ns']} ns, "
        f"type `{hls['precision']}`.",
        "",
        f"## Cost (source: {report['cost']['best']['source']})",
        "",
        format_cost_table(report["cost"]["best"]),
        f"Teacher latency: {_fmt(report['teacher']['latency_cycles'], '{}')} cycles "
        f"(source: {_fmt(report['teacher']['cost_source'], '{}')}).",
        "",
        "## Timings (s)",
        "",
    ]
    for stage, values in report["timings_s"].items():
        lines.append(f"- {stage}: " + ", ".join(f"{k} {v:.1f}" for k, v in values.items()))
    return "\n".join(lines) + "\n"


def write_symbolic_report(
    directory: Path, report: dict[str, Any], disc: dict[str, np.ndarray], classes: np.ndarray
) -> None:
    """report.json, report.md and roc.png of a symbolic project."""
    from trigger_ml.report import plot_roc

    labels = {
        "teacher": f"teacher {report['teacher']['model']}",
        "expression_float": "expression (float)",
        "csim": "expression C simulation",
    }
    # (D, 0, 0) logits have D_b = D exactly at f_c = 0 (trigger_ml.symbolic.metrics).
    plot_roc(
        directory / "roc.png",
        {labels[k]: as_logits(v) for k, v in disc.items()},
        classes,
        0.0,
        report["model"],
    )
    write_json_atomic(directory / "report.json", report)
    write_text_atomic(directory / "report.md", symbolic_markdown(report))
