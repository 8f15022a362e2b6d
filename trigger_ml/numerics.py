"""Training numerics that do not depend on the machine.

TensorFlow's CPU kernels (its oneDNN ops and the oneDNN sgemm inside Eigen's matrix products,
used even with ``TF_ENABLE_ONEDNN_OPTS=0``) pick their instruction set at run time: the same
training gives other weights on an AVX-512 machine than on an AVX2 one (measured here by
capping oneDNN at AVX2 on an AVX-512 machine; docs/evaluation.md). trigger-ml caps oneDNN at
``TRAINING_ISA``, which every x86-64 machine of the last decade has, before TensorFlow starts,
so a fresh clone trains the same weights on any such machine. Thread counts do not change the
weights (measured: 1 and 2 threads give identical weights).

A user's own ``ONEDNN_MAX_CPU_ISA`` is respected; the effective cap is part of the training
hash (``ModelConfig.training_digest``) and of every run's metrics, so runs trained under
different caps never share a directory.
"""

from __future__ import annotations

import os
import platform
from typing import Any

TRAINING_ISA = "AVX2"
ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"


def pin_cpu_isa() -> None:
    """Cap oneDNN at ``TRAINING_ISA`` unless the environment already says otherwise; must run
    before TensorFlow's first operation (trigger_ml's package import does it)."""
    os.environ.setdefault(ISA_VARIABLE, TRAINING_ISA)


def effective_isa() -> str:
    return os.environ.get(ISA_VARIABLE, TRAINING_ISA).upper()


def numerics_record() -> dict[str, Any]:
    """What a run records of the numerics it was trained with."""
    return {
        "onednn_max_cpu_isa": effective_isa(),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "machine": platform.machine(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
