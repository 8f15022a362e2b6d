"""Every registered model kind through the contract of tests/kind_contract.py; a new kind adds
one class here, declaring its tiny model."""

from __future__ import annotations

from pathlib import Path
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


def save_tiny_user_model(folder: Path, phi_bias: bool = False, seed: int = 0) -> Path:
    """A tiny QKeras Deep Set as a user would save it (16 tracks x dips-small's 7 features,
    Φ 8 without bias, average pooling, F 8, 3 logits), with its metadata YAML beside it."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((16, 7), name="trk")
    x = QDense(8, use_bias=phi_bias, kernel_quantizer=quantized_bits(6, 0, alpha=1), name="trk_dense")(inputs)
    x = QActivation(quantized_relu(6, 3), name="trk_relu")(x)
    x = tf.keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = QDense(
        8,
        kernel_quantizer=quantized_bits(8, 0, alpha=1),
        bias_quantizer=quantized_bits(8, 3, alpha=1),
        name="jet",
    )(x)
    x = QActivation(quantized_relu(8, 3), name="jet_relu")(x)
    x = QDense(
        3,
        kernel_quantizer=quantized_bits(8, 0, alpha=1),
        bias_quantizer=quantized_bits(8, 3, alpha=1),
        name="out",
    )(x)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_user.h5"
    tf.keras.Model(inputs, x).save(path)
    path.with_suffix(".yaml").write_text(
        "name: tiny-user\n"
        "sample: {n_jets: 800, jets_per_shard: 400}\n"
        "evaluation: {n_jets: 1200, jets_per_shard: 600}\n"
        "inputs: {max_tracks: 16}\n"
        "classes: [b, c, light]\n"
        "input_type: {bits: 10, integer: 3}\n"
        "scaling: fit\n"
    )
    return path


class TestUserKeras(NetworkKindContract):
    kind = "user-keras"
    spec = "a QKeras model file the test saves (save_tiny_user_model)"

    @pytest.fixture(scope="class")
    def config(self, tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
        from trigger_ml.kinds.user_keras import load_user_model

        return load_user_model(save_tiny_user_model(tmp_path_factory.mktemp("user")))

    def test_the_run_is_the_imported_model(self, workspace, config: ModelConfig) -> None:
        from trigger_ml.pipeline import ensure_trained

        run = ensure_trained(config, workspace)
        assert run.metrics["imported"] and run.metrics["structure_problems"] == []


def test_user_model_structure_problems_name_the_layer(tmp_path: Path) -> None:
    from trigger_ml.kinds.user_keras import load_keras_file, load_user_model, structure_problems

    path = save_tiny_user_model(tmp_path, phi_bias=True)
    config = load_user_model(path)
    assert kind_of(config).name == "user-keras" and config.architecture.kind == "deepsets"
    problems = structure_problems(load_keras_file(path), config)
    assert len(problems) == 1 and problems[0].startswith("layer trk_dense: a per-track QDense with a bias")


def test_user_model_bad_inputs_are_one_line(tmp_path: Path) -> None:
    from trigger_ml.errors import UsageError
    from trigger_ml.kinds.user_keras import load_user_model

    with pytest.raises(UsageError, match="does not exist"):
        load_user_model(tmp_path / "none.h5")
    path = save_tiny_user_model(tmp_path)
    path.with_suffix(".yaml").write_text("sample: {n_jets: 800}\nclasess: [b]\n")
    with pytest.raises(UsageError, match=r"unknown key\(s\) \['clasess'\]"):
        load_user_model(path)


class TestBDT(NetworkKindContract):
    kind = "bdt"
    spec = f"bdt-small@{TINY},bdt.n_trees=3"
