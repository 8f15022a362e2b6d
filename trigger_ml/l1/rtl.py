"""The cost of the L1 preprocessing block: its parts written as Verilog from the same tables and
arithmetic as ``l1_preprocess.h``, each synthesized with Yosys ``synth_xilinx`` (the project's
Yosys route, trigger_ml.cost.yosys), and the block's cost counted from them:

* ``l1_track``: one track word -> its 7 codes, the selection bit and its sort key (tables as
  ROMs, the 1/sigma multiplications, squares, logarithms); ``n_in`` of them;
* ``l1_jet``: the jet's shared logarithm of pT; one;
* ``l1_compare``: one comparison of two sort keys, key_j > key_i (j beats i; i beats j is its
  complement, the tie going to the lower index); n_in (n_in - 1) / 2 of them (the rank network);
* ``l1_rank``: the rank of one track (a population count of its n_in - 1 comparison bits); n_in;
* ``l1_slot``: one output slot: an n_in-way one-hot selection of 7 codes by rank; max_tracks.

The parts are combinational; ``ltp -noff`` gives each one's depth in LUT levels (the depth of a
pipelined block is the sum along the path track -> compare -> rank -> slot). The Verilog is
written for costing: it is not simulated against the C++ (the C++ is checked against the
Python bit for bit, tests/test_l1.py); LUT and CARRY counts are Yosys' synthesis, not
place-and-route.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from trigger_ml.cost.yosys import cell_counts, find_yosys
from trigger_ml.errors import TriggerMLError
from trigger_ml.l1.preprocess import (
    D0_SHIFT,
    ETA_LUT_SHIFT,
    ETA_LUT_SIZE,
    LOG_FRAC,
    MANT_BITS,
    N_BINS,
    PHI_MUL,
    PHI_SHIFT,
    RINV_BIN_SHIFT,
    SIG_SHIFT,
    TANL_BIN_SHIFT,
    Z0_SHIFT,
    L1Preprocessing,
)

YOSYS_TIMEOUT_S = 1800


def _rom(name: str, width: int, values: Any, index: str, signed: bool = False) -> str:
    cases = "\n".join(f"      {i}: {name} = {int(v)};" for i, v in enumerate(values))
    kind = "reg signed" if signed else "reg"
    return (
        f"  {kind} [{width - 1}:0] {name};\n  always @(*) begin\n    case ({index})\n{cases}\n"
        f"      default: {name} = 0;\n    endcase\n  end\n"
    )


def _log(name: str, x: str, width: int, mant: Any, ln2: int) -> str:
    """ln(x) * 2^LOG_FRAC as in the C++ (x = 0 counts as 1)."""
    prio = "\n".join(f"      if ({name}_x[{b}]) {name}_p = {b};" for b in range(width))
    return f"""  wire [{width - 1}:0] {name}_x = ({x} == 0) ? 1 : {x};
  reg [5:0] {name}_p;
  always @(*) begin
    {name}_p = 0;
{prio}
  end
  wire [{width + MANT_BITS - 1}:0] {name}_sh = ({name}_p >= {MANT_BITS}) ? ({name}_x >> ({name}_p - {MANT_BITS})) : ({name}_x << ({MANT_BITS} - {name}_p));
  wire [{MANT_BITS - 1}:0] {name}_m = {name}_sh[{MANT_BITS - 1}:0];
{_rom(name + "_mant", 11, mant, name + "_m")}  wire signed [21:0] {name} = $signed({{1'b0, {name}_p}}) * {ln2} + $signed({{11'b0, {name}_mant}});
"""


def track_verilog(spec: L1Preprocessing) -> str:
    """``l1_track``: one word's codes (packed, 7 x out_bits), selection bit and sort key."""
    t, c, b = spec.tables, spec.constants, spec.bounds
    nb, dzb, d0b = b["NEAR_BITS"], b["DZ_BITS"], b["D0_BITS"]
    qb, qmin, qmax = spec.out_bits, spec.q_min, spec.q_max
    sh = LOG_FRAC - spec.out_frac

    def sat(name: str, expr: str) -> str:
        return (
            f"  wire signed [31:0] {name}_v = {expr};\n"
            f"  wire signed [{qb - 1}:0] {name} = ({name}_v < {qmin}) ? {qmin} : "
            f"(({name}_v > {qmax}) ? {qmax} : {name}_v[{qb - 1}:0]);\n"
        )

    return f"""module l1_track(input [95:0] w, input [3:0] sector, input signed [11:0] jet_eta,
  input signed [10:0] jet_phi, input signed [11:0] vz, input signed [21:0] log_jet_pt,
  output [{7 * qb - 1}:0] codes, output sel, output [{7 * qb}:0] key);
  wire signed [14:0] rinv = w[94:80];
  wire signed [11:0] phi = w[79:68];
  wire signed [15:0] tanl = w[63:48];
  wire signed [11:0] z0 = w[47:36];
  wire signed [12:0] d0 = w[31:19];
  wire good_sector = sector < 9;
{_rom("soff", 15, t["sector_offset"], "good_sector ? sector : 4'd0", signed=True)}  wire signed [15:0] phi_g = phi + soff;
  wire signed [22:0] phi_m = phi_g * {PHI_MUL};
  wire signed [14:0] phi_j = phi_m >>> {PHI_SHIFT};
  wire signed [13:0] dphi0 = phi_j - jet_phi;
  wire signed [13:0] dphi = (dphi0 >= 720) ? dphi0 - 1440 : ((dphi0 < -720) ? dphi0 + 1440 : dphi0);
  wire [16:0] abs_tanl = tanl[15] ? -$signed({{tanl[15], tanl}}) : tanl;
  wire [16:0] eta_i0 = abs_tanl >> {ETA_LUT_SHIFT};
  wire [10:0] eta_i = (eta_i0 > {ETA_LUT_SIZE - 1}) ? {ETA_LUT_SIZE - 1} : eta_i0[10:0];
{_rom("eta_abs", 10, t["eta"], "eta_i")}  wire signed [13:0] deta = (tanl[15] ? -$signed({{1'b0, eta_abs}}) : $signed({{1'b0, eta_abs}})) - jet_eta;
  wire [13:0] abs_deta = deta[13] ? -deta : deta;
  wire [13:0] abs_dphi = dphi[13] ? -dphi : dphi;
  wire near = abs_deta < {b["NEAR"]} && abs_dphi < {b["NEAR"]};
  wire [{nb - 1}:0] deta_n = abs_deta[{nb - 1}:0];
  wire [{nb - 1}:0] dphi_n = abs_dphi[{nb - 1}:0];
  wire [{2 * nb}:0] dr2 = deta_n * deta_n + dphi_n * dphi_n;
  wire signed [13:0] dz = z0 - vz;
  wire [13:0] abs_dz = dz[13] ? -dz : dz;
  assign sel = w[95] && good_sector && near && dr2 < {c["DR2_MAX"]} && abs_dz < {c["DZ_MAX"]};
  wire d0_neg = (d0 > 0 && dphi > 0) || (d0 < 0 && dphi < 0);
  wire dz_neg = (dz > 0 && deta > 0) || (dz < 0 && deta < 0);
  wire [13:0] abs_d0 = d0[12] ? -d0 : d0;
  wire [15:0] abs_rinv = rinv[14] ? -$signed({{rinv[14], rinv}}) : rinv;
  wire [15:0] rb0 = abs_rinv >> {RINV_BIN_SHIFT};
  wire [3:0] rb = (rb0 > {N_BINS - 1}) ? {N_BINS - 1} : rb0[3:0];
  wire [16:0] tb0 = abs_tanl >> {TANL_BIN_SHIFT};
  wire [3:0] tb = (tb0 > {N_BINS - 1}) ? {N_BINS - 1} : tb0[3:0];
  wire [7:0] sbin = {{rb, tb}};
  wire [{d0b - 1}:0] d0_n = (abs_d0 > {(1 << d0b) - 1}) ? {(1 << d0b) - 1} : abs_d0[{d0b - 1}:0];
  wire [{dzb - 1}:0] dz_n = abs_dz[{dzb - 1}:0];
{_rom("isd0", 17, t["inv_sigma_d0"], "sbin")}{_rom("isz0", 17, t["inv_sigma_z0"], "sbin")}  wire [{d0b + 16}:0] sd0_m = (d0_n * isd0) >> {SIG_SHIFT};
  wire [{dzb + 16}:0] sz0_m = (dz_n * isz0) >> {SIG_SHIFT};
{_log("lr", "abs_rinv", 16, t["log_mantissa"], c["LN2"])}{_log("ld", "dr2", 2 * nb + 1, t["log_mantissa"], c["LN2"])}{sat("f0", "d0_neg ? -$signed({1'b0, sd0_m}) : $signed({1'b0, sd0_m})")}{sat("f1", "dz_neg ? -$signed({1'b0, sz0_m}) : $signed({1'b0, sz0_m})")}{sat("f2", f"({c['K_PTFRAC']} - lr - log_jet_pt) >>> {sh}")}{sat("f3", f"(ld + ({c['K_DR']})) >>> {sh + 1}")}{sat("f4", f"d0_neg ? -$signed({{1'b0, abs_d0}} << {spec.out_frac - D0_SHIFT}) : $signed({{1'b0, abs_d0}} << {spec.out_frac - D0_SHIFT})")}{sat("f5", f"dz_neg ? -$signed({{{21 - dzb}'b0, dz_n}} << {spec.out_frac - Z0_SHIFT}) : $signed({{{21 - dzb}'b0, dz_n}} << {spec.out_frac - Z0_SHIFT})")}  wire [{qb - 1}:0] one = {1 << spec.out_frac};
  assign codes = sel ? {{one, f5, f4, f3, f2, f1, f0}} : 0;
  wire [{qb - 1}:0] mag = f0[{qb - 1}] ? -f0 : f0;
  assign key = sel ? {{1'b1, mag, f0 ^ {1 << (qb - 1)}, f1 ^ {1 << (qb - 1)}, f2 ^ {1 << (qb - 1)}, f3 ^ {1 << (qb - 1)}, f4 ^ {1 << (qb - 1)}, f5 ^ {1 << (qb - 1)}}} : 0;
endmodule
"""


def jet_verilog(spec: L1Preprocessing) -> str:
    t, c = spec.tables, spec.constants
    return f"""module l1_jet(input [15:0] jet_pt, output signed [21:0] log_jet_pt);
{_log("lj", "jet_pt", 16, t["log_mantissa"], c["LN2"])}  assign log_jet_pt = lj;
endmodule
"""


def compare_verilog(spec: L1Preprocessing) -> str:
    kb = 7 * spec.out_bits + 1
    return f"""module l1_compare(input [{kb - 1}:0] a, input [{kb - 1}:0] b, output gt);
  assign gt = a > b;
endmodule
"""


def rank_verilog(spec: L1Preprocessing) -> str:
    n = spec.n_in - 1
    terms = " + ".join(f"beats[{i}]" for i in range(n))
    return f"""module l1_rank(input [{n - 1}:0] beats, output [6:0] rank);
  assign rank = {terms};
endmodule
"""


def slot_verilog(spec: L1Preprocessing, slot: int = 0) -> str:
    n, w = spec.n_in, 7 * spec.out_bits
    body = " |\n    ".join(
        f"({{{w}{{sel[{i}] && rank[{7 * i + 6}:{7 * i}] == {slot}}}}} & codes[{w * i + w - 1}:{w * i}])"
        for i in range(n)
    )
    return f"""module l1_slot(input [{n - 1}:0] sel, input [{7 * n - 1}:0] rank, input [{w * n - 1}:0] codes, output [{w - 1}:0] out);
  assign out = {body};
endmodule
"""


PARTS = {
    "l1_track": track_verilog,
    "l1_jet": jet_verilog,
    "l1_compare": compare_verilog,
    "l1_rank": rank_verilog,
    "l1_slot": slot_verilog,
}


def synthesize(verilog: str, top: str, workdir: Path, dsp: bool = False) -> dict[str, Any]:
    """Yosys synth_xilinx (xcup; without ``dsp`` every product in LUTs) of one part: cell counts
    and the longest path in LUT levels (``ltp -noff``)."""
    command, _ = find_yosys()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{top}.v").write_text(verilog)
    script = (
        f"read_verilog {top}.v\nsynth_xilinx -family xcup -top {top} -flatten -noiopad -noclkbuf{'' if dsp else ' -nodsp'}\n"
        "tee -q -o stat.json stat -json\ntee -o ltp.txt ltp -noff\n"
    )
    (workdir / "synth.ys").write_text(script)
    result = subprocess.run(
        [*command, "-q", "synth.ys"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=YOSYS_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise TriggerMLError(
            f"Yosys failed on {top}: {result.stderr.strip()[-300:]}", "read yosys' output in " + str(workdir)
        )
    stat = json.loads((workdir / "stat.json").read_text())
    cells = next(iter(stat["modules"].values()))["num_cells_by_type"]
    match = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", (workdir / "ltp.txt").read_text())
    return {"counts": cell_counts(cells), "ltp_length": int(match.group(1)) if match else None}


def block_cost(spec: L1Preprocessing, workdir: Path | None = None, dsp: bool = False) -> dict[str, Any]:
    """Every part's Yosys figures and the block's counted totals (LUT, CARRY cells)."""
    multiplicity = {
        "l1_track": spec.n_in,
        "l1_jet": 1,
        "l1_compare": spec.n_in * (spec.n_in - 1) // 2,
        "l1_rank": spec.n_in,
        "l1_slot": spec.max_tracks,
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(workdir or tmp)
        parts = {name: synthesize(make(spec), name, base / name, dsp) for name, make in PARTS.items()}
    total_lut = sum(parts[n]["counts"]["LUT"] * k for n, k in multiplicity.items())
    total_ff = sum(parts[n]["counts"]["FF"] * k for n, k in multiplicity.items())
    total_dsp = sum(parts[n]["counts"]["DSP"] * k for n, k in multiplicity.items())
    return {
        "source": f"Yosys synth_xilinx -family xcup{'' if dsp else ' -nodsp'} of each part, counted (trigger_ml.l1.rtl)",
        "n_in": spec.n_in,
        "max_tracks": spec.max_tracks,
        "parts": {n: {**parts[n], "count": multiplicity[n]} for n in parts},
        "lut": total_lut,
        "ff": total_ff,
        "dsp": total_dsp,
        "lut_levels_on_path": sum(
            parts[n]["ltp_length"] or 0 for n in ("l1_track", "l1_compare", "l1_rank", "l1_slot")
        ),
    }


def cached_block_cost(spec: L1Preprocessing, cache_dir: Path, dsp: bool = False) -> dict[str, Any]:
    """:func:`block_cost`, kept in ``cache_dir`` under the hash of what it depends on (every
    part's Verilog, the multiplicities, Yosys' version): a rebuild of the same block reads it
    back instead of running Yosys for minutes. The entry records its key."""
    from trigger_ml.fileio import read_json, sha256_of_obj, write_json_atomic

    _, version = find_yosys()
    key = {
        "verilog_sha256": {
            name: hashlib.sha256(make(spec).encode()).hexdigest() for name, make in PARTS.items()
        },
        "n_in": spec.n_in,
        "max_tracks": spec.max_tracks,
        "dsp": dsp,
        "yosys": version,
    }
    path = Path(cache_dir) / f"{sha256_of_obj(key)[:20]}.json"
    if path.is_file():
        entry = read_json(path)
        if entry.get("key") == key:
            return {**entry["cost"], "cached": str(path)}
    cost = block_cost(spec, dsp=dsp)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "cost": cost})
    return cost


def main() -> None:
    import argparse

    from trigger_ml.logs import configure, stage_logger

    parser = argparse.ArgumentParser(description="Yosys cost of the L1 preprocessing block")
    parser.add_argument("--n-in", type=int, default=32)
    parser.add_argument("--max-tracks", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--dsp", action="store_true", help="let Yosys map products to DSP48E2")
    args = parser.parse_args()
    configure(0)
    cost = block_cost(L1Preprocessing(n_in=args.n_in, max_tracks=args.max_tracks), args.workdir, args.dsp)
    stage_logger("rtl").info(json.dumps(cost, indent=1))


if __name__ == "__main__":
    main()
