"""Run the vendor's C synthesis (and optionally Vivado logic synthesis) on a project on disk.

hls4ml's ``ModelGraph.build`` needs the in-memory model; a project written earlier only
has its files, so this runs the project's own ``build_prj.tcl`` with the tool in the
hls4ml output dir, exactly as hls4ml's backends do:

- Vivado-backend projects parse their options from the command line:
  ``vivado_hls -f build_prj.tcl "reset=1 csim=0 synth=1 ..."`` (``vitis_hls`` takes the same);
- Vitis-backend projects (hls4ml >= 1.2) source ``build_opt.tcl`` instead, because
  ``vitis-run`` cannot pass arguments to a script: the options are written there and the
  script is run with ``vitis-run --mode hls --tcl build_prj.tcl`` (or ``vitis_hls -f``).

The reports are then read with :func:`trigger_ml.cost.vendor.read_vendor_cost`. The tool runs
through :func:`trigger_ml.tools.run_tool`: a line every minute while it runs, its log kept in
the project, a time limit (``TRIGGER_ML_VENDOR_HLS_TIMEOUT_S``, default 24 h).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from trigger_ml.cost.vendor import hls4ml_dir, project_settings, read_vendor_cost
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import write_text_atomic
from trigger_ml.logs import stage_logger
from trigger_ml.tools import run_tool, timeout_variable, tool_timeout

# Tools in order of preference for each hls4ml backend (None: backend unknown).
TOOLS_BY_BACKEND = {
    "vivado": ("vivado_hls", "vitis_hls"),
    "vitis": ("vitis-run", "vitis_hls"),
    None: ("vitis-run", "vitis_hls", "vivado_hls"),
}
VERSION_FLAGS = {"vivado_hls": "-version", "vitis_hls": "-version", "vitis-run": "--version"}
BUILD_LOG = "vendor_build.log"
VERSION_TIMEOUT_S = 120
TIMEOUT_TOOL = "vendor_hls"
DEFAULT_TIMEOUT_S = 24 * 3600.0
"""C synthesis of a large design takes hours; a day catches a hung tool."""


def _tool_version(tool: str) -> str:
    """``YYYY.N`` from ``<tool> -version``; 'unknown' when the tool does not say."""
    try:
        done = subprocess.run(
            [tool, VERSION_FLAGS[tool]],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"v?(20\d\d\.\d+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def find_vendor_tool(backend: str | None = None) -> tuple[str, str] | None:
    """(tool, version) of the first HLS tool on PATH suited to ``backend`` ('vivado'/'vitis'), or None."""
    key = backend.lower() if backend and backend.lower() in TOOLS_BY_BACKEND else None
    for tool in TOOLS_BY_BACKEND[key]:
        if shutil.which(tool):
            return tool, _tool_version(tool)
    return None


def _options(logic_synthesis: bool) -> dict[str, int]:
    # reset: a project copied from elsewhere may carry a stale solution.
    return {
        "reset": 1,
        "csim": 0,
        "synth": 1,
        "cosim": 0,
        "validation": 0,
        "export": 0,
        "vsynth": int(logic_synthesis),
        "fifo_opt": 0,
    }


def _uses_build_opt(hls_dir: Path) -> bool:
    script = hls_dir / "build_prj.tcl"
    return "build_opt.tcl" in script.read_text(errors="replace")


def _command(tool: str, hls_dir: Path, logic_synthesis: bool) -> list[str]:
    """The command line for ``tool``; writes ``build_opt.tcl`` for Vitis-backend projects."""
    options = _options(logic_synthesis)
    if _uses_build_opt(hls_dir):
        body = "".join(f"    {name:<10} {value}\n" for name, value in options.items())
        write_text_atomic(hls_dir / "build_opt.tcl", "array set opt {\n" + body + "}\n")
        if tool == "vitis-run":
            return ["vitis-run", "--mode", "hls", "--tcl", "build_prj.tcl"]
        return [tool, "-f", "build_prj.tcl"]
    if tool == "vitis-run":
        raise TriggerMLError(
            f"{hls_dir / 'build_prj.tcl'} takes its options on the command line, which vitis-run cannot pass",
            "put vivado_hls or vitis_hls on PATH, or convert the model with the Vitis backend",
        )
    return [tool, "-f", "build_prj.tcl", " ".join(f"{name}={value}" for name, value in options.items())]


def _missing_tool_error(project_dir: Path, hls_dir: Path) -> TriggerMLError:
    if (hls_dir / "build_prj.tcl").is_file() and _uses_build_opt(hls_dir):
        how = "set synth 1 (csim/cosim 0) in build_opt.tcl and run `vitis-run --mode hls --tcl build_prj.tcl`"
    else:
        how = 'run `vitis_hls -f build_prj.tcl "csim=0 synth=1 cosim=0 validation=0"` (or vivado_hls)'
    return TriggerMLError(
        "vitis_hls/vivado_hls not found on PATH: C synthesis skipped",
        f"copy {project_dir} to a machine with Vitis HLS and {how} in {hls_dir.name}/ there, "
        f"then copy the project back; `trigger-ml cost {project_dir}` will read the reports",
    )


def run_vendor_synthesis(project_dir: Path, logic_synthesis: bool = False) -> dict[str, Any]:
    """Run C synthesis (and Vivado synthesis if ``logic_synthesis``) and return the vendor cost section.

    Raises TriggerMLError when no HLS tool is on PATH (one line: what is missing and how
    to run the build elsewhere), when the tool fails, or when it leaves no report.
    The tool's output goes to ``hls4ml_prj/vendor_build.log``.
    """
    project_dir = Path(project_dir)
    hls_dir = hls4ml_dir(project_dir)
    if not (hls_dir / "build_prj.tcl").is_file():
        raise TriggerMLError(
            f"{hls_dir} has no build_prj.tcl",
            "pass a directory written by the convert stage (hls_projects/<model>)",
        )
    settings = project_settings(hls_dir)
    found = find_vendor_tool(settings.get("backend"))
    if found is None:
        raise _missing_tool_error(project_dir, hls_dir)
    tool, _version = found
    command = _command(tool, hls_dir, logic_synthesis)
    ran = run_tool(
        command,
        name=f"{tool} ({project_dir.name})",
        log_path=hls_dir / BUILD_LOG,
        timeout_s=tool_timeout(TIMEOUT_TOOL, DEFAULT_TIMEOUT_S),
        timeout_variable=timeout_variable(TIMEOUT_TOOL),
        logger=stage_logger("cost"),
        heartbeat_s=60.0,
        cwd=hls_dir,
    )
    log_path = ran.log_path
    clock = settings.get("clock_period")
    section = read_vendor_cost(project_dir, float(clock) if clock else None)
    if section is None:
        raise TriggerMLError(
            f"{tool} finished but wrote no C-synthesis report under {hls_dir}", f"see {log_path}"
        )
    return section
