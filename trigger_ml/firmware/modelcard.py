"""The bundle's README.md: a model card for the people who put the firmware in a trigger."""

from __future__ import annotations

from typing import Any

from trigger_ml.artefacts import BDTFidelity, NetworkFidelity, Report
from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import format_cost_table
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware import verifier


def _num(value: Any, pattern: str = "{:.4g}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _feature_rows(features: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| index | feature | definition | unit | offset | scale | raw units per code |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in features:
        rows.append(
            f"| {f['index']} | `{f['name']}` | {f['definition']} | {f['unit']} | {f['offset']:.6g} "
            f"| {f['scale']:.6g} | {f['raw_units_per_code']:.4g} |"
        )
    return rows


def _track_word(in_spec: dict[str, Any]) -> list[str]:
    """The track-word input of ``trigger_top`` (a front end of L1 track words), field by field."""
    top = in_spec.get("trigger_top") or {}
    if "track_word" not in top:
        return []
    word, jet = top["track_word"], top["jet_word"]
    lines = [
        "### Input of `trigger_top`: L1 track words",
        "",
        f"`trigger_top({', '.join(top['trigger_top_inputs'])}, ...)`: {top['source']}.",
        f"Per jet {top['n_in']} slots of a {word['bits']}-bit track word and its sector ({word['sector']}); "
        f"selection: {top['selection']}. Vectors: {top['vector_layout']}.",
        "",
        "| field | bits | offset | signed | lsb / bins |",
        "|---|---|---|---|---|",
    ]
    for f in word["fields"]:
        scale = (
            f"{f['lsb']:.6g} {f['unit']}"
            if "lsb" in f
            else (f"bin edges {f['bin_edges']}" if "bin_edges" in f else f.get("meaning", ""))
        )
        lines.append(f"| `{f['name']}` | {f['bits']} | {f['bit_offset']} | {'yes' if f['signed'] else 'no'} | {scale} |")
    lines += [
        "",
        f"Jet word: pT `{jet['pt']['type']}` lsb {jet['pt']['lsb_gev']} GeV, eta `{jet['eta']['type']}` and phi "
        f"`{jet['phi']['type']}` lsb {jet['eta']['lsb']:.6g}; vertex z0 `{top['vertex_word']['z0']['type']}` lsb "
        f"{top['vertex_word']['z0']['lsb_cm']:.6g} cm.",
        "",
    ]
    return lines


def _interface(in_spec: dict[str, Any], out_spec: dict[str, Any]) -> list[str]:
    port, out = in_spec["port"], out_spec["port"]
    layout, tracks, enc = in_spec["layout"], in_spec["tracks"], in_spec["encoding"]
    selection = tracks["selection"]
    if isinstance(selection, dict):
        selection = ", ".join(f"{k} = {v}" for k, v in selection.items() if v is not None)
    association = f"; {tracks['association']}" if "association" in tracks else ""
    lines = [
        "## Interface",
        "",
        f"Top function `{in_spec['project']}({port['c_declaration']}, {out['c_declaration']})`, "
        f"{port['handshake']} handshake. `spec/input_spec.json` and `spec/output_spec.json` hold all of "
        "this in machine-readable form.",
        "",
        *_track_word(in_spec),
        "### Input",
        "",
        *([f"- {in_spec['entry']}"] if "entry" in in_spec else []),
        f"- type of every element: `{port['type']['c_type']}`: {port['width']} bits, "
        f"{port['fractional_bits']} fractional, lsb {port['type']['lsb']!r}, codes "
        f"{port['type']['code_min']} … {port['type']['code_max']} (two's complement)",
        f"- RTL: {port['rtl_ports']}",
        f"- element order: {layout['element_index']}",
        f"- value: {enc['scaled_value']}; {enc['code']}",
        f"- track selection: {selection}{association}",
        f"- ordering: {tracks['ordering']}; {tracks['truncation']}",
        f"- padding: {tracks['padding']}",
        *([f"- {tracks['note']}"] if "note" in tracks else []),
        "",
        *_feature_rows(layout["features"]),
    ]
    if "jet_features" in layout:
        lines += ["", "Jet features (after the track slots):", "", *_feature_rows(layout["jet_features"])]
    disc = out_spec["discriminant"]
    lines += [
        "",
        "### Output",
        "",
        f"- `{out['c_declaration']}`: "
        + ", ".join(f"{o['index']} = `{o['name']}`" for o in out_spec["outputs"])
        + f"; type `{out['type']['c_type']}` ({out['width']} bits, {out['fractional_bits']} fractional, "
        f"lsb {out['type']['lsb']!r})",
        f"- RTL: {out['rtl_ports']}",
        f"- discriminant: {disc['definition']}, f_c = {disc['f_c']}; from the logits: `{disc['from_logits']}`",
        f"- {disc['decision']}; {disc['firmware_form']}",
        "",
        "### Working points",
        "",
        f"Thresholds on D_b (logit units; also in output lsb) from the {out_spec['working_points_from']}:",
        "",
        "| b-efficiency | threshold T | T / lsb | b-eff. achieved (test) | light rejection | c rejection |",
        "|---|---|---|---|---|---|",
    ]
    for wp in out_spec["working_points"]:
        lines.append(
            f"| {wp['b_efficiency']:.0%} | {wp['threshold']!r} | {wp['threshold_in_output_lsb']:.4f} "
            f"| {wp['b_efficiency_test_split']:.4f} | {_num(wp['light_rejection_test_split'], '{:.2f}')} "
            f"| {_num(wp['c_rejection_test_split'], '{:.2f}')} |"
        )
    lines += [
        "",
        f"`verify.py` applies each threshold to the C-simulation outputs of the test vectors and requires the "
        f"b-efficiency of the test split within {out_spec['vector_check']['tolerance']}.",
    ]
    decision = out_spec.get("decision")
    if decision:
        score = decision["score"]
        lines += [
            "",
            "### Decision in firmware: `trigger_top`",
            "",
            f"`{decision['top']['function']}({', '.join(decision['top']['inputs'] + decision['top']['outputs'])})`: "
            f"front end `{decision['front_end']['front_end']}` -> network -> {score['formula']}.",
            f"Score type `{score['score_type']['c_type']}`; {score['bound']}. "
            f"Tag bits `{decision['tag_bits']['type']}`: " + "; ".join(decision["tag_bits"]["layout"]) + ".",
            "",
            "| bit | b-efficiency | threshold code | threshold value | b-eff. achieved (test) |",
            "|---|---|---|---|---|",
        ]
        for row in decision["thresholds"]:
            lines.append(
                f"| {row['bit']} | {row['b_efficiency']:.0%} | {row['code']} | {row['value']!r} | "
                f"{row['b_efficiency_test_split']:.4f} |"
            )
        lines += [
            "",
            f"Thresholds from {decision['thresholds_from']}. `verify.py` recomputes every expected score and tag "
            "word from its logit codes and runs trigger_top's C simulation on the test and hostile vectors.",
            "",
            "Your own jets through trigger_top's C simulation (after every check passes; one jet per line, "
            f"the {decision['n_words']} integer words of `{verifier.TOP_INPUTS}`'s layout, `spec/input_spec.json` "
            "`trigger_top`): `python3 verify.py --run-top my_jets.txt --out my_tags.txt` writes per jet the "
            "logit codes, the score code and the tag word; a malformed line is named, exit status 2, no output.",
        ]
    return lines


def _metric_rows(metrics: dict[str, Any], kinds: list[str]) -> list[str]:
    lines = []
    for key, label in (
        ("auc_b_vs_light", "AUC b vs light"),
        ("rej_light_at_70", "light rejection @ 70 %"),
        ("rej_light_at_77", "light rejection @ 77 %"),
        ("rej_c_at_70", "c rejection @ 70 %"),
        ("rej_c_at_77", "c rejection @ 77 %"),
    ):
        cells = []
        for k in kinds:
            stat = metrics[k].get(f"{key}_stat")
            cells.append(_num(metrics[k].get(key)) + ("" if stat is None else f" ± {stat:.1f}"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _performance(report: Report) -> list[str]:
    evaluation, fid = report.evaluation, report.fidelity
    if evaluation is None or not isinstance(fid, NetworkFidelity | BDTFidelity):
        raise TriggerMLError(f"{report.model}: the report is not a firmware network's", "rebuild the bundle")
    trees = isinstance(fid, BDTFidelity)  # a BDT's run names its quantized and float trees so
    names = {
        "firmware": "this firmware",
        "csim": "C simulation (this firmware)",
        "qkeras": "quantized trees" if trees else "QKeras",
        "float": "float trees" if trees else "float twin",
    }
    evaluation_metrics = {k: m.model_dump() for k, m in evaluation.metrics.items()}
    kinds = [k for k in ("firmware", "qkeras", "float") if k in evaluation_metrics]
    lines = [
        "## Performance on the evaluation sample",
        "",
        f"{evaluation.n_jets} jets generated independently of the training sample (seed "
        f"{evaluation.seed}); the firmware's outputs by the {evaluation.evaluated_by}; ± is the "
        "binomial statistical uncertainty. The report is in `report/` (`report.json`, `report.md`, ROC curve).",
        "",
        "| metric | " + " | ".join(names[k] for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
        *_metric_rows(evaluation_metrics, kinds),
    ]
    metrics = {k: m.model_dump() for k, m in report.metrics.items()}
    kinds = [k for k in ("csim", "qkeras", "float") if k in metrics]
    lines += [
        "",
        f"On the {report.data.jets_per_split['test']} test jets of the training sample (the "
        "working-point thresholds of this card are set there):",
        "",
        "| metric | " + " | ".join(names[k] for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
        *_metric_rows(metrics, kinds),
    ]
    lines += [
        "",
        f"Fidelity: the C simulation equals the {fid.reference} model bit for bit on a fraction "
        f"**{fid.csim_vs_reference_exact_fraction}** of {fid.n_jets} test jets"
        + (
            f"; unchanged when the tracks are shuffled on **{fid.permutation_invariant_fraction}**."
            if getattr(fid, "permutation_invariant_fraction", None) is not None
            else "."
        ),
        "",
        "### Cost",
        "",
        f"Sources available: {', '.join(k for k, v in report.cost.sources.items() if v) or 'none'}; "
        "the most trustworthy is shown (vendor > rtl > da4ml > estimate).",
        "",
        format_cost_table(report.cost.best.model_dump()).rstrip("\n"),
    ]
    return lines


def _hostile(hostile: dict[str, Any] | None) -> list[str]:
    """The hostile-vector section of the card (bundle format 2)."""
    if not hostile:
        return []
    families = ", ".join(f"`{name}` {count}" for name, count in hostile["families"].items())
    return [
        "## Hostile vectors",
        "",
        f"{hostile['count']} inputs no jet of the sample looks like, in named families ({families}): every "
        "element at the input type's largest or smallest code, values beyond its range (saturated or wrapped "
        "by the port's overflow mode) and half or a quarter of an lsb off its grid (its rounding mode), "
        "uniformly random codes, an empty jet, every slot filled, one track with extreme values. Expected "
        f"outputs: {hostile['expected_outputs']}. `verify.py` runs them through the same testbench and "
        "reports each family; every output must equal the expected one exactly.",
        "",
        "| file | content |",
        "|---|---|",
        f"| `{verifier.HOSTILE_FAMILIES}` | family of each vector |",
        f"| `{verifier.HOSTILE_INPUTS}` | input values as exact decimals, float32 numbers (off the grid and "
        "beyond the range on purpose) |",
        f"| `{verifier.HOSTILE_INPUT_CODES}` | the codes the port's conversion gives them |",
        f"| `{verifier.HOSTILE_OUTPUT_CODES}` | expected output integer codes |",
        "",
    ]


def model_card(
    config: ModelConfig,
    report: dict[str, Any],
    provenance: dict[str, Any],
    in_spec: dict[str, Any],
    out_spec: dict[str, Any],
    extra_vendor_script: str,
) -> str:
    """README.md of a bundle. Nothing in it depends on time or machine (it is in MANIFEST)."""
    arch, q, t = config.architecture, config.quantization, config.training
    vectors = provenance["test_vectors"]
    sqrt_s = (provenance["data"]["sample"].get("settings") or {}).get("sqrt_s_gev")
    energy = f" at sqrt(s) = {sqrt_s / 1000:g} TeV" if sqrt_s else ""
    shape = (
        f"Deep Set: Phi {list(arch.phi_widths)} per track, mean over {config.inputs.max_tracks} slots, "
        f"F {list(arch.f_widths)}, 3 logits"
        if arch.kind == "deepsets"
        else f"dense network {list(arch.f_widths)} on the flattened inputs, 3 logits"
    )
    if not q.enabled:
        quant = f"post-training quantization by hls4ml (default type {config.hls.default_precision})"
    elif q.is_hgq:
        h = q.hgq_settings()
        quant = (
            f"quantization-aware (HGQ): a learned bit width per weight and per activation channel "
            f"(resource regulariser beta {h.beta:g}), inputs {q.input.bits} bits"
        )
    else:
        layers = ", ".join(
            f"{name} {q.weight_for(name).bits}/{q.activation_for(name).bits if name != 'logits' else '-'}"
            for name in arch.dense_layer_names()
        )
        pruned = (
            f"; pruned {', '.join(f'{k} {v:.0%}' for k, v in p.sparsity_by_layer(arch.dense_layer_names()).items())}"
            if (p := config.training.pruning) is not None
            else ""
        )
        quant = (
            f"quantization-aware (QKeras): weight/activation bits per layer {layers}; "
            f"inputs {q.input.bits} bits{pruned}"
        )
    from trigger_ml.kinds import kind_of

    own = kind_of(config).card_sections(config, report)  # a kind's own paragraphs (e.g. a BDT's)
    lines = [
        f"# {config.name}: b-tagging firmware bundle",
        "",
        config.description,
        "",
        "A jet-flavour tagger for a Level-1 trigger: three outputs (b, c, light logits) per jet from up to "
        f"{config.inputs.max_tracks} tracks, as HLS C++ for {config.hls.backend} HLS "
        f"(part `{config.hls.part}`, {config.hls.clock_period_ns} ns clock). The C simulation of this code "
        "reproduces the trained network bit for bit; the test vectors below prove it on your machine.",
        "",
        "**Firmware identity**: the SHA-256 of `MANIFEST`. The directory name carries its first 12 hex "
        "digits; `python3 verify.py` prints it in full. Two builds from the same trained model have the "
        "same identity and the same bytes.",
        "",
        "## Verify",
        "",
        "```sh",
        "python3 verify.py             # needs only python3 with numpy, and g++",
        "python3 verify.py BUNDLE.tar.gz",
        "sha256sum -c MANIFEST         # the hashes alone",
        "```",
        "",
        "`verify.py` checks `BUILD_INFO.json`, that `MANIFEST` hashes to the identity, every file's SHA-256 "
        "(and that no file is unlisted), the consistency of the test vectors; then it copies `hls/` to a "
        "temporary directory, compiles the C simulation with g++, runs the project's own testbench on every "
        "test vector and requires each output to equal the expected one exactly, and checks the working "
        "points (below). It stops at the first problem with one line naming the file or vector, exit "
        "status 1; 0 means everything passed. `trigger-ml verify BUNDLE` runs the same code.",
        "",
        "## Build with the vendor tools",
        "",
        "```sh",
        "cp -r hls ~/build/tagger && cd ~/build/tagger   # work on a copy: the bundle stays verifiable",
        "vitis-run --mode hls --tcl build_prj.tcl    # Vitis HLS: steps chosen in build_opt.tcl"
        if config.hls.backend == "Vitis"
        else 'vivado_hls -f build_prj.tcl "csim=1 synth=1 cosim=1 validation=1"',
        'vivado_hls -f build_prj_vivado_hls.tcl "csim=1 synth=1 cosim=1 validation=1"'
        if extra_vendor_script == "build_prj_vivado_hls.tcl"
        else "vitis-run --mode hls --tcl build_prj_vitis.tcl   # steps in build_opt.tcl",
        "```",
        "",
        f"`hls/` is the hls4ml project generated for the {config.hls.backend} backend. `{extra_vendor_script}` "
        "is hls4ml's script for the other tool on the same sources (hls4ml generates slightly different "
        "library code per backend, so prefer the first command). C simulation and C/RTL co-simulation "
        "read the test vectors in `hls/tb_data/`; the testbench writes `tb_data/csim_results.log` and "
        "`tb_data/rtl_cosim_results.log` with exact values, and `validation=1` requires the two identical. "
        "`build_lib.sh` builds the shared library hls4ml's Python bridge loads.",
        "",
        "## Model",
        "",
        f"- architecture: {shape}; {report['n_params'].get('qkeras', report['n_params'].get('float'))} parameters",
        f"- training: {quant}; {t.epochs} epochs at most, seed {t.seed}",
        f"- data: Pythia 8 {config.sample.process} jets{energy} with a parametrised tracking detector "
        f"({', '.join(f'{k} {v}' for k, v in report['data']['jets_per_split'].items())} jets)",
        f"- labels: hadron-based (b, c, light); D_b with f_c = {config.physics.f_c}",
        "",
        "## Intended use and limitations",
        "",
        "- For Level-1 trigger studies and firmware integration of a track-based b-tagger. It was trained "
        "and measured on simulated jets with a parametrised detector model (no pile-up, no full detector "
        "simulation): retrain or at least validate on the experiment's own simulation and data.",
        "- The physics figures carry the statistical precision of the test split; the working points are "
        "set on it.",
        "- The firmware is exact only for inputs encoded as specified below (scaling, rounding, "
        "saturation, track order, padding); anything else changes the outputs.",
        "- Latency and resources below are an estimate unless their source says `vendor`.",
        "",
        *_interface(in_spec, out_spec),
        "",
        *_performance(Report.model_validate(report)),
        "",
        "## Test vectors",
        "",
        f"{vectors['count']} jets: {vectors['selection']}. One line per jet in every file:",
        "",
        "| file | content |",
        "|---|---|",
        f"| `{verifier.TB_INPUTS}` | input values as exact decimals (what the testbench reads) |",
        f"| `{verifier.INPUT_CODES}` | input integer codes (value / lsb) |",
        f"| `{verifier.INPUT_WORDS}` | the packed input word in hexadecimal |",
        f"| `{verifier.TB_OUTPUTS}` | expected outputs of the C simulation, exact decimals |",
        f"| `{verifier.OUTPUT_CODES}` | expected output integer codes |",
        f"| `{verifier.LABELS}` | row of the jet in the data file, truth class (0 b, 1 c, 2 light) |",
        "",
        *_hostile(provenance.get("hostile_vectors")),
        "## Files",
        "",
        "| path | content |",
        "|---|---|",
        "| `hls/` | HLS project: `firmware/` sources and weights, testbench, build scripts, test vectors |",
        "| `vectors/` | test vectors in integer encodings, truth classes |",
        "| `spec/` | input and output specifications with the working points |",
        "| `report/` | physics, fidelity and cost report of the HLS project, plots |",
        "| `provenance.json` | configuration, hashes of configuration, training and data, seeds |",
        "| `verify.py`, `verify_files.py`, `verify_top.py` | the verifier (python3, numpy, g++): run "
        "`verify.py`; it loads the other two from its own directory |",
        "| `MANIFEST` | SHA-256 of every other file; its own SHA-256 is the firmware identity |",
        "| `BUILD_INFO.json` | where and with what it was built; not in MANIFEST, not part of the identity |",
        "",
        "## Provenance",
        "",
        f"- configuration sha256 `{provenance['config_sha256']}` (resolved configuration in `provenance.json`)",
        f"- training sha256 `{provenance['training_sha256']}`, run `{provenance['run']}`",
        f"- data sha256 `{provenance['data']['sha256']}` (`{provenance['data']['file']}`)",
        "- seeds: " + ", ".join(f"{k} {v}" for k, v in provenance["seeds"].items()),
        "- git commit, package versions (TensorFlow, QKeras, hls4ml, numpy, Pythia), g++ and platform: "
        "`BUILD_INFO.json`, kept outside the identity because they describe the build machine, not the "
        "firmware.",
    ]
    return "\n".join(_own_sections(lines, own)) + "\n"


def _own_sections(lines: list[str], own: dict[str, str]) -> list[str]:
    """``lines`` with a kind's own paragraphs: ``build`` replaces the body of "Build with the vendor
    tools", ``architecture`` and ``training`` the model lines starting with those words."""
    if "build" in own:
        start, end = lines.index("## Build with the vendor tools"), lines.index("## Model")
        lines = [*lines[: start + 2], own["build"], "", *lines[end:]]
    for key in ("architecture", "training"):
        if key in own:
            lines = [own[key] if line.startswith(f"- {key}: ") else line for line in lines]
    return lines
