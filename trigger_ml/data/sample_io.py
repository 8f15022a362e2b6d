"""The files of a sample: shard and jets.h5 writing, shard checks and merging, sample.json.

A sample directory holds ``shards/shard-00000.h5 ...``, the merged ``jets.h5`` and
``sample.json``; the layout of the files is in trigger_ml.data.layout.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.data.labels import TAU_LABEL
from trigger_ml.data.layout import FORMAT_VERSION, JET_DTYPE_EXTENDED, PROCESS_CODES
from trigger_ml.data.settings import GeneratorSettings
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path, canonical_json, read_json, sha256_of_file, write_json_atomic

_MAX_CHUNK_ROWS = 2048


def shard_path(out_dir: Path, index: int) -> Path:
    """The file of shard ``index`` in the sample directory ``out_dir``."""
    return out_dir / "shards" / f"shard-{index:05d}.h5"


def _chunk_rows(settings: GeneratorSettings) -> int:
    """Rows per HDF5 chunk: the largest divisor of jets_per_shard up to _MAX_CHUNK_ROWS.

    Shard boundaries then fall on chunk boundaries in the merged file, so every chunk is
    written once.
    """
    return max(
        d
        for d in range(1, min(settings.jets_per_shard, _MAX_CHUNK_ROWS) + 1)
        if settings.jets_per_shard % d == 0
    )


def _create_datasets(
    handle: h5py.File, n_rows: int, settings: GeneratorSettings
) -> tuple[h5py.Dataset, h5py.Dataset]:
    rows = min(_chunk_rows(settings), n_rows)
    options = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "track_times": False}
    jets = handle.create_dataset(
        "jets", shape=(n_rows,), dtype=settings.jet_dtype(), chunks=(rows,), **options
    )
    tracks = handle.create_dataset(
        "tracks",
        shape=(n_rows, settings.max_tracks),
        dtype=settings.track_dtype(),
        chunks=(rows, settings.max_tracks),
        **options,
    )
    return jets, tracks


def write_jets_file(
    path: Path, jets: np.ndarray, tracks: np.ndarray, settings: GeneratorSettings, attrs: dict[str, Any]
) -> None:
    """Write a jets file (a shard) with its jets, tracks and attributes."""
    with h5py.File(path, "w") as handle:
        jets_ds, tracks_ds = _create_datasets(handle, len(jets), settings)
        jets_ds[...] = jets
        tracks_ds[...] = tracks
        handle.attrs.update(attrs)


def file_matches(
    path: Path, settings: GeneratorSettings, n_rows: int, shard_index: int | None = None
) -> bool:
    """True if ``path`` is a readable jets file written with ``settings`` and ``n_rows`` jets."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as handle:
            ok = (
                handle.attrs.get("settings") == canonical_json(settings.canonical_dict())
                and handle.attrs.get("format_version") == FORMAT_VERSION
                and handle["jets"].shape == (n_rows,)
                and handle["jets"].dtype == settings.jet_dtype()
                and handle["tracks"].shape == (n_rows, settings.max_tracks)
                and (settings.tracks != "l1" or handle["tracks"].dtype == settings.track_dtype())
            )
            if shard_index is not None:
                ok = ok and handle.attrs.get("shard_index") == shard_index
            return bool(ok)
    except (OSError, KeyError, ValueError):
        return False


def merge_shards(out_dir: Path, settings: GeneratorSettings, jets_path: Path) -> list[dict[str, Any]]:
    """Concatenate the shards into jets.h5 (atomically); return the shards' attributes."""
    shard_attrs = []
    with atomic_path(jets_path) as tmp, h5py.File(tmp, "w") as merged:
        jets_ds, tracks_ds = _create_datasets(merged, settings.n_jets, settings)
        start = 0
        for index, n_rows in enumerate(settings.shard_sizes()):
            with h5py.File(shard_path(out_dir, index), "r") as shard:
                jets_ds[start : start + n_rows] = shard["jets"][...]
                tracks_ds[start : start + n_rows] = shard["tracks"][...]
                shard_attrs.append({key: shard.attrs[key] for key in ("n_events", "pythia_version")})
            start += n_rows
        merged.attrs["settings"] = canonical_json(settings.canonical_dict())
        merged.attrs["format_version"] = FORMAT_VERSION
    return shard_attrs


def write_sample_info(
    out_dir: Path,
    settings: GeneratorSettings,
    jets_path: Path,
    shard_attrs: list[dict[str, Any]],
    timing: dict[str, Any],
) -> None:
    """Write sample.json: settings, counts, versions, the jets.h5 sha256 and ``timing``."""
    with h5py.File(jets_path, "r") as handle:
        jets = handle["jets"][...]
    labels = (("b", 5), ("c", 4), ("light", 0)) + ((("tau", TAU_LABEL),) if settings.label_taus else ())
    counts = {name: int(np.sum(jets["flavour"] == code)) for name, code in labels}
    n_tracks = jets["n_tracks"].astype(np.int64)
    info = {
        "format_version": FORMAT_VERSION,
        "digest": settings.digest(),
        "process": settings.process,
        "settings": settings.canonical_dict(),
        "n_jets": int(len(jets)),
        "n_events": int(sum(int(a["n_events"]) for a in shard_attrs)),
        "n_shards": len(shard_attrs),
        "flavour_counts": counts,
        "flavour_fractions": {name: round(count / len(jets), 5) for name, count in counts.items()},
        "n_tracks_selected": int(n_tracks.sum()),
        "n_tracks_dropped": int(np.clip(n_tracks - settings.max_tracks, 0, None).sum()),
        "pythia_version": ",".join(sorted({str(a["pythia_version"]) for a in shard_attrs})),
        "fastjet_version": importlib.metadata.version("fastjet"),
        "jets_file": jets_path.name,
        "jets_sha256": sha256_of_file(jets_path),
        "timing": timing,
    }
    if jets.dtype == JET_DTYPE_EXTENDED:  # keys of later features only where they are used
        info["process_counts"] = {
            name: int(np.sum(jets["process"] == code)) for name, code in PROCESS_CODES.items()
        }
        info["mean_pileup_interactions"] = round(float(jets["n_pileup"].mean()), 4)
    write_json_atomic(out_dir / "sample.json", info)


def load_sample_info(path: Path) -> dict[str, Any]:
    """The sample.json of a sample, given its directory or its jets.h5."""
    path = Path(path)
    info_path = (path if path.is_dir() else path.parent) / "sample.json"
    if not info_path.is_file():
        raise TriggerMLError(
            f"no sample.json at {info_path}",
            "generate the sample with generate_sample (or point to its directory)",
        )
    return read_json(info_path)
