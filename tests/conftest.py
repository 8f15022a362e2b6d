"""Shared fixtures: one tiny real-Pythia sample and a workspace per test session.

Tests use the real tools on tiny inputs: a few hundred Pythia jets, a Deep Set with
8-wide layers trained for a few epochs, hls4ml's real conversion and g++ C simulation.
"""

from pathlib import Path

import pytest

from trigger_ml.config import load_model_config
from trigger_ml.workspace import Workspace

TINY_MODEL = (
    "dips-small@n_jets=800,sample.jets_per_shard=400,epochs=4,"
    "architecture.phi_widths=[8,8],architecture.f_widths=[8]"
)

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("workspace"))


@pytest.fixture(scope="session")
def tiny_config():
    return load_model_config(TINY_MODEL)


@pytest.fixture(scope="session")
def tiny_sample(workspace: Workspace, tiny_config) -> Path:
    from trigger_ml.pipeline import ensure_data

    return ensure_data(tiny_config, workspace, log=False)
