"""The ``decision`` stage: ``hls_projects/<model>/decision/`` beside the model's hls4ml project.

From the finished HLS project it derives the score type, sets the working points' integer
thresholds on the firmware score of the test split, writes ``decision.h``, the model's
``decision_config.h``, ``trigger_top`` (front end -> ``myproject`` -> decision) and its
testbench, compiles that once with g++ (linking hls4ml's own build of the network) and runs
every test jet, every hostile vector and every test jet with its tracks shuffled through it in
one process. The outputs must equal the Python chain (front end -> the kind's reference model ->
the integer emulation of the decision); the block's Verilog is checked and costed with Yosys;
the rejections of the firmware decision are compared with the exact D_b. Everything goes into
``decision.json`` and, when loaded, into the project's report.json (``decision``,
``cost.blocks``)::

    decision/
        firmware/decision.h, decision_config.h, trigger_top.h, trigger_top.cpp
        trigger_top_test.cpp   the testbench (integer words in, codes out)
        rtl/                   btag_decision.v, Yosys script, logs and statistics
        vectors/               the front end's hostile words, families, expected outputs
        decision.json          the summary (score, thresholds, fidelity, physics, cost, timings)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.decision import hls
from trigger_ml.decision.cost import check_and_cost
from trigger_ml.decision.frontend import FrontEnd, csim_test_split, front_end_for
from trigger_ml.decision.physics import decision_physics
from trigger_ml.decision.score import (
    ScoreSpec,
    logit_codes,
    max_form_codes,
    score_spec,
    tag_bits,
    threshold_code,
)
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import read_json, sha256_of_file, write_json_atomic, write_text_atomic
from trigger_ml.firmware.hostile import agreement
from trigger_ml.firmware.interface import Interface, read_interface
from trigger_ml.kinds import kind_of
from trigger_ml.logs import stage_logger, timed
from trigger_ml.physics import B
from trigger_ml.runner import Need, Stage
from trigger_ml.training import TrainedRun
from trigger_ml.workspace import Workspace

logger = stage_logger("decision")

SUBDIR = "decision"
SUMMARY = "decision.json"
PROJECT_SUBDIR = "hls4ml_prj"
PROJECT_NAME = "myproject"


def check_supported(config: ModelConfig) -> None:
    """Raise a UsageError naming why ``config`` gets no decision block."""
    if not config.decision_settings.enabled:
        raise UsageError(
            f"{config.name}: decision.enabled is false", "drop the override to build the decision"
        )
    if not config.hls.enabled or kind_of(config).firmware_stage != "hls":
        raise UsageError(
            f"{config.name}: no hls4ml network firmware, so no decision block",
            "the decision is built for network kinds (qkeras-deepsets, qkeras-dense, hgq, ptq, user-keras)",
        )


def wants_decision(config: ModelConfig) -> bool:
    """Does ``trigger-ml hls`` build the decision of ``config``?"""
    try:
        check_supported(config)
    except UsageError:
        return False
    return True


class DecisionStage(Stage[dict[str, Any]]):
    """``decision``: ``hls_projects/<model>/decision/``; the artefact is decision.json's content,
    also stored in report.json."""

    name = "decision"
    version = 3

    def needs(self, subject: ModelConfig) -> dict[str, Need]:
        check_supported(subject)
        return {name: Need(name, subject) for name in ("hls", "train", "data", "evaluation-data")}

    def output_dir(self, subject: ModelConfig, ws: Workspace) -> Path:
        return ws.hls_dir(subject.name) / SUBDIR

    def key(self, subject: ModelConfig, inputs: Any) -> dict[str, Any]:
        report = inputs["hls"]
        network = inputs.ws.hls_dir(subject.name) / PROJECT_SUBDIR / "firmware" / f"{PROJECT_NAME}.cpp"
        return {
            "config_sha256": report["config_sha256"],
            "firmware_sha256": sha256_of_file(network),  # a rebuilt network rebuilds the top
            "data_sha256": inputs["data"].sha256,
            "evaluation_sha256": inputs["evaluation-data"].sha256,
            "decision": subject.decision_settings.model_dump(mode="json"),
            "f_c": subject.physics.f_c,
            "front_end": front_end_for(
                subject, read_interface(network.parent.parent, PROJECT_NAME)
            ).identity(),
        }

    def run(self, subject: ModelConfig, inputs: Any, out: Path) -> None:
        build_decision(
            subject,
            inputs["train"],
            inputs["data"].path,
            inputs["evaluation-data"].path,
            inputs.ws.hls_dir(subject.name),
            out,
            inputs.ws.cache_dir("block-costs"),
        )

    def load(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> dict[str, Any]:
        summary = read_json(out / SUMMARY)
        project_dir = out.parent
        if read_json(project_dir / "report.json").get("decision") != summary:
            store_in_report(project_dir, summary)
        return summary


def store_in_report(project_dir: Path, summary: dict[str, Any]) -> None:
    """``decision`` and ``cost.blocks`` of report.json (validated, atomic) and report.md."""
    from trigger_ml.artefacts import read_report, write_report_json
    from trigger_ml.report import markdown_report

    report = read_report(project_dir)
    cost = report.cost.model_dump(exclude_unset=True, by_alias=True)
    cost["blocks"] = summary["cost"]
    updated = write_report_json(project_dir, report.updated(cost=cost, decision=summary))
    write_text_atomic(project_dir / "report.md", markdown_report(updated.as_json()))


def _network_logits(config: ModelConfig, model: Any, codes: np.ndarray, interface: Interface) -> np.ndarray:
    values = (np.asarray(codes, np.float64) * interface.input.fixed.lsb).astype(np.float32)
    if config.architecture.kind == "deepsets":
        values = values.reshape(len(values), config.inputs.max_tracks, -1)
    return np.asarray(model.predict(values, batch_size=4096, verbose=0), np.float64).reshape(len(values), -1)


def _compare(
    spec: ScoreSpec, got: np.ndarray, want_logits: np.ndarray | None, thresholds: list[int]
) -> dict[str, np.ndarray]:
    """Per jet: the decision block equals its emulation on the top's own logits (``block``) and
    the whole output equals the Python chain (``chain``; None without reference logits)."""
    n_out = got.shape[1] - 2
    own = max_form_codes(spec, got[:, :n_out])
    block = (got[:, n_out] == own) & (got[:, n_out + 1] == tag_bits(own, thresholds))
    result = {"block": block}
    if want_logits is not None:
        score = max_form_codes(spec, want_logits)
        result["chain"] = (
            np.all(got[:, :n_out] == want_logits, axis=1)
            & (got[:, n_out] == score)
            & (got[:, n_out + 1] == tag_bits(score, thresholds))
        )
    return result


def build_decision(
    config: ModelConfig,
    run: TrainedRun,
    data_path: Path,
    evaluation_path: Path,
    project_dir: Path,
    out: Path,
    cache_dir: Path | None = None,
) -> None:
    """Write ``out`` (see the module docstring) for the finished HLS project at ``project_dir``.
    Raises TriggerMLError, writing nothing, when the decision block's C simulation or its
    Verilog differs from the integer emulation."""
    timings: dict[str, float] = {}
    settings = config.decision_settings
    prj = project_dir / PROJECT_SUBDIR
    interface = read_interface(prj, PROJECT_NAME)
    spec = score_spec(interface.output.fixed, config.physics.f_c, settings.score_fractional_bits)
    front: FrontEnd = front_end_for(config, interface)
    kind = kind_of(config)
    with timed(timings, "prepare_s"):
        split = csim_test_split(config, data_path, project_dir, run.scaling, run.jet_scaling)
        classes = split["classes"]
        csim_codes = logit_codes(spec, split["logits"])
        score_csim = max_form_codes(spec, csim_codes)
        thresholds = [threshold_code(score_csim[classes == B], eff) for eff in settings.working_points]
        words = {"test": front.words(split["jets"])}
        words["hostile"], hostile_families = front.hostile()
        shuffled = front.shuffled(words["test"], seed=config.split.seed)
        if shuffled is not None:
            words["shuffled"] = shuffled
    with timed(timings, "reference_s"):
        if kind.claims_exactness:
            model = run.load_reference(config)
            reference = (
                f"front end {front.name} -> the {kind.reference(config)} model -> the integer decision"
            )
            want = {
                part: logit_codes(
                    spec, _network_logits(config, model, front.network_codes(words[part]), interface)
                )
                for part in ("test", "hostile")
            }
        else:
            reference = (
                f"front end {front.name} -> hls4ml's C simulation of the network ({kind.name}: {kind.exactness}) "
                "-> the integer decision"
            )
            want = {"test": csim_codes, "hostile": None}
    logger.info(
        f"{config.name}: writing trigger_top ({front.name} -> {PROJECT_NAME} -> decision) and compiling it with g++"
    )
    hls.write_sources(out, front, interface, spec, thresholds, settings.working_points)
    with timed(timings, "compile_s"):
        # The log beside the project's other logs, kept when g++ fails (``out`` is then removed).
        build = hls.compile_top(out, prj, PROJECT_NAME, project_dir / "logs")
    parts = list(words)
    logger.info(
        f"{config.name}: C simulation of trigger_top on "
        + ", ".join(f"{len(words[p])} {p}" for p in parts)
        + " jets"
    )
    with timed(timings, "csim_s"):
        got_all = hls.run_top(
            build, np.concatenate([words[p] for p in parts]), out, interface.output.elements
        )
    build.binary.unlink()
    got, start = {}, 0
    for part in parts:
        got[part], start = got_all[start : start + len(words[part])], start + len(words[part])
    test = _compare(spec, got["test"], want["test"], thresholds)
    host = _compare(spec, got["hostile"], want["hostile"], thresholds)
    for name, same in (("test jets", test["block"]), ("hostile vectors", host["block"])):
        if not same.all():
            raise TriggerMLError(
                f"{config.name}: trigger_top's decision differs from its integer emulation on "
                f"{int((~same).sum())} of {len(same)} {name}",
                "report this as a bug (decision.h and trigger_ml.decision.score disagree)",
            )
    fidelity: dict[str, Any] = {
        "reference": reference,
        "network_object": build.network_object,
        "n_test_jets": int(len(classes)),
        "test_exact_fraction": float(test["chain"].mean()),
        "hostile": (
            agreement(hostile_families, got["hostile"], _expected(spec, want["hostile"], thresholds))
            if want["hostile"] is not None
            else None
        ),
        "hostile_note": None
        if want["hostile"] is not None
        else f"{kind.name} does not claim bit-exactness: block checked only",
        "permutation_invariant_fraction": (
            float(np.all(got["shuffled"] == got["test"], axis=1).mean()) if "shuffled" in got else None
        ),
    }
    hostile_rows = (
        _expected(spec, want["hostile"], thresholds) if want["hostile"] is not None else got["hostile"]
    )
    write_hostile_vectors(out, words["hostile"], hostile_families, hostile_rows)
    if not test["chain"].all():
        logger.warning(
            f"{config.name}: trigger_top differs from the Python chain on {int((~test['chain']).sum())} test jets"
        )
    with timed(timings, "physics_s"):
        with h5py.File(project_dir / "evaluation_predictions.h5", "r") as handle:
            eval_logits = handle["logits_firmware"][()].astype(np.float64)
            eval_classes = handle["classes"][()]
        physics = {
            "evaluation": decision_physics(
                spec,
                eval_logits,
                logit_codes(spec, eval_logits),
                eval_classes,
                settings.working_points,
                thresholds,
            ),
            "test": decision_physics(
                spec, split["logits"], csim_codes, classes, settings.working_points, thresholds
            ),
        }
    logger.info(f"{config.name}: the decision block as Verilog: gate-level check and Yosys synth_xilinx")
    with timed(timings, "rtl_s"):
        checked = np.concatenate([got["test"], got["hostile"]])
        n_out = interface.output.elements
        rtl = check_and_cost(
            spec,
            thresholds,
            checked[:, :n_out],
            checked[:, n_out],
            checked[:, n_out + 1],
            config.hls.part,
            config.hls.clock_period_ns,
            out / "rtl",
        )
    timings["yosys_s"] = rtl["yosys_seconds"]
    summary = {
        "front_end": front.name,
        "score": spec.to_dict(),
        "thresholds": [
            {
                "bit": k,
                "b_efficiency": eff,
                "code": code,
                "value": code * spec.score.lsb,
                "b_efficiency_test_split": float(np.mean(score_csim[classes == B] >= code)),
            }
            for k, (eff, code) in enumerate(zip(settings.working_points, thresholds, strict=True))
        ],
        "thresholds_from": f"the firmware score of the test split ({len(classes)} jets, {int((classes == B).sum())} b)",
        "tag_bits": {
            "type": f"ap_uint<{len(thresholds)}>",
            "layout": [
                f"bit {k}: score_code >= threshold of {eff:.0%}"
                for k, eff in enumerate(settings.working_points)
            ],
        },
        "top": {
            "function": hls.TOP,
            "files": [f"{SUBDIR}/firmware/{name}" for name in (*hls.SOURCES, *front.files)],
            "testbench": f"{SUBDIR}/{hls.TESTBENCH}",
            "inputs": front.parameters,
            "outputs": [
                f"{interface.output.type_name} logits[{interface.output.size_expr}]",
                "btag_score_t &score",
                "btag_tags_t &tags",
            ],
        },
        "fidelity": fidelity,
        "physics": physics,
        "cost": {"front_end": front.cost(config.hls.clock_period_ns, cache_dir), "decision": rtl["section"]},
        "rtl": {"verilog": f"{SUBDIR}/rtl/btag_decision.v", "n_vectors_checked": rtl["n_vectors_checked"]},
        "firmware_sha256": sha256_of_file(prj / "firmware" / f"{PROJECT_NAME}.cpp"),
        "timings_s": {key: round(value, 3) for key, value in timings.items()},
    }
    write_json_atomic(out / SUMMARY, summary)
    wp = physics["evaluation"]["working_points"][0]
    logger.info(
        f"{config.name}: trigger_top == Python chain on {fidelity['test_exact_fraction']:.6f} of {len(classes)} test jets; "
        f"at {wp['b_efficiency']:.0%}: light rejection {wp['exact']['rej_light']} (exact D_b) vs "
        f"{wp['firmware']['rej_light']} (firmware bits, b-eff {wp['firmware']['b_efficiency']:.4f})"
    )


HOSTILE_WORDS = "vectors/hostile_words.txt"
HOSTILE_FAMILIES = "vectors/hostile_families.txt"
HOSTILE_OUTPUTS = "vectors/hostile_outputs.txt"


def write_hostile_vectors(out: Path, words: np.ndarray, families: tuple[str, ...], rows: np.ndarray) -> None:
    """``out/vectors/``: the front end's hostile words, their families and their expected rows
    (logit codes, score code, tag word: the Python chain's, or the C simulation's for a kind
    that does not claim exactness), which the firmware bundle copies."""
    (out / "vectors").mkdir(parents=True, exist_ok=True)
    for relative, lines in (
        (HOSTILE_WORDS, (" ".join(map(str, row)) for row in np.asarray(words, np.int64).tolist())),
        (HOSTILE_FAMILIES, families),
        (HOSTILE_OUTPUTS, (" ".join(map(str, row)) for row in np.asarray(rows, np.int64).tolist())),
    ):
        write_text_atomic(out / relative, "".join(f"{line}\n" for line in lines))


def read_hostile_vectors(decision_dir: Path) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """What :func:`write_hostile_vectors` wrote."""
    words = np.loadtxt(decision_dir / HOSTILE_WORDS, dtype=np.int64, ndmin=2)
    families = tuple((decision_dir / HOSTILE_FAMILIES).read_text(encoding="utf-8").split())
    rows = np.loadtxt(decision_dir / HOSTILE_OUTPUTS, dtype=np.int64, ndmin=2)
    return words, families, rows


def _expected(spec: ScoreSpec, logits: np.ndarray, thresholds: list[int]) -> np.ndarray:
    """The Python chain's rows (logit codes, score code, tag word) for reference logit codes."""
    score = max_form_codes(spec, logits)
    return np.column_stack([logits, score, tag_bits(score, thresholds)])
