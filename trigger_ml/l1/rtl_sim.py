"""The costed Verilog of one track (``l1_track``, trigger_ml.l1.rtl) simulated with Verilator, so
that the preprocessing block's cost is shown to be the cost of the one definition: its codes and
selection bit must equal :func:`trigger_ml.l1.preprocess.track_features` on every word.

The harness reads one track per line (word bits 0-31, 32-63, 64-95, sector, jet eta, jet phi,
vertex z0, ln(jet pT) code) and prints the 7 codes (signed) and the selection bit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from trigger_ml.errors import TriggerMLError
from trigger_ml.l1.preprocess import L1Inputs, L1Preprocessing, log_fixed
from trigger_ml.l1.rtl import track_verilog

VERILATOR_TIMEOUT_S = 1200
RUN_TIMEOUT_S = 300

HARNESS = r"""#include <cstdio>
#include <cstdint>
#include "Vl1_track.h"
#include "verilated.h"
static long long field(const VlWide<3> &v, int lsb, int bits) {
    uint64_t lo = v[lsb / 32] >> (lsb % 32);
    if (lsb % 32 + bits > 32) lo |= (uint64_t)v[lsb / 32 + 1] << (32 - lsb % 32);
    long long x = (long long)(lo & ((1ULL << bits) - 1));
    return (x >> (bits - 1)) ? x - (1LL << bits) : x;
}
int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    Vl1_track top;
    long long w0, w1, w2, sector, eta, phi, vz, lpt;
    while (scanf("%lld %lld %lld %lld %lld %lld %lld %lld", &w0, &w1, &w2, &sector, &eta, &phi, &vz, &lpt) == 8) {
        top.w[0] = (uint32_t)w0; top.w[1] = (uint32_t)w1; top.w[2] = (uint32_t)w2;
        top.sector = sector & 15; top.jet_eta = eta & 0xFFF; top.jet_phi = phi & 0x7FF;
        top.vz = vz & 0xFFF; top.log_jet_pt = lpt & 0x3FFFFF;
        top.eval();
        for (int f = 0; f < 7; f++) printf("%lld ", field(top.codes, QB * f, QB));
        printf("%d\n", (int)top.sel);
    }
    return 0;
}
"""


def build(spec: L1Preprocessing, workdir: Path) -> Path:
    """Verilate ``l1_track`` with the harness; the binary."""
    from trigger_ml.rtl import verilator_on_path

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "l1_track.v").write_text(track_verilog(spec))
    (workdir / "harness.cpp").write_text(HARNESS.replace("QB", str(spec.out_bits)))
    command = ["verilator", "--cc", "--exe", "--build", "-O1", "-Wno-fatal", "-Wno-lint", "-Wno-style"]
    command += ["--top-module", "l1_track", "l1_track.v", "harness.cpp", "-o", "l1_track_sim"]
    with verilator_on_path():
        result = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=VERILATOR_TIMEOUT_S, check=False
        )
    binary = workdir / "obj_dir" / "l1_track_sim"
    if result.returncode != 0 or not binary.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TriggerMLError(f"Verilator could not build l1_track: {last}", f"read the output in {workdir}")
    return binary


def simulate(binary: Path, inputs: L1Inputs) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, n_in, 7), selected (n, n_in)) of the Verilog for every track slot of ``inputs``."""
    words = np.asarray(inputs.words, np.int64)
    n, n_in = words.shape[:2]
    per_jet = [np.asarray(a, np.int64) for a in (inputs.jet_eta, inputs.jet_phi, inputs.vertex_z0)]
    log_pt = log_fixed(np.asarray(inputs.jet_pt, np.int64))
    columns = [words[..., 0], words[..., 1], words[..., 2], np.asarray(inputs.sector, np.int64)]
    columns += [np.repeat(a[:, None], n_in, axis=1) for a in (*per_jet, log_pt)]
    table = np.stack(columns, axis=-1).reshape(n * n_in, -1)
    text = "".join(" ".join(map(str, row)) + "\n" for row in table.tolist())
    result = subprocess.run(
        [str(binary)], input=text, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise TriggerMLError(f"the l1_track simulation failed: {result.stderr.strip()[:200]}", "rebuild it")
    out = np.array([line.split() for line in result.stdout.splitlines()], dtype=np.int64)
    return out[:, :7].reshape(n, n_in, 7), out[:, 7].reshape(n, n_in).astype(bool)
