"""Input and output specifications of a firmware bundle (``spec/input_spec.json``,
``spec/output_spec.json``): what the upstream logic must drive, what the firmware returns,
and how a trigger applies a b-tagging working point to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.data.dataset import MIN_DR, FeatureScaling
from trigger_ml.firmware.interface import FixedType, Interface
from trigger_ml.firmware.verifier import WP_SIGMAS
from trigger_ml.physics import (
    CLASS_NAMES,
    LIGHT,
    B,
    C,
    discriminant_from_logits,
    rejection,
    threshold_at_efficiency,
)

if TYPE_CHECKING:
    from trigger_ml.decision.frontend import FrontEnd

TRACK_FEATURE_DOCS: dict[str, tuple[str, str]] = {
    "sd0": ("lifetime-signed transverse impact-parameter significance d0 / sigma(d0)", "1"),
    "sz0": ("lifetime-signed longitudinal impact-parameter significance z0 sin(theta) / sigma", "1"),
    "log_ptfrac": ("ln(track pT / jet pT)", "1 (natural log of a pT ratio)"),
    "log_dr": (f"ln(max(Delta R(track, jet axis), {MIN_DR:g}))", "1 (natural log of Delta R)"),
    "d0": ("lifetime-signed transverse impact parameter d0", "mm"),
    "z0sintheta": ("lifetime-signed longitudinal impact parameter z0 sin(theta)", "mm"),
    "valid": ("1 for a real track, 0 for a padding slot (never scaled)", "1"),
}
_ROUNDING_FUNCTIONS = {
    "AP_RND_CONV": "round_half_to_even",
    "AP_RND": "round_half_up",
    "AP_TRN": "floor",
    "AP_TRN_ZERO": "truncate_towards_zero",
}
JET_FEATURE_DOCS: dict[str, tuple[str, str]] = {
    "log_pt": ("ln(jet pT / GeV)", "1 (natural log of pT in GeV)"),
    "eta": ("jet pseudorapidity", "1"),
    "n_tracks": ("number of selected tracks of the jet before truncation", "1"),
}


def _code_formula(fixed: FixedType) -> str:
    """The integer code of a scaled value, spelled out for the type's modes."""
    low, high = fixed.code_range
    rounded = f"{_ROUNDING_FUNCTIONS[fixed.rounding]}(x_scaled / {fixed.lsb!r})"
    if fixed.overflow == "AP_SAT":
        return f"clip({rounded}, {low}, {high})"
    return f"{rounded} wrapped into [{low}, {high}] (two's complement, {fixed.width} bits)"


def _features(
    scaling: FeatureScaling, docs: dict[str, tuple[str, str]], lsb: float, first_index: int
) -> list[dict[str, Any]]:
    rows = []
    for i, (name, offset, scale) in enumerate(zip(scaling.names, scaling.offset, scaling.scale, strict=True)):
        definition, unit = docs[name]
        rows.append(
            {
                "index": first_index + i,
                "name": name,
                "definition": definition,
                "unit": unit,
                "offset": offset,
                "scale": scale,
                "raw_units_per_code": scale * lsb,
            }
        )
    return rows


def input_spec(
    config: ModelConfig,
    interface: Interface,
    scaling: FeatureScaling,
    jet_scaling: FeatureScaling | None,
    sample_settings: dict[str, Any] | None,
    permutation_invariant_fraction: float | None,
    front_end: FrontEnd | None = None,
) -> dict[str, Any]:
    """spec/input_spec.json: port, element order, features with units and scaling, encoding,
    track selection, ordering and padding. A front end that computes the network's inputs
    itself (``front_end.network_inputs_spec()``, e.g. from L1 track words) defines the features
    and the track selection instead of the sample's settings."""
    made_by_front_end = front_end.network_inputs_spec() if front_end is not None else None
    port = interface.input
    fixed = port.fixed
    n_slots = config.inputs.max_tracks
    n_features = len(scaling.names)
    deepsets = config.architecture.kind == "deepsets"
    layout = {
        "kind": config.architecture.kind,
        "track_slots": n_slots,
        "track_features": n_features,
        "element_index": (
            f"e = slot * {n_features} + feature  (slot 0..{n_slots - 1}, feature 0..{n_features - 1})"
            if deepsets
            else f"e = slot * {n_features} + feature for e < {n_slots * n_features}; "
            f"then jet feature j at e = {n_slots * n_features} + j"
        ),
        "features": _features(
            scaling, made_by_front_end["feature_docs"] if made_by_front_end else TRACK_FEATURE_DOCS, fixed.lsb, 0
        ),
    }
    if jet_scaling is not None:
        layout["jet_features"] = _features(jet_scaling, JET_FEATURE_DOCS, fixed.lsb, 0)
    if deepsets:
        order_note = (
            "The Deep Set averages Phi(track) over all slots (sum / "
            f"{n_slots}, an exact shift), so a padding slot contributes exactly zero wherever it "
            "sits and the order of the real tracks does not change the outputs"
            + (
                f" (C simulation: unchanged on a fraction {permutation_invariant_fraction} of test jets "
                "with their tracks shuffled)."
                if permutation_invariant_fraction is not None
                else "."
            )
            + " Which tracks are kept when a jet has more than "
            f"{n_slots} does matter."
        )
    else:
        order_note = "The dense network sees every slot at a fixed position: the ordering below is part of the interface."
    spec = {
        "project": interface.project,
        "port": port.to_dict(),
        "layout": layout,
        "encoding": {
            "scaled_value": "x_scaled = (x - offset) / scale for a real track; every feature of a padding slot is 0",
            "reference_arithmetic": "float32, as trigger_ml.data.dataset.FeatureScaling.apply",
            "code": f"code = {_code_formula(fixed)}; the firmware value is code * {fixed.lsb!r}",
            "word": f"the {fixed.width}-bit two's complement codes of all {port.elements} elements packed "
            f"into one {fixed.width * port.elements}-bit word, element e in bits "
            f"[{fixed.width}*e+{fixed.width - 1} : {fixed.width}*e]; vectors/input_words.hex gives it per "
            "test vector in hexadecimal, most significant digit first",
        },
        "tracks": {
            "selection": {
                key: (sample_settings or {}).get(key)
                for key in ("track_pt_min", "track_eta_max", "jet_r", "jet_pt_min", "jet_eta_max")
            }
            | {
                key: ((sample_settings or {}).get("detector") or {}).get(key)
                for key in ("d0_max_mm", "z0sintheta_max_mm")
            },
            "association": "each selected track belongs to the nearest jet axis within Delta R < jet_r",
            "ordering": "by signed d0 significance (sd0 before scaling), descending; slot 0 holds the highest",
            "truncation": f"the first {n_slots} tracks in that order are kept, the rest dropped",
            "padding": f"slots after the last real track (valid = 0) have every feature code 0; up to {n_slots} "
            "slots, always all driven",
            "note": order_note,
        },
    }
    if made_by_front_end:
        spec["tracks"] = made_by_front_end["tracks"]
        spec["entry"] = made_by_front_end["entry"]
        spec["encoding"]["scaled_value"] = made_by_front_end["scaled_value"]
    return spec


def working_points(
    logits: np.ndarray, classes: np.ndarray, f_c: float, efficiencies: tuple[float, ...], lsb: float
) -> list[dict[str, Any]]:
    """Thresholds on D_b giving each b-efficiency on the whole test split's C-simulation outputs,
    with what they achieve there (ties can make the achieved efficiency differ slightly)."""
    disc = discriminant_from_logits(logits, f_c)
    b_scores, c_scores, l_scores = (disc[classes == k] for k in (B, C, LIGHT))
    rows = []
    for efficiency in efficiencies:
        threshold = threshold_at_efficiency(b_scores, efficiency)
        rows.append(
            {
                "b_efficiency": efficiency,
                "threshold": threshold,
                "threshold_in_output_lsb": threshold / lsb,
                "b_efficiency_test_split": float(np.count_nonzero(b_scores > threshold)) / len(b_scores),
                "n_b_test_split": int(len(b_scores)),
                "light_rejection_test_split": rejection(l_scores, threshold),
                "c_rejection_test_split": rejection(c_scores, threshold) if len(c_scores) else None,
            }
        )
    return rows


def output_spec(
    config: ModelConfig, interface: Interface, logits: np.ndarray, classes: np.ndarray
) -> dict[str, Any]:
    """spec/output_spec.json: port, class order, the discriminant and the working points."""
    port = interface.output
    f_c = config.physics.f_c
    return {
        "project": interface.project,
        "port": port.to_dict(),
        "outputs": [{"index": i, "name": f"logit_{name}"} for i, name in enumerate(CLASS_NAMES)],
        "discriminant": {
            "f_c": f_c,
            "definition": "D_b = ln(p_b / (f_c p_c + (1 - f_c) p_light)), p = softmax(logit_b, logit_c, logit_light)",
            "from_logits": "D_b = logit_b - ln(f_c exp(logit_c) + (1 - f_c) exp(logit_light))",
            "reference_implementation": "float64: logit_b - logaddexp(ln(f_c) + logit_c, log1p(-f_c) + logit_light), "
            "with logit = code * lsb (exact); verify_files.py discriminant()",
            "decision": "the jet is b-tagged at a working point when D_b > threshold (strictly)",
            "firmware_form": "equivalently, b-tagged when f_c * exp(logit_c - logit_b + T) + (1 - f_c) * "
            "exp(logit_light - logit_b + T) < 1: two exponentials of logit differences (exact "
            "fixed-point subtractions) and a comparison; any LUT approximation must be checked "
            "against the test vectors",
            "monotonic_in_one_logit": False,
        },
        "working_points": working_points(logits, classes, f_c, config.physics.working_points, port.fixed.lsb),
        "working_points_from": f"C simulation of the whole test split ({len(logits)} jets)",
        "vector_check": {
            "rule": "b-efficiency on the vectors within tolerance of b_efficiency_test_split",
            "tolerance": f"{WP_SIGMAS:g} standard deviations of a hypergeometric draw of the vectors' "
            "b-jets from the test split's: 3 sqrt(eff (1 - eff) / n_vec (N - n_vec) / (N - 1)); zero when "
            "the vectors are the whole test split",
        },
    }
