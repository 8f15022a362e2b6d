"""Shared fixtures: one tiny real-Pythia sample and a workspace per test session.

Tests use the real tools on tiny inputs: a few hundred Pythia jets, a Deep Set with
8-wide layers trained for a few epochs, hls4ml's real conversion and g++ C simulation.
"""

from pathlib import Path

import pytest

from trigger_ml.config import load_model_config
from trigger_ml.workspace import Workspace

TINY_MODEL = (
    "dips-small@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,epochs=4,"
    "architecture.phi_widths=[8,8],architecture.f_widths=[8]"
)

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


EVALUATION_JETS_LIMIT = 5000


@pytest.fixture(autouse=True)
def _small_evaluation_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that would generate the 300 000-jet evaluation sample of record fails at once
    with the fix, instead of running for many minutes."""
    from trigger_ml.data import stage

    real = stage._generate

    def guarded(settings, data_root):
        if settings.n_jets > EVALUATION_JETS_LIMIT:
            raise AssertionError(
                f"a test asked for a {settings.n_jets}-jet sample -> add eval_jets=1200 (and n_jets=800) "
                "to its model spec"
            )
        return real(settings, data_root)

    monkeypatch.setattr(stage, "_generate", guarded)


@pytest.fixture(autouse=True)
def _project_logging_as_found():
    """Tests that run the CLI in-process configure the project's logger (``logs.configure``);
    each test leaves it as it found it, so library-use tests see an unconfigured logger."""
    import logging

    logger = logging.getLogger("trigger_ml")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("workspace"))


@pytest.fixture(scope="session")
def tiny_config():
    return load_model_config(TINY_MODEL)


@pytest.fixture(scope="session")
def tiny_sample(workspace: Workspace, tiny_config) -> Path:
    from trigger_ml.pipeline import ensure_data

    return ensure_data(tiny_config, workspace)
