"""Benchmark of the fast emulator against hls4ml's C simulation (``predict``).

``python -m trigger_ml.hls.bench_emulator [MODEL] [--jets N]`` builds (or reuses) the HLS
project of MODEL (default dips-small), compiles its C simulation, takes the first N jets of
the model's evaluation sample (default: all of them, 300 000), runs both on them, checks that
every output is identical, and prints jets per second of each and their ratio. The rates are
wall-clock figures of this machine: other jobs lower them.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from trigger_ml.config import load_model_config
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.logs import configure, timed
from trigger_ml.workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trigger_ml.hls.bench_emulator", description=__doc__)
    parser.add_argument("model", nargs="?", default="dips-small")
    parser.add_argument("--jets", type=int, default=None, help="jets (default: the whole evaluation sample)")
    args = parser.parse_args(argv)
    configure()  # the HLS stage's progress lines, as `trigger-ml hls` prints them
    try:
        return _bench(args.model, args.jets)
    except TriggerMLError as error:
        print(error.one_line(), file=sys.stderr)
        return error.exit_code


def _bench(spec: str, n_jets: int | None) -> int:
    import tempfile

    from trigger_ml.evaluation import load_evaluation_sample
    from trigger_ml.hls.convert import compile_csim, convert
    from trigger_ml.hls.emulator import emulate
    from trigger_ml.hls.fidelity import csim_predict
    from trigger_ml.pipeline import ensure_evaluation_data, ensure_hls, ensure_trained

    config = load_model_config(spec)
    ws = Workspace.default()
    ensure_hls(config, ws)
    run = ensure_trained(config, ws)
    x = load_evaluation_sample(config, run, ensure_evaluation_data(config, ws)).inputs
    if n_jets is not None:
        if n_jets < 1:
            raise UsageError(f"--jets must be at least 1 (got {n_jets})", "omit it for the whole sample")
        x = np.concatenate([x] * (n_jets // len(x) + 1))[:n_jets]
    n_jets = len(x)
    model = run.load_reference(config)
    with tempfile.TemporaryDirectory() as tmp:
        hls_model = convert(model, config, os.path.join(tmp, "prj"))
        compile_csim(hls_model)
        with timed() as clock:
            csim = csim_predict(hls_model, x)
        csim_s = clock.seconds
    with timed() as clock:
        emulated = emulate(ws.hls_dir(config.name), x)
    emulator_s = clock.seconds
    same = np.all(emulated == csim, axis=1)
    print(f"{config.name}: {n_jets} jets, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"  hls4ml C simulation (predict): {n_jets / csim_s:12.0f} jets/s ({csim_s:.2f} s)")
    print(f"  emulator (numpy):              {n_jets / emulator_s:12.0f} jets/s ({emulator_s:.2f} s)")
    print(f"  speed-up {csim_s / emulator_s:.1f}x; identical outputs on {int(same.sum())} / {n_jets} jets")
    return 0 if same.all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
