"""Every registered model kind through the contract of tests/kind_contract.py; a new kind adds
one class here, declaring its tiny model."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import TINY_MODEL
from kind_contract import KindContract, NetworkKindContract

from trigger_ml.config import ModelConfig, load_model_config
from trigger_ml.errors import TriggerMLError
from trigger_ml.kinds import KINDS, kind_of
from trigger_ml.symbolic import backends
from trigger_ml.symbolic.settings import load_symbolic_config
from trigger_ml.symbolic.stage import DistillRequest

TINY = "n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600"
DENSE_TEACHER = f"dense-small@{TINY},epochs=2,architecture.f_widths=[8]"
TINY_SEARCH = "generations=8,population_size=60,subsample=400,max_complexity=[5,9,13],select_features=8"


class TestQKerasDeepSet(NetworkKindContract):
    kind = "qkeras-deepsets"
    spec = TINY_MODEL


class TestQKerasDense(NetworkKindContract):
    kind = "qkeras-dense"
    spec = DENSE_TEACHER


class TestHGQ(NetworkKindContract):
    kind = "hgq"
    spec = TINY_MODEL.replace("dips-small@", "dips-small-hgq@", 1)


class TestPostTrainingQuantized(NetworkKindContract):
    kind = "ptq"
    spec = f"dips-small-ptq@{TINY},epochs=2,architecture.phi_widths=[4],architecture.f_widths=[4]"

    def exact_fraction(self, report: dict[str, Any]) -> float:
        # Exact by no construction: the rule is that the firmware program the report's
        # physics comes from is the C simulation itself (checked on the evaluation sample).
        assert report["fidelity"]["reference"] == "float"
        assert report["evaluation"]["evaluated_by"] == "C simulation"
        return 1.0


class _SymbolicContract(KindContract):
    no_bundle = (
        "firmware bundles hold network projects (trigger_ml.firmware); expressions are not bundled yet"
    )
    structure = "flat"

    @pytest.fixture(scope="class", autouse=True)
    def _no_julia(self):
        saved = backends.pysr_status
        backends.pysr_status = lambda timeout: (False, "simulated: no Julia")
        yield
        backends.pysr_status = saved

    def subject(self, config: ModelConfig) -> DistillRequest:
        settings = load_symbolic_config(TINY_SEARCH).model_copy(update={"structure": self.structure})
        return DistillRequest(config, settings)


class TestSymbolicFlat(_SymbolicContract):
    kind = "symbolic-flat"
    spec = DENSE_TEACHER


class TestSymbolicDeepSet(_SymbolicContract):
    kind = "symbolic-deepsets"
    spec = TINY_MODEL
    structure = "deepsets"


def test_every_kind_with_firmware_has_a_contract():
    declared = {cls.kind for cls in _all_subclasses(KindContract) if hasattr(cls, "kind")}
    with_firmware = {name for name, kind in KINDS.items() if kind.firmware_stage is not None}
    assert with_firmware <= declared, f"kinds without contract tests: {sorted(with_firmware - declared)}"


def test_each_zoo_model_has_exactly_one_kind():
    from trigger_ml.config import zoo_names

    kinds = {name: kind_of(load_model_config(name)).name for name in zoo_names()}
    assert kinds["dips-small"] == "qkeras-deepsets" and kinds["dense-small"] == "qkeras-dense"
    assert kinds["dips-small-hgq"] == "hgq" and kinds["dips-small-ptq"] == "ptq"
    assert kinds["dips-small-float"] == "float-reference"


def test_a_configuration_no_kind_claims_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(KINDS["qkeras-deepsets"], "claims", lambda config: False)
    with pytest.raises(TriggerMLError, match="0 model kinds claim it"):
        kind_of(load_model_config("dips-small"))


def _all_subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_all_subclasses(direct))]
