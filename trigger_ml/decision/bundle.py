"""The decision block in a firmware bundle (format 3): its sources in ``hls/``, the block's
Verilog in ``rtl/``, ``trigger_top``'s vectors (front-end words in; logit codes, score code and
tag word out) and the ``decision`` section of ``spec/output_spec.json`` that ``verify.py``
recomputes the bits from."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.decision import hls
from trigger_ml.decision.frontend import FrontEnd, FrontEndJets
from trigger_ml.decision.score import logit_codes, max_form_codes, score_spec, tag_bits
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import read_json, sha256_of_file
from trigger_ml.firmware import verifier
from trigger_ml.firmware.interface import Interface

SUBDIR = "decision"
SUMMARY = "decision.json"


def decision_summary(config: ModelConfig, project_dir: Path) -> dict[str, Any]:
    """The decision stage's summary of the project, checked to belong to its firmware."""
    path = project_dir / SUBDIR / SUMMARY
    fix = f"run `trigger-ml hls '{config.name}'` (it builds the decision block)"
    if not path.is_file():
        raise TriggerMLError(f"{path} is missing: the project has no decision block yet", fix)
    summary = read_json(path)
    network = project_dir / "hls4ml_prj" / "firmware" / "myproject.cpp"
    if summary.get("firmware_sha256") != sha256_of_file(network):
        raise TriggerMLError(f"{path} was built for another network than {network}", fix)
    return summary


def copy_sources(project_dir: Path, root: Path) -> None:
    """``decision/firmware/*`` into ``hls/firmware/``, the testbench into ``hls/``, the block's
    Verilog into ``rtl/``."""
    source = project_dir / SUBDIR
    for path in sorted((source / "firmware").iterdir()):
        shutil.copyfile(path, root / verifier.HLS_DIR / "firmware" / path.name)
    shutil.copyfile(source / hls.TESTBENCH, root / verifier.HLS_DIR / hls.TESTBENCH)
    (root / "rtl").mkdir(exist_ok=True)
    shutil.copyfile(source / "rtl" / "btag_decision.v", root / "rtl" / "btag_decision.v")


def write_top_vectors(
    root: Path,
    config: ModelConfig,
    interface: Interface,
    front: FrontEnd,
    jets: FrontEndJets,
    logits: np.ndarray,
    summary: dict[str, Any],
    decision_dir: Path,
) -> dict[str, Any]:
    """Write trigger_top's vectors through its front end ``front``: the test vectors' jets (``jets``, their C-simulation
    ``logits``) as the front end's words, then its hostile vectors: the network's (read back
    from ``root``) when the front end passes features through, else the front end's own with
    the rows the decision stage checked (``decision_dir/vectors``). Returns the output spec's
    ``decision`` section."""
    from trigger_ml.decision.stage import read_hostile_vectors

    settings = config.decision_settings
    spec = score_spec(interface.output.fixed, config.physics.f_c, settings.score_fractional_bits)
    if spec.to_dict() != summary["score"]:
        raise TriggerMLError(
            "the decision block was built with another score type or f_c than the configuration gives",
            f"run `trigger-ml hls '{config.name}'`",
        )
    thresholds = [row["code"] for row in summary["thresholds"]]
    hostile_words, families = front.hostile()
    if front.hostile_from_network:
        hostile_codes = np.loadtxt(root / verifier.HOSTILE_OUTPUT_CODES, dtype=np.int64, ndmin=2)
    else:
        stored_words, stored_families, stored_rows = read_hostile_vectors(decision_dir)
        if not (np.array_equal(stored_words, hostile_words) and stored_families == families):
            raise TriggerMLError(
                f"{decision_dir}: its hostile words are not the front end's",
                f"run `trigger-ml hls --force '{config.name}'`",
            )
        hostile_codes = stored_rows[:, : interface.output.elements]
    words = np.concatenate([front.words(jets), hostile_words])
    codes = np.concatenate([logit_codes(spec, logits), hostile_codes])
    score = max_form_codes(spec, codes)
    rows = np.column_stack([codes, score, tag_bits(score, thresholds)])
    if not front.hostile_from_network and not np.array_equal(rows[len(logits) :], stored_rows):
        raise TriggerMLError(
            f"{decision_dir}: the hostile rows' score codes or tag bits are not the decision of their logits",
            f"run `trigger-ml hls --force '{config.name}'`",
        )
    for relative, table in ((verifier.TOP_INPUTS, words), (verifier.TOP_OUTPUTS, rows)):
        (root / relative).write_text(
            "".join(" ".join(map(str, row)) + "\n" for row in table.tolist()), encoding="utf-8"
        )
    (root / verifier.TOP_FAMILIES).write_text(
        "".join(f"{name}\n" for name in ("test",) * len(logits) + tuple(families)), encoding="utf-8"
    )
    return {
        "top": summary["top"],
        "front_end": front.spec(),
        "score": summary["score"],
        "thresholds": summary["thresholds"],
        "thresholds_from": summary["thresholds_from"],
        "tag_bits": summary["tag_bits"],
        "n_words": front.n_words,
        "emulation": {
            "offset_c": spec.offset_c,
            "offset_l": spec.offset_l,
            "shift": spec.shift,
            "thresholds": thresholds,
            "rule": "score = (z_b - max(z_c + offset_c, z_l + offset_l)) >> shift (floor); "
            "tag bit k = score >= thresholds[k]; integer codes throughout (verify_top.py decision_outputs)",
        },
        "vectors": {
            "inputs": f"{verifier.TOP_INPUTS}: one jet per line, the front end's {front.n_words} integer words",
            "outputs": f"{verifier.TOP_OUTPUTS}: logit codes, score code, tag word (bit k = working point k)",
            "families": f"{verifier.TOP_FAMILIES}: each row's family (test, or the hostile family)",
            "rows": f"the {len(logits)} test vectors' jets, then {len(families)} hostile vectors",
            "n_test": int(len(logits)),
            "n_hostile": int(len(families)),
            "hostile_logits": "network" if front.hostile_from_network else "front_end",
        },
        "physics": summary["physics"],
        "cost": summary["cost"],
    }
