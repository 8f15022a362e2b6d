"""The zoo and its schema: every file validates; bad input is rejected naming the key."""

from pathlib import Path

import pytest

from trigger_ml.config import load_config_file, load_model_config, split_model_spec, zoo_names
from trigger_ml.errors import UsageError


def test_every_zoo_model_validates():
    names = zoo_names()
    assert "dips-small" in names
    for name in names:
        assert load_model_config(name).name == name


def test_dips_small_defaults_match_the_brief():
    c = load_model_config("dips-small")
    assert c.inputs.max_tracks == 16
    assert c.architecture.classes == ("b", "c", "light")
    assert (c.hls.backend, c.hls.part, c.hls.clock_period_ns, c.hls.io_type) == (
        "Vitis",
        "xcvu13p-flga2577-2-e",
        5.0,
        "io_parallel",
    )
    assert c.physics.f_c == pytest.approx(0.018)
    assert c.sample.n_jets >= 100_000


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(UsageError) as info:
        load_model_config("nonexistent")
    assert info.value.exit_code == 2
    assert "dips-small" in info.value.one_line()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("dips-small@foo=1", "unknown key 'foo'"),
        ("dips-small@training.epochs=-1", "training.epochs"),
        ("dips-small@training.epochs=many", "training.epochs"),
        ("dips-small@tracks=12", "power of two"),
        ("dips-small@reuse=2", "distributed_arithmetic builds fully unrolled"),
        ("dips-small@quantization.weight.integer=9", "integer bits"),
        ("dips-small@inputs.track_features=[sd0,bogus]", "bogus"),
        ("dips-small@bits", "not key=value"),
        ("dips-small@sample.detector.d0_typo=1", "unknown detector parameter 'd0_typo'"),
        ("dips-small@sample.detector.d0_ms_um_gev=-3", "d0_ms_um_gev must be > 0"),
        ("dips-small@sample.detector.tail_fraction=many", "tail_fraction must be a number"),
        ("dips-small@sample.detector.material_layers=[[33,0.01]]", "material_layers must be a list"),
    ],
)
def test_bad_overrides_name_the_problem(spec, fragment):
    with pytest.raises(UsageError) as info:
        load_model_config(spec)
    assert fragment in info.value.one_line()
    assert "\n" not in info.value.one_line()


def test_overrides_aliases_lists_and_canonical_name():
    c = load_model_config("dips-small@reuse=2,strategy=Latency,bits=6,architecture.phi_widths=[8, 4]")
    assert c.hls.reuse_factor == 2 and c.hls.strategy == "Latency"
    assert c.quantization.weight.bits == 6 and c.quantization.activation.bits == 6
    assert c.architecture.phi_widths == (8, 4)
    assert c.name == "dips-small@architecture.phi_widths=[8,4],bits=6,reuse=2,strategy=Latency"
    assert split_model_spec("m@a=[1,2],b=x") == ("m", {"a": [1, 2], "b": "x"})


def test_hashes_separate_training_from_firmware_settings():
    base = load_model_config("dips-small")
    reuse = load_model_config("dips-small@reuse=4,strategy=Latency")
    epochs = load_model_config("dips-small@epochs=3")
    assert base.training_digest() == reuse.training_digest()
    assert base.digest() != reuse.digest()
    assert base.training_digest() != epochs.training_digest()


def test_malformed_config_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narchitecture: {kind: deepsets, phi_widths: [8]\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_config_file(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: x\nhls: {reuse_factor: 0}\n")
    with pytest.raises(UsageError, match="hls.reuse_factor"):
        load_config_file(wrong)


def test_sample_detector_section_reaches_the_generator_and_the_digests():
    from trigger_ml.data.detector import DetectorModel
    from trigger_ml.data.generate import GeneratorSettings
    from trigger_ml.pipeline import generator_settings

    base = load_model_config("dips-small")
    assert base.sample.detector == DetectorModel() and "detector" not in base.sample.model_fields_set
    assert generator_settings(base).digest() == GeneratorSettings().digest()  # default sample kept

    run1 = load_model_config(
        "dips-small@sample.detector.d0_ms_um_gev=140,sample.detector.z0sintheta_ms_um_gev=209"
    )
    detector = generator_settings(run1).detector
    assert (detector.d0_ms_um_gev, detector.z0sintheta_ms_um_gev) == (140.0, 209.0)
    assert detector.d0_const_um == DetectorModel().d0_const_um  # the rest keeps its defaults
    assert generator_settings(run1).digest() != generator_settings(base).digest()
    assert run1.training_digest() != base.training_digest()
    # 140 and 140.0 are one sample; layers given as lists are the model's tuples
    as_float = load_model_config(
        "dips-small@sample.detector.d0_ms_um_gev=140.0,sample.detector.z0sintheta_ms_um_gev=209"
    )
    assert as_float.training_digest() == run1.training_digest()
    material = load_model_config("dips-small@sample.detector.material_layers=[[33,0.02,0.005]]")
    assert generator_settings(material).detector.material_layers == ((33.0, 0.02, 0.005),)


def test_sample_detector_section_in_a_config_file(tmp_path: Path):
    from trigger_ml.data.detector import DetectorModel

    path = tmp_path / "run1.yaml"
    path.write_text(
        "name: run1-resolution\n"
        "sample: {process: ttbar, n_jets: 1000, detector: {d0_ms_um_gev: 140, fake_rate: 0}}\n"
    )
    config = load_config_file(path)
    assert config.sample.detector == DetectorModel(d0_ms_um_gev=140.0, fake_rate=0.0)
    # the hashes see the parameters the file sets, not the defaults of the others
    assert config.model_dump(mode="json")["sample"]["detector"] == {"d0_ms_um_gev": 140.0, "fake_rate": 0.0}


def test_sample_settings_are_defined_once_and_dump_only_when_set():
    from trigger_ml.config import ModelConfig, SampleConfig
    from trigger_ml.data.settings import GeneratorSettings, SampleSettings
    from trigger_ml.pipeline import generator_settings

    # the sample section is the generator's schema plus the sample's size and seed, or a file
    assert issubclass(SampleConfig, SampleSettings) and issubclass(GeneratorSettings, SampleSettings)
    assert set(SampleConfig.model_fields) - set(SampleSettings.model_fields) == {
        "n_jets",
        "seed",
        "jets_per_shard",
        "path",
    }
    base = load_model_config("dips-small")
    dumped = base.model_dump(mode="json")["sample"]
    assert dumped["pileup_mu"] is None and dumped["detector"] is None  # unset: the generator's default
    assert "pileup_mu" not in base.model_dump(mode="json", exclude_none=True)["sample"]
    taus = load_model_config("dips-small@sample.label_taus=true,sample.detector.fake_rate=0")
    assert taus.model_dump(mode="json", exclude_none=True)["sample"] == {
        "process": "ttbar",
        "n_jets": 100_000,
        "seed": 1,
        "jets_per_shard": 5000,
        "label_taus": True,
        "detector": {"fake_rate": 0.0},
    }
    again = ModelConfig.model_validate(taus.model_dump(mode="json"))  # a dumped config loads back
    assert again.digest() == taus.digest() and again.training_digest() == taus.training_digest()
    assert generator_settings(taus) == GeneratorSettings(label_taus=True, detector={"fake_rate": 0.0})
