"""Front ends: what ``trigger_top`` takes from the input side and how it makes the network's inputs.

``trigger_top`` is FRONT -> the hls4ml network ``myproject`` -> the decision. A front end says,
for one configuration, everything the top and its testbench need from the input side
(docs/decision.md, "Front-end protocol"):

* ``includes``: C++ headers ``trigger_top.cpp`` includes (its own files come from ``files``);
* ``parameters``: the top's input parameter declarations, e.g. ``input_t features[16*7]``;
* ``fill_network_input``: C++ statements that fill the network input ``input_t x[N_INPUT]``
  from those parameters;
* ``testbench_declarations`` / ``testbench_load``: C++ that declares the parameters in the
  testbench and loads them from ``const long long *words`` (one jet's ``n_words`` integers);
* ``words``: the integers the testbench reads per jet, from the jets' :class:`FrontEndJets`
  (the network's prepared inputs, and the sample's records of the same jets);
* ``hostile``: the front end's hostile vectors as words, each with its family name;
  ``hostile_from_network`` says whether they are the network's own hostile vectors
  (trigger_ml.firmware.hostile, so the bundle's network vectors give their logits) or the
  front end's (their logits come from the Python chain);
* ``network_codes``: Python, words -> the network's input codes (the bit-exact reference of
  the block);
* ``shuffled``: words of the same jets with their tracks permuted (the permutation check);
* ``cost``: the block's cost section; ``spec``: its fragment of the bundle's input spec.

:func:`front_end_for` picks the front end of a configuration: :class:`FeatureFrontEnd` (the
network's inputs, already scaled and quantized, passed through), or for ``inputs.tracks: l1``
the L1 track words through ``l1_preprocess.h`` (trigger_ml.l1.frontend.TrackWordFrontEnd).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import make_section
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.interface import Interface


@dataclass(frozen=True)
class FrontEndJets:
    """Jets a front end makes words of: the network's prepared inputs (flat per jet) and the
    sample's jet and track records of the same jets, in the same order."""

    network_inputs: np.ndarray
    jets: np.ndarray
    tracks: np.ndarray

    def head(self, n: int) -> FrontEndJets:
        return FrontEndJets(self.network_inputs[:n], self.jets[:n], self.tracks[:n])


def csim_test_split(
    config: ModelConfig, data_path: Path, project_dir: Path, scaling: Any, jet_scaling: Any
) -> dict[str, Any]:
    """The test split the project's C simulation ran on (``csim_predictions.h5``): its file
    ``rows``, ``classes`` and C-simulation ``logits``, the network's prepared ``inputs`` (flat
    per jet, float64) and the same jets as :class:`FrontEndJets` (``jets``). Raises when the data
    and configuration give another split than the one simulated."""
    import h5py

    from trigger_ml.data.dataset import model_inputs, prepare, read_sample

    with h5py.File(project_dir / "csim_predictions.h5", "r") as handle:
        rows, classes = handle["test_index"][()], handle["classes"][()]
        logits = handle["logits_csim"][()].astype(np.float64)
    sample = read_sample(data_path)
    data = prepare(sample, config, scaling=scaling, jet_scaling=jet_scaling)
    if not (np.array_equal(data.indices["test"], rows) and np.array_equal(data.classes["test"], classes)):
        raise TriggerMLError(
            f"{project_dir / 'csim_predictions.h5'} holds another test split than the data and config give",
            f"run `trigger-ml hls '{config.name}' --force`",
        )
    inputs = np.asarray(model_inputs(data.inputs["test"], config), np.float64)
    flat = inputs.reshape(len(inputs), -1)
    jets = FrontEndJets(flat, sample.jets[rows], sample.tracks[rows])
    return {"inputs": flat, "jets": jets, "classes": classes, "rows": rows, "logits": logits}


class FrontEnd(ABC):
    """The input side of ``trigger_top`` (see the module docstring)."""

    name: str
    hostile_from_network: bool = True

    def __init__(self, config: ModelConfig, interface: Interface) -> None:
        self.config = config
        self.interface = interface

    @property
    def n_input(self) -> str:
        """Size expression of the network input array (``16*7``)."""
        return self.interface.input.size_expr

    @property
    def files(self) -> dict[str, str]:
        """Extra source files (name -> text) written beside ``trigger_top.cpp``."""
        return {}

    @property
    @abstractmethod
    def includes(self) -> list[str]: ...

    @property
    @abstractmethod
    def parameters(self) -> list[str]: ...

    @property
    @abstractmethod
    def fill_network_input(self) -> str: ...

    @property
    @abstractmethod
    def n_words(self) -> int: ...

    @property
    @abstractmethod
    def testbench_declarations(self) -> str: ...

    @property
    @abstractmethod
    def testbench_load(self) -> str: ...

    @abstractmethod
    def words(self, jets: FrontEndJets) -> np.ndarray:
        """int64 ``(n, n_words)``: what the testbench feeds per jet."""

    @abstractmethod
    def hostile(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """int64 ``(m, n_words)`` hostile words and each row's family name."""

    @abstractmethod
    def network_codes(self, words: np.ndarray) -> np.ndarray:
        """int64 ``(n, n_input)``: the network's input codes for ``words``."""

    @abstractmethod
    def shuffled(self, words: np.ndarray, seed: int) -> np.ndarray | None:
        """The same jets with their tracks permuted; None when order is part of the interface."""

    @abstractmethod
    def cost(self, clock_period_ns: float, cache_dir: Path | None = None) -> dict[str, Any]:
        """The block's cost section; ``cache_dir`` may keep slow measurements between builds."""

    @abstractmethod
    def spec(self) -> dict[str, Any]: ...

    def identity(self) -> dict[str, Any]:
        """What the block is made of, for the decision stage's cache key: its name and the hash
        of its sources (a front end whose cost comes from other text adds that text's hash)."""
        from trigger_ml.fileio import sha256_of_obj

        return {"name": self.name, "files_sha256": sha256_of_obj(self.files)}

    def network_inputs_spec(self) -> dict[str, Any] | None:
        """For a front end that computes the network's inputs itself: the input spec's
        ``feature_docs`` (name -> (definition, unit)), ``tracks`` (selection, ordering, padding),
        ``scaled_value`` and ``entry`` (where the bundle's input is); None: the features come
        scaled from outside (trigger_ml.firmware.spec's defaults)."""
        return None


class FeatureFrontEnd(FrontEnd):
    """Today's input: the features already scaled and quantized onto the network's input type
    (``input_t``, or whatever the project names it, e.g. ``tracks_t`` for HGQ), passed through
    unchanged."""

    name = "features"

    @property
    def includes(self) -> list[str]:
        return []

    @property
    def parameters(self) -> list[str]:
        return [f"{self.interface.input.type_name} features[{self.n_input}]"]

    @property
    def fill_network_input(self) -> str:
        return (
            f"    for (int i = 0; i < {self.n_input}; i++) {{\n"
            "        #pragma HLS UNROLL\n"
            "        x[i] = features[i];\n"
            "    }\n"
        )

    @property
    def n_words(self) -> int:
        return self.interface.input.elements

    @property
    def testbench_declarations(self) -> str:
        return f"    {self.interface.input.type_name} features[{self.n_input}];\n"

    @property
    def testbench_load(self) -> str:
        frac = self.interface.input.fixed.fractional_bits
        return f"        for (int i = 0; i < {self.n_words}; i++) features[i] = from_code<{self.interface.input.type_name}>(words[i], {frac});\n"

    def words(self, jets: FrontEndJets) -> np.ndarray:
        return self._encode(jets.network_inputs)

    def _encode(self, values: np.ndarray) -> np.ndarray:
        flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        return self.interface.input.fixed.encode(flat)

    def hostile(self) -> tuple[np.ndarray, tuple[str, ...]]:
        from trigger_ml.firmware.hostile import InputLayout, hostile_vectors

        vectors = hostile_vectors(InputLayout.of(self.config), self.interface.input.fixed)
        return self._encode(vectors.values), tuple(vectors.families)

    def network_codes(self, words: np.ndarray) -> np.ndarray:
        return np.asarray(words, dtype=np.int64)

    def shuffled(self, words: np.ndarray, seed: int) -> np.ndarray | None:
        if self.config.architecture.kind != "deepsets":
            return None
        from trigger_ml.hls.fidelity import shuffle_valid_tracks

        features = list(self.config.inputs.track_features)
        tracks = np.asarray(words).reshape(len(words), self.config.inputs.max_tracks, len(features))
        valid = (
            tracks[:, :, features.index("valid")] != 0 if "valid" in features else np.any(tracks != 0, axis=2)
        )
        return shuffle_valid_tracks(tracks, valid, seed).reshape(len(words), -1)

    def cost(self, clock_period_ns: float, cache_dir: Path | None = None) -> dict[str, Any]:
        return make_section(
            source="estimate",
            tool=None,
            clock_period_ns=clock_period_ns,
            latency_cycles=(0, 0),
            initiation_interval=1,
            resources={},
            notes=[
                "front end `features`: the network's input port passed through (wires): no logic, no cycle"
            ],
        )

    def spec(self) -> dict[str, Any]:
        return {
            "front_end": self.name,
            "trigger_top_inputs": self.parameters,
            "note": "the network's input features, scaled and encoded as in layout/encoding above",
        }


def front_end_for(config: ModelConfig, interface: Interface) -> FrontEnd:
    """The front end of ``config``: the L1 track-word preprocessing when ``inputs.tracks`` is
    ``"l1"``, else :class:`FeatureFrontEnd`."""
    if config.inputs.tracks == "l1":
        from trigger_ml.l1.frontend import TrackWordFrontEnd

        return TrackWordFrontEnd(config, interface)
    return FeatureFrontEnd(config, interface)
