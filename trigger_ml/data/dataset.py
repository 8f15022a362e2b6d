"""From a jets.h5 file to network inputs: features, splits, scaling, input quantization.

The file layout (written by :mod:`trigger_ml.data.generate`; ATLAS training-dataset-dumper
files are converted to it by :func:`trigger_ml.data.external.convert_ftag_h5`) is a structured
``jets`` dataset and a structured ``tracks`` dataset of shape (n_jets, n_tracks) with a
``valid`` flag; tracks are ordered
by signed d0 significance, descending, and padded with zeros.

Per-track features (all dimensionless after scaling):

============  ==============================================================
sd0           lifetime-signed transverse IP significance d0 / sigma(d0)
sz0           lifetime-signed longitudinal IP significance z0 sin(theta) / sigma
log_ptfrac    ln(track pT / jet pT)
log_dr        ln(Delta R(track, jet axis))
d0            lifetime-signed transverse IP [mm]
z0sintheta    lifetime-signed z0 sin(theta) [mm]
valid         1 for a real track (never scaled): with bias-free Phi layers it
              gives real tracks their bias while padding stays exactly zero
============  ==============================================================

Scaling (offset, scale per feature) is fitted on the training split's valid tracks only
and saved beside the trained model; padded tracks stay exactly zero after scaling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from trigger_ml.config import FixedPoint, ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import read_json, write_json_atomic
from trigger_ml.physics import classes_from_truth

REQUIRED_JET_FIELDS = ("pt", "eta", "flavour")
REQUIRED_TRACK_FIELDS = (
    "valid",
    "d0_mm",
    "z0sintheta_mm",
    "d0_sigma_mm",
    "z0sintheta_sigma_mm",
    "dr",
    "ptfrac",
)
UNSCALED_FEATURES = ("valid",)
MIN_DR = 1e-4  # Delta R below this is clipped before the logarithm


@dataclass(frozen=True)
class RawSample:
    """The jets and tracks read from disk, before any feature is computed."""

    path: Path
    jets: np.ndarray
    tracks: np.ndarray


def read_sample(path: Path, fix: str | None = None) -> RawSample:
    """Read and check a jets.h5 file; a one-line error names what is wrong and ``fix`` (default:
    regenerate it, for files the data stage wrote)."""
    path = Path(path)
    fix = fix or f"delete {path.parent} and rerun `trigger-ml data`"
    with _open_sample(path, fix) as handle:
        _check_layout(path, handle, fix)
        jets = handle["jets"][()]
        tracks = handle["tracks"][()]
    return RawSample(path=path, jets=jets, tracks=tracks)


def check_sample_file(path: Path, fix: str) -> None:
    """Is ``path`` a readable jets.h5 sample (datasets, fields, shapes, at least one jet)? Reads
    the layout only, not the data; a one-line error naming the problem and ``fix`` if not."""
    with _open_sample(Path(path), fix) as handle:
        _check_layout(Path(path), handle, fix)


@contextlib.contextmanager
def _open_sample(path: Path, fix: str) -> Iterator[h5py.File]:
    if path.is_dir():
        raise TriggerMLError(f"data file {path} is a directory, not a jets.h5 file", fix)
    if not path.is_file():
        raise TriggerMLError(f"data file {path} does not exist", "run `trigger-ml data MODEL` first")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise TriggerMLError(f"{path}: unreadable or truncated HDF5 file ({error})", fix) from None
    try:
        yield handle
    except OSError as error:
        raise TriggerMLError(f"{path}: unreadable or truncated HDF5 file ({error})", fix) from None
    finally:
        handle.close()


def _check_layout(path: Path, handle: h5py.File, fix: str) -> None:
    """The structured ``jets`` and ``tracks`` datasets with their required fields, one track row per jet."""
    for name in ("jets", "tracks"):
        if name not in handle or not isinstance(handle[name], h5py.Dataset):
            raise TriggerMLError(f"{path}: no '{name}' dataset", fix)
    jets, tracks = handle["jets"], handle["tracks"]
    for kind, dataset, fields in (
        ("jets", jets, REQUIRED_JET_FIELDS),
        ("tracks", tracks, REQUIRED_TRACK_FIELDS),
    ):
        missing = [f for f in fields if dataset.dtype.names is None or f not in dataset.dtype.names]
        if missing:
            raise TriggerMLError(f"{path}: '{kind}' lacks field(s) {missing}", fix)
    if len(tracks.shape) != 2 or len(jets.shape) != 1 or tracks.shape[0] != jets.shape[0]:
        raise TriggerMLError(f"{path}: tracks shape {tracks.shape} does not match {jets.shape[0]} jets", fix)
    if jets.shape[0] == 0:
        raise TriggerMLError(f"{path}: the file holds no jets", fix)


def jet_feature_matrix(jets: np.ndarray, tracks: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(n_jets, n_features) float32 of unscaled per-jet features.

    log_pt: ln(jet pT / GeV); eta: jet pseudorapidity; n_tracks: number of selected tracks
    (before truncation, from the file's ``n_tracks`` field when present).
    """
    fields = jets.dtype.names or ()
    n_tracks = jets["n_tracks"] if "n_tracks" in fields else tracks["valid"].sum(axis=1)
    columns = {
        "log_pt": np.log(np.maximum(jets["pt"], 1e-3)),
        "eta": jets["eta"],
        "n_tracks": n_tracks,
    }
    return np.stack([np.asarray(columns[name], dtype=np.float32) for name in names], axis=1).reshape(
        len(jets), len(names)
    )


def track_feature_matrix(tracks: np.ndarray, names: tuple[str, ...], max_tracks: int) -> np.ndarray:
    """(n_jets, max_tracks, n_features) float32 of unscaled features; padding exactly zero."""
    tracks = tracks[:, :max_tracks]
    valid = tracks["valid"].astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "sd0": tracks["d0_mm"] / tracks["d0_sigma_mm"],
            "sz0": tracks["z0sintheta_mm"] / tracks["z0sintheta_sigma_mm"],
            "log_ptfrac": np.log(tracks["ptfrac"]),
            "log_dr": np.log(np.maximum(tracks["dr"], MIN_DR)),
            "d0": tracks["d0_mm"],
            "z0sintheta": tracks["z0sintheta_mm"],
            "valid": valid,
        }
    features = np.zeros((*tracks.shape, len(names)), dtype=np.float32)
    for i, name in enumerate(names):
        features[..., i] = np.where(valid, columns[name], 0.0)
    bad = ~np.isfinite(features)
    if bad.any():
        jet_rows = np.unique(np.nonzero(bad)[0])
        raise TriggerMLError(
            f"{int(bad.sum())} NaN/inf track feature value(s) in {len(jet_rows)} jet(s) (first jet {jet_rows[0]})",
            "check the sigma and pT fields of the input file",
        )
    return features


@dataclass(frozen=True)
class FeatureScaling:
    """Per-feature affine scaling x' = (x - offset) / scale, applied to valid tracks only."""

    names: tuple[str, ...]
    offset: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, features: np.ndarray, valid: np.ndarray, names: tuple[str, ...]) -> FeatureScaling:
        real = features[valid]
        offset, scale = [], []
        for i, name in enumerate(names):
            if name in UNSCALED_FEATURES or len(real) == 0:
                offset.append(0.0)
                scale.append(1.0)
                continue
            column = real[:, i].astype(np.float64)
            std = float(column.std())
            offset.append(float(column.mean()))
            scale.append(std if std > 0 else 1.0)
        return cls(tuple(names), tuple(offset), tuple(scale))

    def apply(self, features: np.ndarray, valid: np.ndarray) -> np.ndarray:
        offset = np.asarray(self.offset, dtype=np.float32)
        scale = np.asarray(self.scale, dtype=np.float32)
        scaled = (features - offset) / scale
        return np.where(valid[..., None], scaled, 0.0).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {
            "features": [
                {"name": n, "offset": o, "scale": s}
                for n, o, s in zip(self.names, self.offset, self.scale, strict=True)
            ],
            "formula": "x_scaled = (x - offset) / scale for valid tracks; padded tracks are all zero",
        }

    @classmethod
    def from_dict(cls, data: dict) -> FeatureScaling:
        rows = data["features"]
        return cls(
            tuple(r["name"] for r in rows),
            tuple(float(r["offset"]) for r in rows),
            tuple(float(r["scale"]) for r in rows),
        )

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> FeatureScaling:
        return cls.from_dict(read_json(path))


def fixed_point_grid(fp: FixedPoint) -> tuple[float, float, float]:
    """(step, lowest, highest) of a signed fixed-point type in the QKeras convention."""
    step = 2.0 ** -(fp.bits - 1 - fp.integer)
    return step, -(2.0**fp.integer), 2.0**fp.integer - step


def quantize_to_fixed(values: np.ndarray, fp: FixedPoint) -> np.ndarray:
    """Round half to even onto the grid and saturate: what QKeras' quantized_bits(alpha=1) does
    and what ap_fixed<bits, integer+1, AP_RND_CONV, AP_SAT> holds. The result is exactly
    representable, so feeding it to the C simulation involves no further rounding."""
    step, low, high = fixed_point_grid(fp)
    return np.clip(np.round(np.asarray(values, dtype=np.float64) / step) * step, low, high).astype(np.float32)


def split_indices(n_jets: int, config: ModelConfig) -> dict[str, np.ndarray]:
    """Deterministic train/val/test indices from the configured fractions and seed."""
    order = np.random.default_rng(config.split.seed).permutation(n_jets)
    n_train = int(round(config.split.train * n_jets))
    n_val = int(round(config.split.val * n_jets))
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }


@dataclass(frozen=True)
class PreparedData:
    """Scaled network inputs and class labels of every split, with what produced them."""

    inputs: dict[str, np.ndarray]  # split -> scaled float32: (n, tracks, features) or (n, flat)
    classes: dict[str, np.ndarray]  # split -> (n,) class indices (b, c, light)
    indices: dict[str, np.ndarray]  # split -> row numbers in the file
    scaling: FeatureScaling  # per-track features
    jet_scaling: FeatureScaling | None  # per-jet features (flat models only)
    n_truncated_jets: int  # jets that had more tracks than max_tracks


def prepare(
    sample: RawSample,
    config: ModelConfig,
    scaling: FeatureScaling | None = None,
    jet_scaling: FeatureScaling | None = None,
) -> PreparedData:
    """Features, splits and scaling (fitted on the training split unless given).

    Deep Sets get (n, max_tracks, n_track_features); flat (dense) models get the leading
    ``max_tracks`` tracks' features flattened track by track, followed by the jet features.
    """
    indices = split_indices(len(sample.jets), config)
    scaled, scaling, jet_scaling = _scaled_inputs(sample, config, indices["train"], scaling, jet_scaling)
    classes = classes_from_truth(sample.jets["flavour"])
    return PreparedData(
        inputs={k: scaled[v] for k, v in indices.items()},
        classes={k: classes[v] for k, v in indices.items()},
        indices=indices,
        scaling=scaling,
        jet_scaling=jet_scaling,
        n_truncated_jets=_n_truncated(sample, config),
    )


def prepare_all(
    sample: RawSample, config: ModelConfig, scaling: FeatureScaling, jet_scaling: FeatureScaling | None
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled inputs and classes of every jet of ``sample`` (no split), with the scaling fitted
    on a training sample: how the evaluation sample is prepared."""
    scaled, _, _ = _scaled_inputs(sample, config, None, scaling, jet_scaling)
    return scaled, classes_from_truth(sample.jets["flavour"])


def _n_truncated(sample: RawSample, config: ModelConfig) -> int:
    """Jets that had more tracks than ``max_tracks``."""
    n_valid = sample.tracks["valid"].astype(bool).sum(axis=1)
    return int(np.count_nonzero(n_valid > config.inputs.max_tracks))


def _scaled_inputs(
    sample: RawSample,
    config: ModelConfig,
    train: np.ndarray | None,
    scaling: FeatureScaling | None,
    jet_scaling: FeatureScaling | None,
) -> tuple[np.ndarray, FeatureScaling, FeatureScaling | None]:
    """Every jet's scaled inputs; a scaling not given is fitted on the rows ``train``."""
    names = config.inputs.track_features
    max_tracks = config.inputs.max_tracks
    if config.inputs.tracks == "l1":
        return _l1_inputs(sample, config, scaling)
    features = track_feature_matrix(sample.tracks, names, max_tracks)
    valid = sample.tracks["valid"][:, :max_tracks].astype(bool)
    if scaling is None:
        assert train is not None, "a scaling is fitted on training rows"
        scaling = FeatureScaling.fit(features[train], valid[train], names)
    elif scaling.names != names:
        raise TriggerMLError(
            f"scaling file features {list(scaling.names)} differ from the config's {list(names)}",
            "retrain the model (`trigger-ml train MODEL`)",
        )
    scaled = scaling.apply(features, valid)
    jet_names = config.inputs.jet_features
    if config.architecture.kind != "dense":
        return scaled, scaling, None
    jet_features = jet_feature_matrix(sample.jets, sample.tracks, jet_names)
    everywhere = np.ones(len(jet_features), dtype=bool)
    if jet_scaling is None:
        assert train is not None, "a scaling is fitted on training rows"
        jet_scaling = FeatureScaling.fit(jet_features[train], everywhere[train], jet_names)
    scaled = np.concatenate(
        [scaled.reshape(len(scaled), -1), jet_scaling.apply(jet_features, everywhere)], axis=1
    )
    return scaled, scaling, jet_scaling


def _l1_inputs(
    sample: RawSample, config: ModelConfig, scaling: FeatureScaling | None
) -> tuple[np.ndarray, FeatureScaling, None]:
    """The L1 preprocessing's outputs (trigger_ml.l1): its scaling is part of its integer
    definition, so the feature scaling is the identity."""
    from trigger_ml.l1.inputs import network_inputs

    names = config.inputs.track_features
    identity = FeatureScaling(names, (0.0,) * len(names), (1.0,) * len(names))
    if scaling is not None and scaling != identity:
        raise TriggerMLError(
            "the run's feature scaling is not the identity of L1 inputs",
            "retrain the model (`trigger-ml train MODEL`)",
        )
    return network_inputs(config, sample.jets, sample.tracks), identity, None


def model_inputs(scaled: np.ndarray, config: ModelConfig) -> np.ndarray:
    """The exact array a model takes: quantized onto the input type when quantization is on
    (the firmware's input encoding), else the scaled floats themselves (float models)."""
    if config.quantization.enabled:
        return quantize_to_fixed(scaled, config.quantization.input)
    return scaled
