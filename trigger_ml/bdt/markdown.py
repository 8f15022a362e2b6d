"""report.md of a BDT project (trigger_ml.bdt.project): physics, fidelity, departures from the
float trees, cost, with every figure's source."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def bdt_markdown(report: dict[str, Any]) -> str:
    bdt, fid, evaluation = report["bdt"], report["fidelity"], report["evaluation"]
    s = bdt["settings"]
    lines = [
        f"# {report['model']}",
        "",
        report.get("description", ""),
        "",
        f"- configuration sha256: `{report['config_sha256']}`; conifer {bdt['conifer_version']}",
        f"- ensemble: {s['n_trees']} rounds x 3 classes = {bdt['n_trees_total']} trees of depth <= {s['max_depth']}, "
        f"{bdt['n_splits']} splits, {bdt['n_leaves']} leaves; learning rate {s['learning_rate']}, subsample {s['subsample']}",
        f"- types: input `{report['hls']['input_type']}`, {report['hls']['precision']}",
        "",
        f"## Physics on the evaluation sample ({evaluation['n_jets']} jets, evaluated by {evaluation['evaluated_by']})",
        "",
        "| | AUC b vs light | light rej. @ 70 % | light rej. @ 77 % | c rej. @ 70 % |",
        "|---|---|---|---|---|",
    ]
    for kind, m in evaluation["metrics"].items():
        lines.append(
            f"| {kind} | {_fmt(m['auc_b_vs_light'])} | {_fmt(m['rej_light_at_70'], 1)} ± {_fmt(m.get('rej_light_at_70_stat'), 1)} "
            f"| {_fmt(m['rej_light_at_77'], 1)} | {_fmt(m['rej_c_at_70'], 2)} |"
        )
    hls = fid["hls_csim"]
    moved = fid["vs_float_trees"]
    changed, same = moved["jets_with_a_changed_path"], moved["jets_with_the_same_paths"]
    lines += [
        "",
        "## Fidelity",
        "",
        f"- g++ C simulation == quantized trees, bit for bit: **{fid['csim_vs_reference_exact_fraction']:.6f}** of "
        f"{fid['n_jets']} test jets; {evaluation['csim_check']['emulator_vs_csim_exact_fraction']:.6f} of "
        f"{evaluation['csim_check']['n_jets']} evaluation jets",
        "- conifer's HLS code (g++) == the C simulation: "
        + (
            f"{hls['hls_vs_tree_csim_exact_fraction']:.6f} of {hls['n_jets']} test jets"
            if hls["n_jets"]
            else f"not compiled: {hls['reason']}"
        ),
        f"- the score type holds every sum of leaves: {fid['score_range_fits']}",
        f"- against the float trees: {moved['thresholds_moved_by_quantization']} of {moved['thresholds']} thresholds move "
        f"when quantized; {changed['n_jets']} of {moved['n_jets']} test jets take another path in "
        f"{moved['trees_with_a_changed_path']} trees (max |logit diff| {_fmt(changed['max_abs_logit_diff'])}, "
        f"max |D_b diff| {_fmt(changed['max_abs_db_diff'])}); the other {same['n_jets']} differ by the rounding of the "
        f"leaf scores only (max |logit diff| {_fmt(same['max_abs_logit_diff'])}, score step {moved['score_step']:.3g})",
        "",
        "## Cost",
        "",
    ]
    cost = report["cost"]
    best = cost["best"]
    lines.append(f"Best source: `{best['source']}` (vendor > rtl > da4ml > estimate).")
    for name, section in cost["sources"].items():
        if section is None:
            continue
        r = section["resources"]
        lines += [
            "",
            f"### `{name}`: {section['tool']}",
            "",
            f"- {r['LUT']} LUT, {r['FF']} FF, {r['DSP']} DSP, {section['latency_cycles']['max']} cycles "
            f"({section['latency_ns']['max']:.0f} ns) at {1000 / section['clock_period_ns']:.0f} MHz, "
            f"II {section['initiation_interval']}",
            *[f"- {note}" for note in section["notes"]],
        ]
    lines += ["", *[f"- no `{k}` figure: {v}" for k, v in cost["unavailable"].items()], ""]
    return "\n".join(lines) + "\n"
