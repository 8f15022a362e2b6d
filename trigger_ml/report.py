"""Reports beside each HLS project: report.json (machines, typed: trigger_ml.artefacts), report.md
(people), plots (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger_ml.artefacts import FORMAT_VERSION, Report, write_report_json
from trigger_ml.config import ModelConfig
from trigger_ml.cost import format_cost_table
from trigger_ml.fileio import sha256_of_file, write_text_atomic

MODEL_LABELS = {
    "float": "float twin",
    "qkeras": "QKeras (QAT)",
    "csim": "hls4ml C simulation",
    "firmware": "firmware",
}
METRIC_ROWS = (
    ("auc_b_vs_light", "AUC b vs light", "{:.4f}"),
    ("rej_light_at_70", "light rejection @ 70 %", "{:.1f}"),
    ("rej_light_at_77", "light rejection @ 77 %", "{:.1f}"),
    ("rej_c_at_70", "c rejection @ 70 %", "{:.2f}"),
    ("rej_c_at_77", "c rejection @ 77 %", "{:.2f}"),
)


def _fmt(value: Any, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def _labels(report: dict[str, Any]) -> dict[str, str]:
    """Column labels: the quantized reference of an HGQ model is HGQ's proxy, not QKeras."""
    if report.get("quantization_kind") == "hgq":
        return {**MODEL_LABELS, "qkeras": "HGQ proxy (QAT)"}
    return MODEL_LABELS


def _metric_table(metrics: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    kinds = list(metrics)
    lines = [
        "| metric | " + " | ".join(labels.get(k, k) for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for key, label, pattern in METRIC_ROWS:
        cells = []
        for k in kinds:
            cell = _fmt(metrics[k].get(key), pattern)
            stat = metrics[k].get(f"{key}_stat")
            cells.append(cell if stat is None else f"{cell} ± {stat:.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _evaluation_lines(evaluation: dict[str, Any], labels: dict[str, str]) -> list[str]:
    counts = ", ".join(f"{n} {name}" for name, n in evaluation["jets_per_class"].items())
    check = evaluation["csim_check"]
    lines = [
        "## Physics on the evaluation sample",
        "",
        f"`{evaluation['path']}` (sha256 `{evaluation['sha256'][:16]}…`): {evaluation['n_jets']} jets ({counts}), "
        + evaluation.get("origin", f"seed {evaluation['seed']}, independent of the training sample")
        + ". "
        f"The firmware is evaluated by the {evaluation['evaluated_by']}"
        + (f" ({evaluation['evaluated_by_reason']})" if evaluation.get("evaluated_by_reason") else "")
        + (
            f" at {evaluation['firmware_jets_per_s']:.0f} jets/s. "
            if evaluation.get("firmware_jets_per_s")
            else ". "
        )
        + "± is the binomial statistical uncertainty of the light rejection.",
        "",
    ]
    lines += _metric_table(
        evaluation["metrics"], {**labels, "firmware": f"firmware ({evaluation['evaluated_by']})"}
    )
    lines.append("")
    if check["n_jets"]:
        lines.append(
            f"- emulator == C simulation on the first {check['n_jets']} evaluation jets: "
            f"**{check['emulator_vs_csim_exact_fraction']:.6f}**"
        )
    if evaluation.get("firmware_vs_reference_exact_fraction") is not None:
        lines.append(
            f"- firmware == {labels[evaluation['reference']]} on all {evaluation['n_jets']} evaluation "
            f"jets: **{evaluation['firmware_vs_reference_exact_fraction']:.6f}**"
        )
    return lines + [""]


def _plot_and_ftag_lines(report: dict[str, Any]) -> list[str]:
    """The plots (on the evaluation sample) and the FTAG predictions files of a project."""
    lines: list[str] = []
    plots = report.get("plots") or {}
    if plots:
        lines += ["## Plots (evaluation sample)", ""]
        lines += [f"- `{name}`: {what}" for name, what in plots.items()]
        if "cost_per_layer.png" not in plots:
            lines.append("- no per-layer cost plot: no cost source of this project has per-layer figures")
        lines.append("")
        lines += [f"![{name}]({name})" for name in plots]
        lines.append("")
    ftag = report.get("ftag")
    if ftag:
        lines += [
            "## Predictions in the FTAG layout",
            "",
            "HDF5 compound dataset `jets` (`<tagger>_pb`, `_pc`, `_pu`, `HadronConeExclTruthLabelID`, "
            "`pt` in MeV, `eta`, `eventNumber`; docs/data-formats.md): "
            + ", ".join(f"`{file}` ({which})" for which, file in ftag["files"].items())
            + ".",
            "",
            "| model kind | tagger |",
            "|---|---|",
        ]
        lines += [f"| {kind} | `{name}` |" for kind, name in ftag["taggers"].items()]
        lines.append("")
    return lines


def _exactness_line(kind_name: str) -> str:
    """Whether the model kind claims bit-exactness on any input (hostile vectors included), and
    if not, why not (trigger_ml.kinds)."""
    from trigger_ml.kinds import kind_named

    kind = kind_named(kind_name)
    claim = "claimed" if kind.claims_exactness else "**not claimed**"
    return f"- exactness on any input (hostile vectors included) {claim} by the kind `{kind.name}`: {kind.exactness}"


def _rej(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def decision_lines(decision: dict[str, Any]) -> list[str]:
    """report.md's section on the firmware's b-tag decision (trigger_ml.decision)."""
    score, fidelity = decision["score"], decision["fidelity"]
    lines = [
        "## Decision in firmware (trigger_top)",
        "",
        f"`{decision['top']['function']}`: front end `{decision['front_end']}` -> network -> "
        f"{score['formula']}; score type `{score['score_type']['c_type']}`, accumulator `{score['accum_type']}`; "
        f"{score['comparison']}.",
        f"C simulation of trigger_top == the Python chain ({fidelity['reference']}) on "
        f"{fidelity['test_exact_fraction']:.6f} of {fidelity['n_test_jets']} test jets"
        + (
            f"; unchanged with the tracks shuffled: {fidelity['permutation_invariant_fraction']:.6f}"
            if fidelity["permutation_invariant_fraction"] is not None
            else ""
        )
        + ".",
        "",
        "| sample | WP | threshold code | light rej exact D_b | light rej max form | firmware bit: b-eff | light rej | c rej exact | c rej firmware |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for sample, values in decision["physics"].items():
        for row in values["working_points"]:
            fw = row["firmware"]
            lines.append(
                f"| {sample} | {row['b_efficiency']:.0%} | {fw['threshold_code']} | {_rej(row['exact']['rej_light'])} | "
                f"{_rej(row['max_form']['rej_light'])} | {fw['b_efficiency']:.4f} | {_rej(fw['rej_light'])} | "
                f"{_rej(row['exact']['rej_c'])} | {_rej(fw['rej_c'])} |"
            )
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    """report.md: the same content as report.json, laid out for a person."""
    if report.get("bdt") is not None:  # a BDT's report has its own layout
        from trigger_ml.bdt.markdown import bdt_markdown

        return bdt_markdown(report)
    metrics = report["metrics"]
    lines = [
        f"# {report['model']}",
        "",
        report.get("description", ""),
        "",
        f"- configuration sha256: `{report['config_sha256']}`",
        f"- data: `{report['data']['path']}` (sha256 `{report['data']['sha256'][:16]}…`), "
        + ", ".join(f"{k} {v}" for k, v in report["data"]["jets_per_split"].items())
        + " jets",
        f"- parameters: {', '.join(f'{k} {v}' for k, v in report['n_params'].items())}",
        "",
    ]
    labels = _labels(report)
    lines += _evaluation_lines(report["evaluation"], labels)
    lines += _plot_and_ftag_lines(report)
    lines += ["## Physics on the test split of the training sample", ""]
    lines += _metric_table(metrics, labels)
    fid = report["fidelity"]
    lines += [
        "",
        "## Fidelity of the C simulation (test split)",
        "",
        f"- jets compared: {fid['n_jets']}",
        f"- C simulation == {labels[fid['reference']]}, bit for bit: "
        f"**{fid['csim_vs_reference_exact_fraction']:.6f}**",
        f"- largest |logit difference| to it: {fid['max_abs_logit_diff']:.3g}",
        _exactness_line(report["record"]["model_kind"]),
    ]
    if fid["permutation_invariant_fraction"] is not None:
        lines.append(
            f"- unchanged when valid tracks are shuffled: **{fid['permutation_invariant_fraction']:.6f}** "
            f"({fid['permutation_n_jets_with_2plus_tracks']} jets with 2 or more tracks)"
        )
    blame = fid.get("first_divergent_layer")
    if blame:
        lines.append(
            f"- first layer that diverges: `{blame['layer']}` ({blame['class']}, {blame['result_type']}): "
            f"{blame['fraction_of_traced_jets_differing']:.3f} of {blame['n_traced_jets']} traced jets, "
            f"max |diff| {blame['max_abs_diff']:.3g}"
        )
    diff = report.get("output_diff_csim_minus_float")
    if diff:
        lines += [
            "",
            "C simulation - float twin, per logit, on the test split (logit_diff.png: firmware - float on the evaluation sample):",
            "",
            "| logit | mean | std | 1 % | 99 % | max abs |",
        ]
        lines.append("|---|---|---|---|---|---|")
        for name, row in diff.items():
            lines.append(
                f"| {name} | {row['mean']:.4f} | {row['std']:.4f} | {row['p01']:.4f} | {row['p99']:.4f} | {row['max_abs']:.4f} |"
            )
    hls = report["hls"]
    lines += [
        "",
        "## HLS project",
        "",
        f"`{hls['project']}/`: {hls['backend']} backend, part `{hls['part']}`, clock {hls['clock_period_ns']} ns, "
        f"{hls['io_type']}, strategy {hls['strategy']}, reuse factor {hls['reuse_factor']}.",
        f"Input type `{hls['input_type']}`, output type `{hls['output_type']}`.",
        "",
        "| layer | class | types |",
        "|---|---|---|",
    ]
    for layer in hls["layers"]:
        types = ", ".join(f"{k}=`{v}`" for k, v in layer["types"].items())
        lines.append(f"| {layer['name']} | {layer['class']} | {types} |")
    cost = report.get("cost")
    if cost:
        lines += ["", f"## Cost (source: {cost['best']['source']})", "", format_cost_table(cost["best"])]
        for name, block in (cost.get("blocks") or {}).items():
            lines += [
                f"- {name} block ({block['source']}): {block['latency_cycles']['max']} cycles, "
                f"LUT {block['resources']['LUT']}, FF {block['resources']['FF']}, DSP {block['resources']['DSP']}"
            ]
    if report.get("decision"):
        lines += ["", *decision_lines(report["decision"])]
    lines += ["", "## Timings (s)", ""]
    for stage, values in report["timings_s"].items():
        lines.append(f"- {stage}: " + ", ".join(f"{k} {v:.1f}" for k, v in values.items()))
    return "\n".join(lines) + "\n"


def write_report(directory: Path, report: Report | dict[str, Any], config: ModelConfig) -> Report:
    """Write the plots (on the evaluation sample: :mod:`trigger_ml.plots.project`),
    report.json (validated, trigger_ml.artefacts, with the plots it lists) and report.md into
    ``directory``; returns the typed report."""
    from trigger_ml.evaluation import PREDICTIONS_FILE
    from trigger_ml.plots.project import write_project_plots

    content = report.as_json() if isinstance(report, Report) else dict(report)
    content["plots"] = write_project_plots(directory, content, config, PREDICTIONS_FILE)
    typed = write_report_json(directory, content)
    write_text_atomic(directory / "report.md", markdown_report(typed.as_json()))
    return typed


def report_header(
    config: ModelConfig, run_dir: Path, data_path: Path, data: Any, quantization_kind: str | None
) -> dict[str, Any]:
    """The first fields of a firmware project's report: the model, the format, the hashes of
    its configuration and training, its run and the training sample with its split."""
    return {
        "model": config.name,
        "format_version": FORMAT_VERSION,
        "description": config.description,
        "quantization_kind": quantization_kind,
        "config_sha256": config.digest(),
        "training_sha256": config.training_digest(),
        "run_dir": str(run_dir),
        "data": {
            "path": str(data_path),
            "sha256": sha256_of_file(data_path),
            "jets_per_split": {k: int(len(v)) for k, v in data.indices.items()},
            "n_truncated_jets": data.n_truncated_jets,
        },
    }
