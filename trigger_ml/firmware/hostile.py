"""Hostile and out-of-distribution inputs: named families of vectors no training jet looks like.

Given the firmware's input layout (track slots x track features, then any jet features) and
its input port type (:class:`~trigger_ml.firmware.interface.FixedType`, read from the
generated C++), :func:`hostile_vectors` makes these families, each a few vectors:

=======================  ======================================================================
``max_codes``            every element at the type's largest code
``min_codes``            every element at the type's smallest code
``beyond_range``         values past either end of the range (the port's overflow mode: AP_SAT
                         saturates), from one lsb beyond up to 2^(integer + 8)
``rounding_ties``        values half and a quarter of an lsb off the grid, and half an lsb past
                         either end (the port's rounding mode decides)
``uniform_codes``        every element a uniformly random code of the whole range
``empty_jet``            no track: every slot is padding (all zero); jet features random
``all_slots_filled``     every slot a real track (``valid`` = 1), its features random codes
``single_extreme_track`` one real track in slot 0 whose features are at or beyond the range
=======================  ======================================================================

Every value is a float32 number (the testbench and hls4ml's C simulation read float32), so
what reaches the port is decided by the port's own conversion alone: the reference model of a
kind that claims exactness is fed :func:`port_values` (the same conversion, in numpy) and must
give the C simulation's outputs bit for bit. Deterministic: the same layout, type, count and
seed give the same vectors.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.interface import FixedType, Interface

if TYPE_CHECKING:
    from trigger_ml.workspace import Workspace

FAMILIES = (
    "max_codes",
    "min_codes",
    "beyond_range",
    "rounding_ties",
    "uniform_codes",
    "empty_jet",
    "all_slots_filled",
    "single_extreme_track",
)
TRACK_FAMILIES = ("empty_jet", "all_slots_filled", "single_extreme_track")
"""The families about track slots: a layout without slots (flat inputs) has none of them."""
DEFAULT_PER_FAMILY = 16
DEFAULT_SEED = 20_260_318
VALID = "valid"


@dataclass(frozen=True)
class InputLayout:
    """The firmware input as a flat vector: ``slots`` x ``track_features`` (element
    ``slot * n_features + feature``), then ``n_jet_features`` (dense taggers)."""

    slots: int
    track_features: tuple[str, ...]
    n_jet_features: int = 0

    @classmethod
    def of(cls, config: ModelConfig) -> InputLayout:
        jet = len(config.inputs.jet_features) if config.architecture.kind == "dense" else 0
        return cls(config.inputs.max_tracks, tuple(config.inputs.track_features), jet)

    @property
    def n_track_elements(self) -> int:
        return self.slots * len(self.track_features)

    @property
    def n_elements(self) -> int:
        return self.n_track_elements + self.n_jet_features


@dataclass(frozen=True)
class HostileVectors:
    """``values[i]`` (float64 holding float32 numbers) belongs to family ``families[i]``."""

    families: tuple[str, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.families)

    def of_family(self, family: str) -> np.ndarray:
        return np.array([name == family for name in self.families])


def _grid(fixed: FixedType) -> tuple[int, int, float]:
    low, high = fixed.code_range
    return low, high, fixed.lsb


def _beyond(rng: np.random.Generator, shape: tuple[int, ...], fixed: FixedType) -> np.ndarray:
    """Values outside the range, on both sides: one lsb past an end up to 2^(integer + 8)."""
    low, high, lsb = _grid(fixed)
    steps = rng.integers(1, 2 ** (fixed.width + 8), shape)  # past the end by this many lsb
    magnitude = np.minimum(steps, 2**23) * lsb  # stays a float32 number (24-bit mantissa)
    positive = rng.random(shape) < 0.5
    return np.where(positive, high * lsb + magnitude, low * lsb - magnitude)


def _ties(rng: np.random.Generator, shape: tuple[int, ...], fixed: FixedType) -> np.ndarray:
    """Half- and quarter-lsb offsets from random codes, and half an lsb past either end."""
    low, high, lsb = _grid(fixed)
    codes = rng.integers(low, high, shape, endpoint=False)
    offsets = rng.choice([0.25, 0.5, 0.75], shape)
    values = (codes + offsets) * lsb
    ends = rng.random(shape) < 0.1
    return np.where(ends, np.where(rng.random(shape) < 0.5, (high + 0.5) * lsb, (low - 0.5) * lsb), values)


def _codes(rng: np.random.Generator, shape: tuple[int, ...], fixed: FixedType) -> np.ndarray:
    low, high, lsb = _grid(fixed)
    return rng.integers(low, high, shape, endpoint=True) * lsb


def _set_valid(tracks: np.ndarray, layout: InputLayout, slots: slice, fixed: FixedType) -> None:
    """Mark ``slots`` as real tracks (``valid`` = 1 on the port's grid) when the layout has the flag."""
    if VALID in layout.track_features:
        tracks[:, slots, layout.track_features.index(VALID)] = fixed.encode(np.array(1.0)) * fixed.lsb


def _family(name: str, rng: np.random.Generator, n: int, layout: InputLayout, fixed: FixedType) -> np.ndarray:
    """``n`` vectors of one family, shape (n, elements)."""
    low, high, lsb = _grid(fixed)
    shape = (n, layout.n_elements)
    if name == "max_codes":
        return np.full(shape, high * lsb)
    if name == "min_codes":
        return np.full(shape, low * lsb)
    if name == "beyond_range":
        return _beyond(rng, shape, fixed)
    if name == "rounding_ties":
        return _ties(rng, shape, fixed)
    if name == "uniform_codes":
        return _codes(rng, shape, fixed)
    features = len(layout.track_features)
    tracks = np.zeros((n, layout.slots, features))
    if name == "all_slots_filled":
        tracks[:] = _codes(rng, tracks.shape, fixed)
        _set_valid(tracks, layout, slice(None), fixed)
    elif name == "single_extreme_track":
        extreme = np.stack([np.full((n, features), high * lsb), np.full((n, features), low * lsb)])
        extreme = np.concatenate([extreme, _beyond(rng, (1, n, features), fixed)])
        pick = rng.integers(0, len(extreme), (n, features))
        tracks[:, 0] = np.take_along_axis(extreme, pick[None], axis=0)[0]
        _set_valid(tracks, layout, slice(0, 1), fixed)
    elif name != "empty_jet":
        raise TriggerMLError(f"unknown hostile family {name!r}", f"families: {', '.join(FAMILIES)}")
    jet = _codes(rng, (n, layout.n_jet_features), fixed)
    return np.concatenate([tracks.reshape(n, -1), jet], axis=1)


def hostile_vectors(
    layout: InputLayout,
    fixed: FixedType,
    per_family: int = DEFAULT_PER_FAMILY,
    seed: int = DEFAULT_SEED,
) -> HostileVectors:
    """Every family of the module docstring, ``per_family`` vectors each (one for a family whose
    vectors would all be equal: the extreme codes, and the empty Deep Set jet)."""
    if per_family < 1:
        raise TriggerMLError(f"hostile vectors per family must be at least 1, got {per_family}")
    families: list[str] = []
    blocks = []
    for index, name in enumerate(FAMILIES):
        if name in TRACK_FAMILIES and not layout.slots:
            continue
        constant = name in ("max_codes", "min_codes") or (name == "empty_jet" and not layout.n_jet_features)
        n = 1 if constant else per_family
        blocks.append(_family(name, np.random.default_rng([seed, index]), n, layout, fixed))
        families += [name] * n
    values = np.concatenate(blocks).astype(np.float64)
    if not np.array_equal(values.astype(np.float32).astype(np.float64), values):
        raise TriggerMLError(
            f"hostile vectors of {fixed.c_type} are not all float32 numbers", "report this as a bug"
        )
    return HostileVectors(tuple(families), values)


def port_values(values: np.ndarray, fixed: FixedType) -> np.ndarray:
    """What the input port holds for ``values``: the port's conversion (rounding, overflow),
    as float64 numbers on its grid. This is what the reference model is fed."""
    return fixed.encode(values).astype(np.float64) * fixed.lsb


def agreement(families: tuple[str, ...], got: np.ndarray, expected: np.ndarray) -> list[dict[str, Any]]:
    """Per family (:data:`FAMILIES` first, in order, then any other, e.g. a front end's, in order
    of appearance): vectors, how many are bit-exact, the first that is not."""
    same = np.all(np.asarray(got, np.float64) == np.asarray(expected, np.float64), axis=1)
    rows = []
    for family in [*FAMILIES, *(name for name in dict.fromkeys(families) if name not in FAMILIES)]:
        where = np.flatnonzero(np.array([name == family for name in families]))
        if len(where):
            bad = where[~same[where]]
            rows.append(
                {
                    "family": family,
                    "n_vectors": int(len(where)),
                    "n_exact": int(same[where].sum()),
                    "first_differing_vector": int(bad[0]) if len(bad) else None,
                }
            )
    return rows


# --- the C simulation and the reference model on hostile vectors ---------------------------


def csim_outputs(hls_project: Path, values: np.ndarray, workdir: Path) -> np.ndarray:
    """hls4ml's C simulation of the project at ``hls_project`` (an hls4ml output directory) on
    ``values``: a copy in ``workdir`` is compiled with g++ through hls4ml's own linker."""
    import contextlib
    import io

    import hls4ml

    copy = Path(workdir) / "hostile_csim_prj"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(hls_project, copy, ignore=shutil.ignore_patterns("*.so", "*.o", "*_prj"))
    config_file = copy / "hls4ml_config.yml"
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text.replace("OutputDir: .", f"OutputDir: {copy}"), encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()):
        linked = hls4ml.converters.link_existing_project(str(copy))
        linked.compile()
        out = linked.predict(np.ascontiguousarray(values, dtype=np.float32))
    return np.asarray(out, dtype=np.float64).reshape(len(values), -1)


def reference_outputs(config: ModelConfig, model: Any, values: np.ndarray, fixed: FixedType) -> np.ndarray:
    """The reference ``model``'s outputs on what the port holds for ``values``."""
    held = port_values(values, fixed).astype(np.float32)
    shaped = (
        held.reshape(len(held), config.inputs.max_tracks, -1)
        if config.architecture.kind == "deepsets"
        else held
    )
    return np.asarray(model.predict(shaped, batch_size=4096, verbose=0), dtype=np.float64).reshape(
        len(values), -1
    )


def hostile_check(config: ModelConfig, workspace: Workspace, workdir: Path) -> list[dict[str, Any]]:
    """The finished firmware of ``config`` against the kind's reference on every hostile family
    that applies (:func:`agreement` rows), through the kind (``ModelKind.hostile_check``)."""
    from trigger_ml.kinds import kind_of

    return kind_of(config).hostile_check(config, workspace, workdir)


def hls4ml_hostile_check(config: ModelConfig, workspace: Workspace, workdir: Path) -> list[dict[str, Any]]:
    """The finished HLS project of ``config``: its C simulation against the kind's reference model
    on every hostile family (:func:`agreement` rows). ``workdir`` holds the compiled copy."""
    from trigger_ml.firmware.interface import read_interface
    from trigger_ml.hls.convert import PROJECT_NAME
    from trigger_ml.hls.stage import PROJECT_SUBDIR
    from trigger_ml.pipeline import ensure_trained

    project = workspace.hls_dir(config.name) / PROJECT_SUBDIR
    if not (project / "hls4ml_config.yml").is_file():
        raise TriggerMLError(
            f"no HLS project for {config.name} at {project}", f"run `trigger-ml hls '{config.name}'`"
        )
    fixed = read_interface(project, PROJECT_NAME).input.fixed
    vectors = hostile_vectors(InputLayout.of(config), fixed)
    got = csim_outputs(project, vectors.values, workdir)
    model = ensure_trained(config, workspace).load_reference(config)
    return agreement(vectors.families, got, reference_outputs(config, model, vectors.values, fixed))


# --- the bundle's hostile vectors ----------------------------------------------------------


def hls4ml_hostile_expected(
    kind: Any, config: ModelConfig, run_dir: Path, project_dir: Path, values: np.ndarray, fixed_in: Any, workdir: Path
) -> tuple[np.ndarray, str]:
    """Expected outputs of an hls4ml project on hostile ``values``: the reference model's for a
    kind that claims exactness, else the C simulation's at build time; and where they come from."""
    from trigger_ml.training import TrainedRun

    if kind.claims_exactness:
        model = TrainedRun(run_dir).load_reference(config)
        return reference_outputs(config, model, values, fixed_in), (
            f"the {kind.reference(config)} model ({kind.name} claims bit-exactness)"
        )
    return csim_outputs(project_dir / "hls4ml_prj", values, workdir), (
        f"the C simulation at build time ({kind.name}: {kind.exactness})"
    )


def write_bundle_vectors(
    root: Path, config: ModelConfig, run_dir: Path, project_dir: Path, interface: Interface, workdir: Path
) -> dict[str, Any]:
    """Write the hostile vectors with their expected outputs into the bundle at ``root``
    (``vectors/hostile_*``, read by ``verify.py``); returns their provenance entry.

    Expected outputs: the reference model's for a kind that claims exactness (so ``verify``
    proves the firmware equals the model on them), else the C simulation's at build time
    (``verify`` then proves that the firmware built elsewhere computes the same)."""
    from trigger_ml.firmware import verifier
    from trigger_ml.kinds import kind_of

    kind = kind_of(config)
    fixed_in, fixed_out = interface.input.fixed, interface.output.fixed
    vectors = hostile_vectors(kind.hostile_layout(config, interface.input.elements), fixed_in)
    if vectors.values.shape[1] != interface.input.elements:
        raise TriggerMLError(
            f"{config.name}: the input layout has {vectors.values.shape[1]} elements, the firmware's port "
            f"{interface.input.elements}",
            "rebuild the HLS project (`trigger-ml hls MODEL --force`)",
        )
    expected, expected_from = kind.hostile_expected(config, run_dir, project_dir, vectors.values, fixed_in, workdir)
    scaled = expected * 2.0**fixed_out.fractional_bits
    codes_out = np.round(scaled).astype(np.int64)
    off_grid = np.flatnonzero(np.any(codes_out != scaled, axis=1))
    if len(off_grid):
        i = int(off_grid[0])
        raise TriggerMLError(
            f"{config.name}: on hostile vector {i} ({vectors.families[i]}) {expected_from} gives outputs off "
            f"the firmware's output type {fixed_out.c_type}: the firmware cannot equal it",
            "see the contract test test_hostile_inputs_bit_exact and report.md (types per layer)",
        )
    decimal = {value: verifier.exact_decimal(Fraction(value)) for value in np.unique(vectors.values).tolist()}

    def lines(rows: np.ndarray, text: Any) -> str:
        return "".join(" ".join(text(value) for value in row) + "\n" for row in rows.tolist())

    files = {
        verifier.HOSTILE_FAMILIES: "".join(f"{name}\n" for name in vectors.families),
        verifier.HOSTILE_INPUTS: lines(vectors.values, decimal.__getitem__),
        verifier.HOSTILE_INPUT_CODES: lines(fixed_in.encode(vectors.values), str),
        verifier.HOSTILE_OUTPUT_CODES: lines(codes_out, str),
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    return {
        "count": len(vectors),
        "families": {family: vectors.families.count(family) for family in FAMILIES},
        "generator": "trigger_ml.firmware.hostile.hostile_vectors",
        "seed": DEFAULT_SEED,
        "expected_outputs": expected_from,
    }
