"""Reports of the symbolic models: the fit's directory (report.md, front.png and the
expressions), the project's report.json, report.md and roc.png (flat stage and symbolic
Deep Set alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sympy

from trigger_ml.artefacts import Report, write_report_json
from trigger_ml.cost import format_cost_table
from trigger_ml.fileio import write_json_atomic, write_text_atomic
from trigger_ml.report import METRIC_ROWS
from trigger_ml.symbolic.inputs import Job
from trigger_ml.symbolic.metrics import STORED_REJECTIONS
from trigger_ml.symbolic.selection import metric_label

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
    if fid.get("hostile"):
        lines += [
            "- hostile inputs (trigger_ml.firmware.hostile; the rule measured, not claimed, outside the",
            "  training range the design type saturates inside the expression):",
            "",
            "| family | vectors | within one step | largest difference |",
            "| --- | --- | --- | --- |",
        ]
        for row in fid["hostile"]:
            worst = "not a number" if row["max_abs_deviation"] is None else f"{row['max_abs_deviation']:.3g}"
            lines.append(f"| {row['family']} | {row['n_vectors']} | {row['n_within_step']} | {worst} |")
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
) -> Report:
    """report.json (validated, trigger_ml.artefacts), report.md and roc.png of a symbolic
    project; returns the typed report."""
    labels = {
        "teacher": f"teacher {report['teacher']['model']}",
        "expression_float": "expression (float)",
        "csim": "expression C simulation",
    }
    from trigger_ml.plots.roc import plot_rejection
    from trigger_ml.plots.style import sample_label

    label = sample_label(Path(report["data"]["path"]), int(len(classes)), "test split", None)
    curves = {labels[k]: (v, classes) for k, v in disc.items()}
    plot_rejection(directory / "roc.png", curves, "light", labels["teacher"], label)
    typed = write_report_json(directory, report)
    write_text_atomic(directory / "report.md", symbolic_markdown(typed.as_json()))
    return typed


def plot_front(path: Path, result: dict[str, Any], title: str) -> None:
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


def fit_markdown(name: str, result: dict[str, Any]) -> str:
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


def write_fit(
    out: Path,
    job: Job,
    inputs: dict[str, Any],
    result: dict[str, Any],
    chosen: list[sympy.Expr],
    chosen_text: str,
    markdown_tail: str = "",
) -> None:
    """The fit into the directory ``out``: settings.json (settings, backend, teacher and the
    ``inputs`` entries), expressions.json (``result``), chosen.sympy (``chosen``), chosen.txt
    (``chosen_text``), front.png and report.md (:func:`fit_markdown`, then ``markdown_tail``)."""
    teacher = job.teacher
    write_json_atomic(
        out / "settings.json",
        {
            "settings": job.settings.model_dump(mode="json"),
            "backend": job.choice.as_dict(),
            "teacher": {"name": teacher.name, "config_sha256": teacher.digest()},
            **inputs,
        },
    )
    write_json_atomic(out / "expressions.json", result)
    write_text_atomic(out / "chosen.sympy", sympy.srepr(sympy.Tuple(*chosen)) + "\n")
    write_text_atomic(out / "chosen.txt", chosen_text)
    plot_front(out / "front.png", result, job.name)
    write_text_atomic(out / "report.md", fit_markdown(job.name, result) + markdown_tail)
