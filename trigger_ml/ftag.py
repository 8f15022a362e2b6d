"""Predictions in the flavour-tagging (FTAG) layout, so puma and salt users can overlay ours.

Every HLS project writes its test-split predictions (``ftag_predictions.h5``) and its
evaluation-sample predictions (``ftag_evaluation.h5``) as one HDF5 compound dataset named
``jets``, the layout of training-dataset-dumper files and of salt's output files:

=================================  =======  ==========================================
``<tagger>_pb``, ``_pc``, ``_pu``  float32  b, c, light probabilities (softmax of the logits)
``HadronConeExclTruthLabelID``     int32    5 b, 4 c, 0 light, 15 tau (samples with ``label_taus``)
``pt``                             float32  jet pT in MeV
``eta``                            float32  jet pseudorapidity
``eventNumber``                    int64    the sample's event number
=================================  =======  ==========================================

One tagger per model kind of the project: ``trigml_<model>_float`` (the float twin),
``trigml_<model>_qkeras`` (the quantization-aware model; ``_hgq`` for HGQ's proxy model) and
``trigml_<model>_firmware`` (the hls4ml C simulation on the test split; on the evaluation
sample what evaluated the firmware: the bit-exact emulator or the C simulation).
``<model>`` is the zoo name with ``-`` as ``_``; a model with overrides adds the first eight
hex digits of its configuration hash. The file attribute ``trigger_ml`` (JSON) names the
model, the sample, the split, ``f_c`` and the tagger of each kind. docs/data-formats.md
describes the layout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path, canonical_json
from trigger_ml.physics import softmax

TEST_FILE = "ftag_predictions.h5"
"""Test-split predictions of an HLS project in the FTAG layout."""
EVALUATION_FILE = "ftag_evaluation.h5"
"""Evaluation-sample predictions of an HLS project in the FTAG layout."""
JETS_DATASET = "jets"
LABEL_FIELD = "HadronConeExclTruthLabelID"
MEV_PER_GEV = 1000.0
PROBABILITY_SUFFIXES = {"b": "pb", "c": "pc", "light": "pu"}
"""Class name -> the FTAG suffix of its probability column."""
ATTRIBUTE = "trigger_ml"
"""File attribute holding what the table is (JSON)."""

KIND_SUFFIX = {"float": "float", "qkeras": "qkeras", "firmware": "firmware", "csim": "firmware"}
"""Model kind of the predictions files -> tagger suffix (the test split's C simulation is the
firmware)."""


def tagger_prefix(config: ModelConfig) -> str:
    """``trigml_<model>``: the zoo name with every character outside [A-Za-z0-9_] as ``_``, plus
    the first eight hex digits of the configuration hash when the model has overrides."""
    base, _, overrides = config.name.partition("@")
    prefix = "trigml_" + re.sub(r"[^A-Za-z0-9_]", "_", base)
    return f"{prefix}_{config.digest()[:8]}" if overrides else prefix


def tagger_names(config: ModelConfig, kinds: list[str]) -> dict[str, str]:
    """The tagger name of each model kind in ``kinds`` (``qkeras`` is ``hgq`` for HGQ models)."""
    prefix = tagger_prefix(config)
    names = {}
    for kind in kinds:
        suffix = KIND_SUFFIX.get(kind, kind)
        if kind == "qkeras" and config.quantization.is_hgq:
            suffix = "hgq"
        names[kind] = f"{prefix}_{suffix}"
    if len(set(names.values())) != len(names):
        raise ValueError(f"two model kinds share a tagger name: {names}")
    return names


def table_dtype(taggers: list[str]) -> np.dtype:
    """The compound type of the ``jets`` table with ``taggers``' probability columns."""
    fields = [(f"{t}_{suffix}", "<f4") for t in taggers for suffix in PROBABILITY_SUFFIXES.values()]
    fields += [(LABEL_FIELD, "<i4"), ("pt", "<f4"), ("eta", "<f4"), ("eventNumber", "<i8")]
    return np.dtype(fields)


def jets_table(
    jets: np.ndarray, logits: dict[str, np.ndarray], taggers: dict[str, str], classes: tuple[str, ...]
) -> np.ndarray:
    """The ``jets`` table of the sample rows ``jets`` (this project's jets.h5 layout, pT in GeV)
    with the probabilities of each kind's ``logits`` (columns in the order ``classes``)."""
    table = np.zeros(len(jets), dtype=table_dtype([taggers[kind] for kind in logits]))
    for kind, values in logits.items():
        if len(values) != len(jets):
            raise ValueError(f"{len(values)} {kind} predictions for {len(jets)} jets")
        probabilities = softmax(values)
        for index, name in enumerate(classes):
            table[f"{taggers[kind]}_{PROBABILITY_SUFFIXES[name]}"] = probabilities[:, index]
    table[LABEL_FIELD] = jets["flavour"]
    table["pt"] = np.asarray(jets["pt"], dtype=np.float64) * MEV_PER_GEV
    table["eta"] = jets["eta"]
    if "event_number" in (jets.dtype.names or ()):
        table["eventNumber"] = jets["event_number"]
    return table


def write_table(path: Path, table: np.ndarray, description: dict[str, Any]) -> None:
    """Write ``table`` as the ``jets`` dataset of ``path`` (atomically, the same bytes for the
    same content) with ``description`` as the JSON attribute ``trigger_ml``."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=False) as handle:
        handle.create_dataset(JETS_DATASET, data=table, compression="gzip", shuffle=True, track_times=False)
        handle.attrs[ATTRIBUTE] = canonical_json(description)


def write_predictions(
    path: Path,
    config: ModelConfig,
    jets: np.ndarray,
    logits: dict[str, np.ndarray],
    sample: dict[str, Any],
) -> dict[str, str]:
    """Write the FTAG table of ``logits`` (model kind -> (n, 3) logits in the order of
    ``config.architecture.classes``) on the sample rows ``jets``; ``sample`` says which jets
    they are (path, sha256, split). Returns the tagger name of each kind."""
    taggers = tagger_names(config, list(logits))
    table = jets_table(jets, logits, taggers, config.architecture.classes)
    description = {
        "model": config.name,
        "config_sha256": config.digest(),
        "sample": sample,
        "n_jets": int(len(table)),
        "f_c": config.physics.f_c,
        "taggers": taggers,
        "units": {"pt": "MeV"},
        "probabilities": "softmax of the model's logits, computed in float64",
    }
    write_table(path, table, description)
    return taggers


def read_table(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(``jets`` table, description) of an FTAG predictions file."""
    try:
        with h5py.File(path, "r") as handle:
            table = handle[JETS_DATASET][()]
            description = json.loads(handle.attrs[ATTRIBUTE])
    except (OSError, KeyError) as error:
        raise TriggerMLError(
            f"{path}: not a readable FTAG predictions file ({error})", "rebuild the project with --force"
        ) from None
    return table, description
