"""The L1 preprocessing of a model configuration (``inputs.tracks: l1``) and its inputs from a
sample file: the same :class:`L1Preprocessing` for training, evaluation and firmware."""

from __future__ import annotations

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.l1.preprocess import L1Inputs, L1Preprocessing, preprocess

WORD_FIELDS = ("word0", "word1", "word2", "sector")
JET_FIELDS = ("l1_pt", "l1_eta", "l1_phi", "l1_vertex_z0")


def spec_for(config: ModelConfig, n_in: int) -> L1Preprocessing:
    """The preprocessing of ``config`` for ``n_in`` input words per jet (the sample's track
    slots): its output type is the network's input type, its 1/sigma tables the sample's L1
    resolutions, its cone the generator's jet radius (0.4)."""
    q = config.quantization.input
    l1 = config.sample.l1
    return L1Preprocessing(
        n_in=n_in,
        max_tracks=config.inputs.max_tracks,
        out_bits=q.bits,
        out_frac=q.bits - 1 - q.integer,
        sigma_d0_const_um=l1.d0_const_um,
        sigma_d0_ms_um_gev=l1.d0_ms_um_gev,
        sigma_z0_const_um=l1.z0sintheta_const_um,
        sigma_z0_ms_um_gev=l1.z0sintheta_ms_um_gev,
    )


def sample_inputs(jets: np.ndarray, tracks: np.ndarray) -> L1Inputs:
    """The L1 inputs (words (n, n_in, 3) uint32, sector, jet pT, eta, phi, vertex z0) of an L1
    sample's jet and track records."""
    missing = [f for f in WORD_FIELDS if f not in (tracks.dtype.names or ())]
    missing += [f for f in JET_FIELDS if f not in (jets.dtype.names or ())]
    if missing:
        raise TriggerMLError(
            f"the sample has no L1 track words (missing {missing})",
            "use a sample generated with sample.tracks l1",
        )
    words = np.stack([tracks["word0"], tracks["word1"], tracks["word2"]], axis=-1)
    return L1Inputs(words, tracks["sector"], *(jets[name] for name in JET_FIELDS))


def network_inputs(config: ModelConfig, jets: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """(n, max_tracks, 7) float32: the preprocessing's codes as values (code / 2^out_frac), exactly
    the network's quantized inputs."""
    inputs = sample_inputs(jets, tracks)
    spec = spec_for(config, inputs[0].shape[1])
    codes = preprocess(spec, *inputs)
    return (codes / float(1 << spec.out_frac)).astype(np.float32)
