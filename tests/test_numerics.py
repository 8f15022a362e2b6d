"""Machine-independent training numerics: oneDNN capped at AVX2 before TensorFlow starts, the
cap in the training hash, and the same weights whatever the thread count."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import TINY_MODEL

from trigger_ml.config import load_model_config
from trigger_ml.numerics import ISA_VARIABLE, TRAINING_ISA

TRAIN_IN_A_PROCESS = """
import sys
import tensorflow as tf  # imported before trigger_ml on purpose: the cap must still apply
threads = int(sys.argv[3])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
from pathlib import Path
from trigger_ml.config import load_model_config
from trigger_ml.training import train
train(load_model_config(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[4]))
"""


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ISA_VARIABLE}
    env.update({k: v for k, v in changes.items() if v is not None})
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _cap_seen(env: dict[str, str]) -> str:
    code = f"import os, trigger_ml; print(os.environ['{ISA_VARIABLE}'])"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout


def test_importing_trigger_ml_caps_onednn_unless_the_user_chose():
    assert _cap_seen(_env()).strip() == TRAINING_ISA
    assert _cap_seen(_env(**{ISA_VARIABLE: "AVX512_CORE"})).strip() == "AVX512_CORE"


def test_the_cap_is_part_of_the_training_hash(monkeypatch):
    config = load_model_config("dips-small")
    pinned = config.training_digest()
    monkeypatch.setenv(ISA_VARIABLE, "AVX512_CORE")
    assert config.training_digest() != pinned
    assert config.digest() == load_model_config("dips-small").digest()  # firmware key unchanged


def _weights_hash(run_dir: Path) -> str:
    digest = hashlib.sha256()

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            digest.update(name.encode() + np.asarray(obj[()]).tobytes())

    with h5py.File(run_dir / "qkeras.weights.h5", "r") as handle:
        handle.visititems(visit)
    return digest.hexdigest()


@pytest.mark.slow
def test_same_weights_with_one_or_two_threads_and_the_default_or_explicit_cap(tmp_path, tiny_sample):
    spec = f"{TINY_MODEL},epochs=2"
    runs = []
    for threads, env in ((1, _env()), (2, _env(**{ISA_VARIABLE: TRAINING_ISA}))):
        run = tmp_path / f"run-{threads}"
        subprocess.run(
            [sys.executable, "-c", TRAIN_IN_A_PROCESS, spec, str(tiny_sample), str(threads), str(run)],
            env=env,
            check=True,
            timeout=600,
        )
        runs.append(_weights_hash(run))
    assert runs[0] == runs[1]
