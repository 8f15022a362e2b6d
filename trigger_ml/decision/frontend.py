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
* ``words``: the integers the testbench reads per jet, from a configuration's prepared inputs
  (Python, the same for the test split and the hostile vectors);
* ``network_codes``: Python, words -> the network's input codes (the bit-exact reference of
  the block);
* ``shuffled``: words of the same jets with their tracks permuted (the permutation check);
* ``cost``: the block's cost section; ``spec``: its fragment of the bundle's input spec.

:func:`front_end_for` picks the front end of a configuration: :class:`FeatureFrontEnd` (the
network's inputs, already scaled and quantized, passed through) for every configuration today;
``inputs.tracks == "l1"`` (L1 track words, ``l1_preprocess.h``) once that work is merged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import make_section
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.interface import Interface


class FrontEnd(ABC):
    """The input side of ``trigger_top`` (see the module docstring)."""

    name: str

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
    def words(self, network_inputs: np.ndarray) -> np.ndarray:
        """int64 ``(n, n_words)``: what the testbench feeds per jet."""

    @abstractmethod
    def network_codes(self, words: np.ndarray) -> np.ndarray:
        """int64 ``(n, n_input)``: the network's input codes for ``words``."""

    @abstractmethod
    def shuffled(self, words: np.ndarray, seed: int) -> np.ndarray | None:
        """The same jets with their tracks permuted; None when order is part of the interface."""

    @abstractmethod
    def cost(self, clock_period_ns: float) -> dict[str, Any]: ...

    @abstractmethod
    def spec(self) -> dict[str, Any]: ...


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

    def words(self, network_inputs: np.ndarray) -> np.ndarray:
        flat = np.asarray(network_inputs, dtype=np.float64).reshape(len(network_inputs), -1)
        return self.interface.input.fixed.encode(flat)

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

    def cost(self, clock_period_ns: float) -> dict[str, Any]:
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
    if getattr(config.inputs, "tracks", None) == "l1":
        raise TriggerMLError(
            f"{config.name}: inputs.tracks = l1 needs the L1 track-word front end (TrackWordFrontEnd), "
            "is not wired into the decision stage yet",
            "set `decision: {enabled: false}` (as the zoo's dips-l1 does; docs/decision.md)",
        )
    return FeatureFrontEnd(config, interface)
