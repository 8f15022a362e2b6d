"""Your own jets into the workspace: ``trigger-ml convert-ftag SRC.h5 [--mapping FILE.yaml]``.

The converted sample is written atomically to ``data/ftag-<key>/jets.h5``, ``<key>`` the first
12 hex digits of the hash of the source file's sha256, the field mapping, ``max_tracks`` and
the tau handling: the same file converted the same way lands in the same place (and is not
converted again). A model trains on it with ``sample: {path: data/ftag-<key>/jets.h5}``
(trigger_ml.sample_config).

The mapping file is YAML: ``{jets: {ours: source | {source, scale, required}}, tracks: {...},
jets_dataset: jets, tracks_dataset: tracks}`` (docs/data-formats.md). Dumpers that write the
calibrated kinematics as ``pt_btagJes`` / ``eta_btagJes`` instead of ``pt`` / ``eta`` are
recognised without a mapping (``pt_btagJes`` in MeV like ``pt``); a mapping that names the jet
``pt`` or ``eta`` source wins.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.config import read_yaml_mapping
from trigger_ml.data.external import (
    DEFAULT_FTAG_MAPPING,
    MEV_TO_GEV,
    FtagConversion,
    FtagField,
    FtagMapping,
    convert_ftag_h5,
)
from trigger_ml.errors import UsageError
from trigger_ml.fileio import sha256_of_file, sha256_of_obj
from trigger_ml.workspace import Workspace

JES_KINEMATICS = {"pt": FtagField("pt_btagJes", MEV_TO_GEV), "eta": FtagField("eta_btagJes")}
"""Jet fields taken from the dumper's calibrated (``btagJes``) kinematics when ``pt`` / ``eta``
are absent and no mapping names them."""

_MAPPING_KEYS = ("jets", "tracks", "jets_dataset", "tracks_dataset", "tau_as_light")
_FLAVOURS = {5: "b", 4: "c", 0: "light", 15: "tau"}


@dataclass(frozen=True)
class ConvertOptions:
    """How a dumper file is converted (everything the output's key depends on besides the file)."""

    mapping: FtagMapping = DEFAULT_FTAG_MAPPING
    jets_dataset: str = "jets"
    tracks_dataset: str = "tracks"
    tau_as_light: bool = True
    max_tracks: int | None = None
    named_jet_fields: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("named_jet_fields")
        return data


def load_mapping_file(path: Path) -> ConvertOptions:
    """The conversion options of a mapping YAML file; one-line errors naming the problem."""
    data = read_yaml_mapping(path, "mapping file", "docs/data-formats.md (Your own jets)")
    unknown = sorted(set(data) - set(_MAPPING_KEYS))
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {unknown}", f"the keys are {', '.join(_MAPPING_KEYS)}")
    for section in ("jets", "tracks"):
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            raise UsageError(f"{path}: '{section}' must be a mapping of our field -> source field", "fix the file")
        for ours, spec in entries.items():
            if isinstance(spec, dict) and not set(spec) <= {"source", "scale", "required"}:
                raise UsageError(
                    f"{path}: {section}.{ours} has unknown key(s) {sorted(set(spec) - {'source', 'scale', 'required'})}",
                    "write a source name or {source, scale, required}",
                )
            if not isinstance(spec, str | dict) or (isinstance(spec, dict) and "source" not in spec):
                raise UsageError(f"{path}: {section}.{ours} names no source field", "write a source name")
    try:
        mapping = FtagMapping.from_dict({k: data.get(k, {}) for k in ("jets", "tracks")})
    except TypeError as error:
        raise UsageError(f"{path}: malformed mapping ({error})", "see docs/data-formats.md") from None
    return ConvertOptions(
        mapping=mapping,
        jets_dataset=str(data.get("jets_dataset", "jets")),
        tracks_dataset=str(data.get("tracks_dataset", "tracks")),
        tau_as_light=bool(data.get("tau_as_light", True)),
        named_jet_fields=tuple(data.get("jets", {})),
    )


def _with_jes_kinematics(src: Path, options: ConvertOptions) -> ConvertOptions:
    """``options`` with pt / eta from ``pt_btagJes`` / ``eta_btagJes`` when the file has those
    and not the mapping's sources (and the mapping file does not name them)."""
    try:
        with h5py.File(src, "r") as handle:
            dataset = handle.get(options.jets_dataset)
            names = set(dataset.dtype.names or ()) if isinstance(dataset, h5py.Dataset) else set()
    except OSError:
        return options  # the converter reports unreadable files
    use = {
        ours: field
        for ours, field in JES_KINEMATICS.items()
        if ours not in options.named_jet_fields
        and options.mapping.jets[ours].source not in names
        and field.source in names
    }
    return dataclasses.replace(options, mapping=options.mapping.replace(jets=use)) if use else options


def converted_path(src: Path, options: ConvertOptions, ws: Workspace) -> Path:
    """Where ``src`` converted with ``options`` goes: ``data/ftag-<key>/jets.h5``."""
    key = sha256_of_obj({"source_sha256": sha256_of_file(src), "options": options.record()})
    return ws.data_dir / f"ftag-{key[:12]}" / "jets.h5"


def flavour_counts(path: Path) -> dict[str, int]:
    """Jets per flavour of a jets.h5 file."""
    with h5py.File(path, "r") as handle:
        values, counts = np.unique(handle["jets"]["flavour"], return_counts=True)
    found = {int(v): int(n) for v, n in zip(values, counts, strict=True)}
    order = [*(code for code in _FLAVOURS if code in found), *(code for code in found if code not in _FLAVOURS)]
    return {_FLAVOURS.get(code, str(code)): found[code] for code in order}


def conversion_summary(path: Path, conversion: dict[str, Any]) -> str:
    """One line: jets per flavour, jets and tracks dropped."""
    flavours = ", ".join(f"{n} {name}" for name, n in flavour_counts(path).items())
    tracks = sum(conversion["dropped_tracks"].values()) + conversion["n_truncated_tracks"]
    jets = sum(conversion["dropped_jets"].values())
    return (
        f"{conversion['n_jets_kept']} of {conversion['n_jets_read']} jets ({flavours}); "
        f"{jets} jets dropped; {tracks} tracks dropped "
        f"({conversion['n_truncated_tracks']} beyond max_tracks)"
    )


def convert_ftag_into(
    src: Path, ws: Workspace, options: ConvertOptions | None = None
) -> tuple[Path, str, bool]:
    """Convert the dumper file ``src`` into the workspace (unless it is there already).

    Returns the jets.h5 path, its one-line summary and whether it was converted now."""
    src = Path(src)
    if not src.is_file():
        raise UsageError(f"input file {src} does not exist", "check the path")
    options = _with_jes_kinematics(src, options or ConvertOptions())
    if options.max_tracks is not None and options.max_tracks < 1:
        raise UsageError(f"--max-tracks must be >= 1, got {options.max_tracks}", "give a positive number")
    dst = converted_path(src, options, ws)
    fresh = not dst.is_file()
    if fresh:
        result: FtagConversion = convert_ftag_h5(
            src,
            dst,
            options.mapping,
            tau_as_light=options.tau_as_light,
            max_tracks=options.max_tracks,
            jets_dataset=options.jets_dataset,
            tracks_dataset=options.tracks_dataset,
        )
        record = result.to_dict()
    else:
        import json

        with h5py.File(dst, "r") as handle:
            record = json.loads(handle.attrs["conversion"])
    return dst, conversion_summary(dst, record), fresh
