"""Readers for jet data made elsewhere: ATLAS flavour-tagging HDF5 and the hls4ml LHC jets.

(a) ``read_ftag_h5`` / ``convert_ftag_h5``: the layout written by the ATLAS
    training-dataset-dumper (a structured ``jets`` dataset and a structured ``tracks``
    dataset of shape (n_jets, n_tracks) with a ``valid`` flag; ATLAS units, MeV and mm).
    Field names are translated by a configurable :class:`FtagMapping`; the result has this
    project's jets.h5 layout, so ``convert_ftag_h5`` writes a file the rest of the pipeline
    reads unchanged.
(b) ``read_lhc_jets_hlf``: the hls4ml LHC jet dataset (16 high-level substructure
    features, classes g / q / W / Z / t), as an ARFF or CSV copy of OpenML's
    ``hls4ml_lhc_jets_hlf`` or an HDF5 copy, for dense taggers.

Nothing is downloaded. Problems are one-line :class:`TriggerMLError`\\ s naming the problem
and the fix; values that cannot be used (NaN, inf, non-positive uncertainties, unknown
labels) are removed and counted in the returned report, never silently. The field
tables and units are documented in docs/data-formats.md.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.data.dataset import RawSample
from trigger_ml.data.generate import JET_DTYPE, TRACK_DTYPE
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path, canonical_json

MEV_TO_GEV = 1.0e-3

# --- (a) ATLAS flavour-tagging HDF5 ------------------------------------------------------


@dataclass(frozen=True)
class FtagField:
    """Where one of our fields comes from: a source field, times ``scale``.

    ``required`` fields must exist in the source file; optional ones are converted when
    present and left at zero otherwise.
    """

    source: str
    scale: float = 1.0
    required: bool = True


@dataclass(frozen=True)
class FtagMapping:
    """Our jet and track field names -> source fields, and the track-origin code table.

    ``origin_codes`` maps the dumper's ``ftagTruthOriginLabel`` (0 pile-up, 1 fake,
    2 primary, 3 from b, 4 from b -> c, 5 from c, 6 from tau, 7 other secondary) onto our
    ``origin`` codes (0 primary, 1 b/c decay chain, 2 other secondary, 3 fake, 4 pile-up).
    """

    jets: dict[str, FtagField]
    tracks: dict[str, FtagField]
    origin_codes: dict[int, int] = field(default_factory=dict)

    def replace(
        self, jets: dict[str, FtagField] | None = None, tracks: dict[str, FtagField] | None = None
    ) -> FtagMapping:
        """A copy with some entries replaced, e.g. ``tracks={"d0_mm": FtagField("d0")}``."""
        return dataclasses.replace(
            self, jets={**self.jets, **(jets or {})}, tracks={**self.tracks, **(tracks or {})}
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FtagMapping:
        """From ``{"jets": {ours: source or {source, scale, required}}, "tracks": {...}}``."""
        sections: dict[str, dict[str, FtagField]] = {}
        for section, allowed in (("jets", _OUR_JET_FIELDS), ("tracks", _OUR_TRACK_FIELDS)):
            entries = data.get(section, {})
            unknown = sorted(set(entries) - set(allowed))
            if unknown:
                raise TriggerMLError(
                    f"FTAG mapping: unknown target field(s) {unknown} in '{section}'",
                    "use field names of this project's jets.h5 layout (docs/data-formats.md)",
                )
            sections[section] = {
                ours: FtagField(spec) if isinstance(spec, str) else FtagField(**spec)
                for ours, spec in entries.items()
            }
        return DEFAULT_FTAG_MAPPING.replace(sections["jets"], sections["tracks"])


DEFAULT_FTAG_MAPPING = FtagMapping(
    jets={
        "pt": FtagField("pt", MEV_TO_GEV),
        "eta": FtagField("eta"),
        "flavour": FtagField("HadronConeExclTruthLabelID"),
        "phi": FtagField("phi", required=False),
        "mass": FtagField("mass", MEV_TO_GEV, required=False),
        "hadron_pt": FtagField("HadronConeExclTruthLabelPt", MEV_TO_GEV, required=False),
        "hadron_lxy_mm": FtagField("HadronConeExclTruthLabelLxy", required=False),
        "event_number": FtagField("eventNumber", required=False),
    },
    tracks={
        "valid": FtagField("valid"),
        "d0_mm": FtagField("lifetimeSignedD0"),
        "z0sintheta_mm": FtagField("lifetimeSignedZ0SinTheta"),
        "d0_sigma_mm": FtagField("d0Uncertainty"),
        "z0sintheta_sigma_mm": FtagField("z0SinThetaUncertainty"),
        "dr": FtagField("dr"),
        "ptfrac": FtagField("ptfrac"),
        "pt": FtagField("pt", MEV_TO_GEV, required=False),
        "eta": FtagField("eta", required=False),
        "phi": FtagField("phi", required=False),
        "origin": FtagField("ftagTruthOriginLabel", required=False),
    },
    origin_codes={0: 4, 1: 3, 2: 0, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2},
)
"""Names of the training-dataset-dumper (release 22 and later), in ATLAS units (MeV, mm)."""

_OUR_JET_FIELDS = tuple(n for n in JET_DTYPE.names if n != "n_tracks")
_OUR_TRACK_FIELDS = tuple(n for n in TRACK_DTYPE.names if n != "charge")
_KEPT_LABELS = (5, 4, 0)  # HadronConeExclTruthLabelID values kept as they are
_TAU_LABEL = 15


@dataclass(frozen=True)
class FtagConversion:
    """The converted sample and what the conversion removed or changed, with counts."""

    sample: RawSample
    n_jets_read: int
    dropped_jets: dict[str, int]
    dropped_tracks: dict[str, int]
    n_jets_without_tracks: int
    n_tau_as_light: int
    n_truncated_tracks: int
    n_hadron_nan_set_to_zero: int

    def summary(self) -> str:
        """One line for logs: jets kept, and every count that is not zero."""
        parts = [f"{len(self.sample.jets)} of {self.n_jets_read} jets kept"]
        parts += [f"{n} jets dropped ({why})" for why, n in self.dropped_jets.items() if n]
        parts += [f"{n} tracks dropped ({why})" for why, n in self.dropped_tracks.items() if n]
        if self.n_tau_as_light:
            parts.append(f"{self.n_tau_as_light} tau jets labelled light")
        if self.n_jets_without_tracks:
            parts.append(f"{self.n_jets_without_tracks} jets without valid tracks")
        if self.n_truncated_tracks:
            parts.append(f"{self.n_truncated_tracks} tracks beyond max_tracks dropped")
        if self.n_hadron_nan_set_to_zero:
            parts.append(f"{self.n_hadron_nan_set_to_zero} NaN hadron_pt / hadron_lxy_mm set to 0")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_jets_read": self.n_jets_read,
            "n_jets_kept": len(self.sample.jets),
            "dropped_jets": self.dropped_jets,
            "dropped_tracks": self.dropped_tracks,
            "n_jets_without_tracks": self.n_jets_without_tracks,
            "n_tau_as_light": self.n_tau_as_light,
            "n_truncated_tracks": self.n_truncated_tracks,
            "n_hadron_nan_set_to_zero": self.n_hadron_nan_set_to_zero,
        }


def _open_structured(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read structured datasets ``names`` from an HDF5 file; one-line errors otherwise."""
    if not path.is_file():
        raise TriggerMLError(f"input file {path} does not exist", "check the path")
    arrays = {}
    try:
        with h5py.File(path, "r") as handle:
            for name in names:
                if name not in handle or not isinstance(handle[name], h5py.Dataset):
                    raise TriggerMLError(
                        f"{path}: no '{name}' dataset (found: {sorted(handle)})",
                        "give a training-dataset-dumper file, or name its datasets (jets_dataset=, tracks_dataset=)",
                    )
                arrays[name] = handle[name][()]
    except OSError as error:
        raise TriggerMLError(
            f"{path}: unreadable or truncated HDF5 file ({error})", "copy the file again"
        ) from None
    for name, array in arrays.items():
        if array.dtype.names is None:
            raise TriggerMLError(f"{path}: '{name}' is not a structured (compound) dataset", "check the file")
    return arrays


def _source_columns(
    array: np.ndarray, table: dict[str, FtagField], kind: str, path: Path
) -> dict[str, np.ndarray]:
    names = array.dtype.names or ()
    missing = [
        f"{ours} <- {spec.source}"
        for ours, spec in table.items()
        if spec.required and spec.source not in names
    ]
    if missing:
        raise TriggerMLError(
            f"{path}: '{kind}' lacks field(s) {missing}",
            "pass a mapping naming this file's fields (FtagMapping.replace)",
        )
    return {ours: array[spec.source] for ours, spec in table.items() if spec.source in names}


def read_ftag_h5(
    path: Path,
    mapping: FtagMapping = DEFAULT_FTAG_MAPPING,
    *,
    tau_as_light: bool = True,
    max_tracks: int | None = None,
    jets_dataset: str = "jets",
    tracks_dataset: str = "tracks",
) -> FtagConversion:
    """Read a training-dataset-dumper file into this project's jets/tracks layout.

    Momenta are converted MeV -> GeV by the mapping's scales; lengths stay in mm. Tracks
    are re-ordered by signed d0 significance (descending, valid first, zero padding), as
    the generator writes them, and cut to ``max_tracks`` if given (counted). Cleanup,
    all counted in the report: jets with a label other than 5 / 4 / 0 / 15 or with a
    non-finite pT or eta are dropped; tau jets (15) are light unless ``tau_as_light`` is
    False, then dropped; valid tracks with a non-finite field, a non-positive uncertainty
    or ptfrac, or a negative dr become padding. ``jets_dataset`` / ``tracks_dataset`` name
    the datasets to read (dumper files may hold several track collections).
    """
    path = Path(path)
    arrays = _open_structured(path, (jets_dataset, tracks_dataset))
    src_jets, src_tracks = arrays[jets_dataset], arrays[tracks_dataset]
    if src_jets.ndim != 1:
        raise TriggerMLError(
            f"{path}: '{jets_dataset}' has shape {src_jets.shape}, expected (n_jets,)", "check the file"
        )
    if src_tracks.ndim != 2 or src_tracks.shape[0] != src_jets.shape[0]:
        raise TriggerMLError(
            f"{path}: '{tracks_dataset}' has shape {src_tracks.shape}, expected ({src_jets.shape[0]}, n_tracks)",
            "check the file",
        )
    if len(src_jets) == 0:
        raise TriggerMLError(f"{path}: the file holds no jets", "check the file")
    if max_tracks is not None and max_tracks < 1:
        raise TriggerMLError(f"max_tracks must be >= 1, got {max_tracks}", "set a positive number")
    jet_cols = _source_columns(src_jets, mapping.jets, jets_dataset, path)
    track_cols = _source_columns(src_tracks, mapping.tracks, tracks_dataset, path)

    dropped_jets: Counter[str] = Counter()
    label = np.asarray(jet_cols["flavour"]).astype(np.int64)
    tau = label == _TAU_LABEL
    known = np.isin(label, _KEPT_LABELS) | (tau if tau_as_light else False)
    dropped_jets["tau label (tau_as_light=False)"] = 0 if tau_as_light else int(np.count_nonzero(tau))
    dropped_jets["unknown flavour label"] = int(np.count_nonzero(~known & ~tau))
    kinematics_ok = np.isfinite(jet_cols["pt"]) & np.isfinite(jet_cols["eta"])
    dropped_jets["non-finite pt or eta"] = int(np.count_nonzero(known & ~kinematics_ok))
    keep = known & kinematics_ok
    if not keep.any():
        raise TriggerMLError(
            f"{path}: no usable jets ({dict(dropped_jets)})", "check the labels and kinematics"
        )

    jets = np.zeros(int(keep.sum()), JET_DTYPE)
    for ours, values in jet_cols.items():
        spec = mapping.jets[ours]
        values = np.asarray(values)[keep]
        jets[ours] = values * spec.scale if spec.scale != 1.0 else values
    jets["flavour"] = np.where(label[keep] == _TAU_LABEL, 0, label[keep])
    n_hadron_nan = 0
    for name in ("hadron_pt", "hadron_lxy_mm"):  # NaN in the source means "no labelling hadron"
        bad = ~np.isfinite(jets[name])
        n_hadron_nan += int(bad.sum())
        jets[name][bad] = 0.0

    tracks, dropped_tracks, n_truncated = _convert_tracks(track_cols, mapping, keep, max_tracks)
    jets["n_tracks"] = np.minimum(tracks["valid"].sum(axis=1) + n_truncated, np.iinfo(np.int16).max)
    return FtagConversion(
        sample=RawSample(path=path, jets=jets, tracks=tracks),
        n_jets_read=len(src_jets),
        dropped_jets=dict(dropped_jets),
        dropped_tracks=dict(dropped_tracks),
        n_jets_without_tracks=int(np.count_nonzero(tracks["valid"].sum(axis=1) == 0)),
        n_tau_as_light=int(np.count_nonzero(tau & keep)),
        n_truncated_tracks=int(n_truncated.sum()),
        n_hadron_nan_set_to_zero=n_hadron_nan,
    )


def _convert_tracks(
    columns: dict[str, np.ndarray], mapping: FtagMapping, keep: np.ndarray, max_tracks: int | None
) -> tuple[np.ndarray, Counter[str], np.ndarray]:
    """Tracks of the kept jets in our layout, sorted, cleaned and truncated; with the counts
    of removed tracks (by reason) and the number cut per jet by max_tracks."""
    n_slots = columns["valid"].shape[1]
    values: dict[str, np.ndarray] = {}
    for ours, raw in columns.items():
        raw = np.asarray(raw)[keep]
        spec = mapping.tracks[ours]
        if ours == "origin":
            lookup = np.full(256, -1, dtype=np.int16)
            for theirs, code in mapping.origin_codes.items():
                lookup[theirs] = code
            values[ours] = np.where(
                (raw >= 0) & (raw < 256), lookup[np.clip(raw, 0, 255).astype(np.int64)], -1
            )
        else:
            values[ours] = raw * spec.scale if spec.scale != 1.0 else raw
    valid = values["valid"].astype(bool)
    dropped: Counter[str] = Counter()
    with np.errstate(invalid="ignore"):
        checks = {
            "non-finite value": np.logical_and.reduce(
                [np.isfinite(values[k]) for k in values if k not in ("valid", "origin")]
            ),
            "uncertainty <= 0": (values["d0_sigma_mm"] > 0) & (values["z0sintheta_sigma_mm"] > 0),
            "ptfrac <= 0": values["ptfrac"] > 0,
            "dr < 0": values["dr"] >= 0,
        }
    for reason, ok in checks.items():
        bad = valid & ~ok
        dropped[reason] = int(bad.sum())
        valid &= ok
    if "origin" in values:
        unknown = valid & (values["origin"] < 0)
        dropped["unknown ftagTruthOriginLabel (origin set to 0)"] = int(unknown.sum())
        values["origin"] = np.where(values["origin"] < 0, 0, values["origin"])

    with np.errstate(divide="ignore", invalid="ignore"):
        significance = np.where(
            valid,
            values["d0_mm"].astype(np.float32) / values["d0_sigma_mm"].astype(np.float32),
            -np.inf,
        )
    order = np.argsort(-significance, axis=1, kind="stable")
    n_valid = valid.sum(axis=1)
    width = n_slots if max_tracks is None else min(n_slots, max_tracks)
    order = order[:, :width]
    slot_valid = np.take_along_axis(valid, order, axis=1)
    tracks = np.zeros((len(valid), width), TRACK_DTYPE)
    for ours, column in values.items():
        if ours == "valid":
            continue
        tracks[ours] = np.where(slot_valid, np.take_along_axis(column, order, axis=1), 0)
    tracks["valid"] = slot_valid
    return tracks, dropped, n_valid - slot_valid.sum(axis=1)


def convert_ftag_h5(
    src: Path, dst: Path, mapping: FtagMapping = DEFAULT_FTAG_MAPPING, **read_options: Any
) -> FtagConversion:
    """Convert a training-dataset-dumper file into a jets.h5 in this project's layout.

    ``read_options`` are those of :func:`read_ftag_h5` (``tau_as_light``, ``max_tracks``,
    ``jets_dataset``, ``tracks_dataset``). ``dst`` is written atomically with the attributes
    ``source`` (the input path), ``mapping`` and ``conversion`` (canonical JSON of the mapping
    and of the report). Training on it works like on a generated sample:
    ``train(config, dst, run_dir)``.
    """
    result = read_ftag_h5(src, mapping, **read_options)
    options = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "track_times": False}
    with atomic_path(dst) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("jets", data=result.sample.jets, **options)
        handle.create_dataset("tracks", data=result.sample.tracks, **options)
        handle.attrs["source"] = str(Path(src))
        handle.attrs["mapping"] = canonical_json(dataclasses.asdict(mapping))
        handle.attrs["conversion"] = canonical_json(result.to_dict())
    return dataclasses.replace(result, sample=dataclasses.replace(result.sample, path=Path(dst)))


# --- (b) hls4ml LHC jet dataset ----------------------------------------------------------

LHC_JET_FEATURES = (
    "zlogz",
    "c1_b0_mmdt",
    "c1_b1_mmdt",
    "c1_b2_mmdt",
    "c2_b1_mmdt",
    "c2_b2_mmdt",
    "d2_b1_mmdt",
    "d2_b2_mmdt",
    "d2_a1_b1_mmdt",
    "d2_a1_b2_mmdt",
    "m2_b1_mmdt",
    "m2_b2_mmdt",
    "n2_b1_mmdt",
    "n2_b2_mmdt",
    "mass_mmdt",
    "multiplicity",
)
"""The 16 high-level features of OpenML ``hls4ml_lhc_jets_hlf`` (the original files prefix
them with ``j_``; both spellings are read)."""
LHC_JET_CLASSES = ("g", "q", "w", "z", "t")
"""Class order of the labels we return: the original dataset's one-hot order j_g, j_q,
j_w, j_z, j_t (OpenML stores the class as one nominal column with these values)."""
_LHC_LABEL_COLUMN = "class"


@dataclass(frozen=True)
class LhcJets:
    """Features (n, 16) float32 in LHC_JET_FEATURES order, labels (n,) int8 indices into
    LHC_JET_CLASSES, and how many rows were dropped for non-finite features."""

    features: np.ndarray
    labels: np.ndarray
    n_dropped_nonfinite: int
    feature_names: tuple[str, ...] = LHC_JET_FEATURES
    class_names: tuple[str, ...] = LHC_JET_CLASSES


def read_lhc_jets_hlf(path: Path) -> LhcJets:
    """Read a copy of the hls4ml LHC jet dataset: ``.arff`` (as OpenML serves it),
    ``.csv`` (a header row with the feature names and ``class``), or ``.h5``/``.hdf5``
    (a structured dataset with ``j_``-prefixed features and one-hot ``j_g`` ... ``j_t``,
    as in the original files, or a 2-D ``jets`` array with names in ``jetFeatureNames``).
    Rows with a non-finite feature are dropped and counted.
    """
    path = Path(path)
    if not path.is_file():
        raise TriggerMLError(f"input file {path} does not exist", "check the path")
    suffix = path.suffix.lower()
    if suffix == ".arff":
        names, rows = _read_arff(path)
        features, labels = _from_text_table(path, names, rows)
    elif suffix == ".csv":
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            names = [n.strip() for n in next(reader, [])]
            rows = [row for row in reader if row]
        features, labels = _from_text_table(path, names, rows)
    elif suffix in (".h5", ".hdf5"):
        features, labels = _read_lhc_h5(path)
    else:
        raise TriggerMLError(f"{path}: unknown file type '{suffix}'", "give an .arff, .csv or .h5 copy")
    if len(labels) == 0:
        raise TriggerMLError(f"{path}: the file holds no jets", "check the file")
    finite = np.isfinite(features).all(axis=1)
    return LhcJets(features[finite], labels[finite], int(np.count_nonzero(~finite)))


def _read_arff(path: Path) -> tuple[list[str], list[list[str]]]:
    """Attribute names and data rows of a dense ARFF file."""
    names: list[str] = []
    text = path.read_text()
    lower = text.lower()
    start = lower.find("@data")
    if start < 0:
        raise TriggerMLError(f"{path}: no @data section (not an ARFF file or truncated)", "download it again")
    for line in text[:start].splitlines():
        if line.strip().lower().startswith("@attribute"):
            tokens = line.strip().split(None, 2)
            if len(tokens) < 3:
                raise TriggerMLError(
                    f"{path}: malformed attribute line {line.strip()!r}", "download it again"
                )
            names.append(tokens[1].strip("'\""))
    body = text[start:].split("\n", 1)[1] if "\n" in text[start:] else ""
    rows = [row for row in csv.reader(io.StringIO(body)) if row and not row[0].startswith("%")]
    return names, rows


def _from_text_table(path: Path, names: list[str], rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    canonical = [name.removeprefix("j_") for name in names]
    missing = [f for f in (*LHC_JET_FEATURES, _LHC_LABEL_COLUMN) if f not in canonical]
    if missing:
        raise TriggerMLError(
            f"{path}: missing column(s) {missing}", "give the 16 features and the class column"
        )
    if not rows:
        raise TriggerMLError(f"{path}: the file holds no jets", "check the file")
    width = len(names)
    short = [i for i, row in enumerate(rows) if len(row) != width]
    if short:
        raise TriggerMLError(
            f"{path}: row {short[0] + 1} has {len(rows[short[0]])} values, expected {width}",
            "the file is truncated or malformed; copy it again",
        )
    columns = list(zip(*rows, strict=True))
    try:
        features = np.array(
            [np.array(columns[canonical.index(f)], dtype=np.float64) for f in LHC_JET_FEATURES],
            dtype=np.float32,
        ).T
    except ValueError as error:
        raise TriggerMLError(f"{path}: a feature value is not a number ({error})", "check the file") from None
    raw_labels = [value.strip().strip("'\"").lower() for value in columns[canonical.index(_LHC_LABEL_COLUMN)]]
    unknown = sorted(set(raw_labels) - set(LHC_JET_CLASSES))
    if unknown:
        raise TriggerMLError(
            f"{path}: unknown class label(s) {unknown[:5]}", f"labels must be one of {list(LHC_JET_CLASSES)}"
        )
    lookup = {name: i for i, name in enumerate(LHC_JET_CLASSES)}
    return features.reshape(len(rows), len(LHC_JET_FEATURES)), np.array(
        [lookup[v] for v in raw_labels], dtype=np.int8
    )


def _read_lhc_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with h5py.File(path, "r") as handle:
            if "jets" in handle and "jetFeatureNames" in handle:
                names = [
                    n.decode() if isinstance(n, bytes) else str(n) for n in handle["jetFeatureNames"][()]
                ]
                table = np.asarray(handle["jets"][()], dtype=np.float64)
                if table.ndim != 2 or table.shape[1] != len(names):
                    raise TriggerMLError(
                        f"{path}: 'jets' has shape {table.shape}, expected (n, {len(names)})",
                        "check the file",
                    )
                columns = {name: table[:, i] for i, name in enumerate(names)}
            else:
                structured = [
                    handle[k] for k in handle if isinstance(handle[k], h5py.Dataset) and handle[k].dtype.names
                ]
                if not structured:
                    raise TriggerMLError(
                        f"{path}: no structured dataset and no 'jets' + 'jetFeatureNames'", "check the file"
                    )
                array = structured[0][()]
                columns = {name: array[name] for name in array.dtype.names}
    except OSError as error:
        raise TriggerMLError(
            f"{path}: unreadable or truncated HDF5 file ({error})", "copy the file again"
        ) from None
    canonical = {name.removeprefix("j_"): values for name, values in columns.items()}
    missing = [f for f in (*LHC_JET_FEATURES, *LHC_JET_CLASSES) if f not in canonical]
    if missing:
        raise TriggerMLError(
            f"{path}: missing field(s) {missing}", "give the 16 features and the one-hot labels"
        )
    features = np.stack([np.asarray(canonical[f], dtype=np.float32) for f in LHC_JET_FEATURES], axis=1)
    onehot = np.stack([np.asarray(canonical[c], dtype=np.float64) for c in LHC_JET_CLASSES], axis=1)
    if not np.all(onehot.sum(axis=1) == 1) or not np.all((onehot == 0) | (onehot == 1)):
        raise TriggerMLError(f"{path}: the labels j_g ... j_t are not one-hot", "check the file")
    return features, np.argmax(onehot, axis=1).astype(np.int8)
