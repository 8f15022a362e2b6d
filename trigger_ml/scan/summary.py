"""A scan's outputs: Pareto fronts, the comparison (tables, plots) and ``scan_summary.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger_ml.compare import DEFAULT_COST_SOURCE
from trigger_ml.fileio import write_json_atomic, write_text_atomic
from trigger_ml.scan.spec import ScanSpec
from trigger_ml.workspace import Workspace


def _curves(records: list[dict[str, Any]], ws: Workspace) -> dict[str, tuple[Any, Any]]:
    import h5py

    curves = {}
    for record in records:
        with h5py.File(ws.root / record["curve"]["path"], "r") as handle:
            curves[record["model"]] = (handle[record["curve"]["logits"]][()], handle["classes"][()])
    return curves


def pareto_fronts(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Models on the front of light rejection at 70 % vs latency (ns) and vs LUTs."""
    import numpy as np

    from trigger_ml.compare import pareto_front

    fronts = {}
    for x_key in ("latency_ns", "LUT"):
        points = [r for r in rows if isinstance(r.get(x_key), int | float) and r.get("rej_light_at_70")]
        if not points:
            fronts[x_key] = []
            continue
        x = np.array([float(r[x_key]) for r in points])
        y = np.array([float(r["rej_light_at_70"]) for r in points])
        fronts[x_key] = [points[i]["model"] for i in pareto_front(x, y)]
    return fronts


def write_comparison(
    rows: list[dict[str, Any]],
    curves: dict[str, tuple[Any, Any]],
    f_c: float,
    out_dir: Path,
    labels: dict[str, str] | None = None,
    cost_source: str = DEFAULT_COST_SOURCE,
) -> dict[str, list[str]]:
    """The ``trigger-ml compare`` outputs for these rows, plus ``front.json``; returns the fronts.

    ``labels`` (model name -> short label, e.g. ``bits=6, reuse=2``) names the points in the
    plots, where full model names of a scan would not fit; the tables keep the model names.
    """
    from trigger_ml.compare import COLUMNS, csv_table, markdown_table, plot_front, plot_rocs
    from trigger_ml.fileio import atomic_path

    labels = labels or {}
    fronts = pareto_fronts(rows)
    plot_rows = [{**row, "model": labels.get(row["model"], row["model"])} for row in rows]
    plot_curves = {labels.get(model, model): curve for model, curve in curves.items()}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_text_atomic(tmp / "table.md", markdown_table(rows, cost_source))
        write_text_atomic(tmp / "table.csv", csv_table(rows))
        write_json_atomic(tmp / "table.json", {"columns": [k for k, _ in COLUMNS], "rows": rows})
        write_json_atomic(tmp / "front.json", fronts)
        plot_front(tmp / "rej70_vs_latency.png", plot_rows, "latency_ns", "latency (ns)")
        plot_front(tmp / "rej70_vs_lut.png", plot_rows, "LUT", "LUT")
        plot_rocs(tmp / "roc.png", plot_curves, f_c)
    return fronts


def _fmt(value: Any, digits: str = ".1f") -> str:
    return format(value, digits) if isinstance(value, int | float) else "-"


def summary_markdown(
    spec: ScanSpec, records: list[dict[str, Any]], fronts: dict[str, list[str]], wall_s: float
) -> str:
    """``scan_summary.md``: every point with its status, key figures and error."""
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "skipped", "failed")}
    lines = [
        f"# Scan `{spec.name}`",
        "",
        f"Base `{spec.base}`, stages `{spec.stages}`, {len(records)} point(s): "
        f"{counts['ok']} ok, {counts['skipped']} skipped (done in an earlier run), "
        f"{counts['failed']} failed; {wall_s:.1f} s.",
        "Failed points are retried on the next run; skipped ones are not rerun.",
        "",
        "| status | point | key | time (s) | light rej @70% | latency (ns) | LUT | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        row = r.get("row") or {}
        took = _fmt(r.get("duration_s")) + (" (cached)" if r.get("pipeline_cached") else "")
        error = (r.get("error") or "").replace("|", "\\|")
        lines.append(
            f"| {r['status']} | `{r['label']}` | `{r['key']}` | {took} | {_fmt(row.get('rej_light_at_70'))} "
            f"| {_fmt(row.get('latency_ns'))} | {_fmt(row.get('LUT'), '.0f')} | {error} |"
        )
    labels = {r["model"]: r["label"] for r in records}
    lines += ["", "## Pareto front (light rejection at 70 % b-efficiency)", ""]
    for x_key, label in (("latency_ns", "vs latency"), ("LUT", "vs LUTs")):
        members = ", ".join(f"`{labels[m]}`" for m in fronts.get(x_key, [])) or "none (no firmware figures)"
        lines.append(f"- {label}: {members}")
    lines += [
        "",
        "Table and plots: `comparison/` (table.md, rej70_vs_latency.png, rej70_vs_lut.png, roc.png)."
        if counts["ok"] + counts["skipped"]
        else "No point finished: no comparison.",
    ]
    return "\n".join(lines) + "\n"
