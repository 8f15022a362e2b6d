"""Read AMD/Xilinx vendor reports (C synthesis, Vivado logic synthesis) into a cost section.

The reports live in hls4ml's standard layout under the project's ``hls4ml_prj/``::

    hls4ml_prj/project.tcl
    hls4ml_prj/myproject_prj/vivado_hls.app            (Vitis HLS: hls.app)
    hls4ml_prj/myproject_prj/solution1/syn/report/myproject_csynth.xml
    hls4ml_prj/vivado_synth.rpt                         (only after vsynth=1)

They are read with hls4ml's own ``hls4ml.report.parse_vivado_report`` first. That reader
needs ``project.tcl`` (with both ``set project_name`` and ``set backend``), the ``.app``
file naming the solution and the solution directory itself; a project copied back from a
synthesis machine often lacks one of them (only the ``syn/report`` folder copied, a
hand-run ``vitis_hls`` with another layout, loose report files). When hls4ml's reader
cannot cope, the fallback searches for ``<top>_csynth.xml`` anywhere under the directory
and reads the same XML fields itself; a note in the section says which reader was used.

Projects copied back with only the text reports (``<top>_csynth.rpt`` without its XML, as
public repositories and colleagues often keep them) are read from the text
(:mod:`trigger_ml.cost.vendor_text`). A report that is present but cannot be read (truncated,
garbled), or a ``vivado_synth.rpt`` without any C-synthesis report (no latency), raises a
one-line TriggerMLError naming the file: ``cost_for_project`` records it in the cost section
(``unavailable.vendor`` and a note on the figures shown instead) and says it on the terminal.
An unreadable ``vivado_synth.rpt`` beside a readable C-synthesis report is named in the
section's notes and on the terminal; its figures are left out, never read as zeros.
"""

from __future__ import annotations

import contextlib
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from trigger_ml.cost.sections import make_section
from trigger_ml.cost.vendor_text import check_vivado_synth, parse_csynth_rpt, parse_vivado_synth
from trigger_ml.errors import TriggerMLError
from trigger_ml.logs import stage_logger

logger = stage_logger("cost")

HLS4ML_SUBDIR = "hls4ml_prj"
DEFAULT_TOP = "myproject"
# hls4ml's reader takes the "Block RAM Tile" count (36 Kb tiles) of vivado_synth.rpt;
# a tile holds two 18 Kb blocks.
BRAM18_PER_TILE = 2


def hls4ml_dir(project_dir: Path) -> Path:
    """The hls4ml output dir: ``<project>/hls4ml_prj`` when present, else the directory itself."""
    sub = project_dir / HLS4ML_SUBDIR
    return sub if sub.is_dir() else project_dir


def project_settings(hls_dir: Path) -> dict[str, str]:
    """``set name value`` pairs of hls4ml's ``project.tcl`` (project_name, backend, part, clock_period...)."""
    path = hls_dir / "project.tcl"
    if not path.is_file():
        return {}
    settings = {}
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r'\s*set\s+(\w+)\s+"?([^"\s]*)"?\s*$', line)
        if match:
            settings[match.group(1)] = match.group(2)
    return settings


def _tool_of(app_file: Path | None, rpt_text: str) -> str | None:
    """``vivado_hls`` or ``vitis_hls`` from the project's .app file name or the .rpt banner."""
    if app_file is not None:
        return "vivado_hls" if app_file.name == "vivado_hls.app" else "vitis_hls"
    if "Vivado HLS Report" in rpt_text:
        return "vivado_hls"
    if "Vitis HLS Report" in rpt_text:
        return "vitis_hls"
    return None


def _find_report(hls_dir: Path, name: str, beside: Path | None = None) -> Path | None:
    """A report file: beside ``beside``, at hls4ml's standard path, then the shallowest anywhere below ``hls_dir``."""
    standard = hls_dir / f"{DEFAULT_TOP}_prj" / "solution1" / "syn" / "report" / name
    for path in ((beside.parent / name) if beside else None, standard, hls_dir / name):
        if path is not None and path.is_file():
            return path
    candidates = sorted(hls_dir.rglob(name), key=lambda p: (len(p.parts), str(p)))
    return candidates[0] if candidates else None


def _find_csynth_xml(hls_dir: Path, top: str) -> Path | None:
    """The top function's C-synthesis XML: the standard path first, then anywhere below ``hls_dir``."""
    return _find_report(hls_dir, f"{top}_csynth.xml")


def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path)
    return node.text.strip() if node is not None and node.text else None


def _parse_csynth_xml(xml_path: Path) -> dict[str, str]:
    """The fields hls4ml's ``parse_vivado_report`` takes from ``*_csynth.xml``, same keys."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise TriggerMLError(
            f"{xml_path} is not valid XML ({exc})", "copy the report again or re-run C synthesis"
        ) from exc
    fields = {
        "TargetClockPeriod": "./UserAssignments/TargetClockPeriod",
        "EstimatedClockPeriod": "./PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod",
        "BestLatency": "./PerformanceEstimates/SummaryOfOverallLatency/Best-caseLatency",
        "WorstLatency": "./PerformanceEstimates/SummaryOfOverallLatency/Worst-caseLatency",
        "IntervalMin": "./PerformanceEstimates/SummaryOfOverallLatency/Interval-min",
        "IntervalMax": "./PerformanceEstimates/SummaryOfOverallLatency/Interval-max",
    }
    report = {key: value for key, path in fields.items() if (value := _text(root, path)) is not None}
    for group, prefix in (("Resources", ""), ("AvailableResources", "Available")):
        node = root.find(f"./AreaEstimates/{group}")
        for child in node if node is not None else []:
            # Vivado HLS says DSP48E, Vitis HLS says DSP (hls4ml renames the same way).
            tag = "DSP" if child.tag == "DSP48E" else child.tag
            report[prefix + tag] = (child.text or "").strip()
    return report


def _xml_meta(xml_path: Path) -> dict[str, str | None]:
    root = ET.parse(xml_path).getroot()
    return {"version": _text(root, "./ReportVersion/Version"), "part": _text(root, "./UserAssignments/Part")}


def _csynth(
    hls_dir: Path, top: str, notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any] | None, Path, dict] | None:
    """(C-synthesis fields, hls4ml's Vivado synthesis dict or None, the report read, its meta):
    hls4ml's reader, else the XML, else the text report; None when there is no C-synthesis
    report; raises naming an unreadable one."""
    xml_path = _find_csynth_xml(hls_dir, top)
    rpt_path = _find_report(hls_dir, f"{top}_csynth.rpt", beside=xml_path)
    if xml_path is not None:
        report, why_not = _hls4ml_reports(hls_dir)
        if report is not None:
            notes.append("read with hls4ml.report.parse_vivado_report")
            return report["CSynthesisReport"], report.get("VivadoSynthReport"), xml_path, _xml_meta(xml_path)
        try:
            csynth = _parse_csynth_xml(xml_path)
            notes.append(f"read with trigger_ml's XML fallback: {why_not}")
            return csynth, None, xml_path, _xml_meta(xml_path)
        except TriggerMLError as error:
            if rpt_path is None:
                raise
            notes.append(f"{xml_path.name} unreadable ({error.message}); read {rpt_path.name} instead")
            logger.warning(notes[-1])
    if rpt_path is None:
        return None
    csynth, meta = parse_csynth_rpt(rpt_path)
    notes.append(f"read from the text report {rpt_path.name} (no readable {top}_csynth.xml)")
    return csynth, None, rpt_path, meta


def _logic_synthesis(
    hls_dir: Path, from_hls4ml: dict[str, Any] | None, notes: list[str]
) -> dict[str, Any] | None:
    """Vivado synthesis utilisation (vivado_synth.rpt) in the section's keys, or None; an
    unreadable report is named in ``notes`` and on the terminal, never read as zeros."""
    path = _find_report(hls_dir, "vivado_synth.rpt")
    if path is None:
        return None
    try:
        if from_hls4ml:
            check_vivado_synth(from_hls4ml, path)
        vsynth = from_hls4ml or parse_vivado_synth(path)
    except TriggerMLError as error:
        notes.append(f"{error.message}: logic-synthesis figures left out")
        logger.warning(notes[-1])
        return None
    notes.append("logic_synthesis: Vivado synthesis utilisation (vivado_synth.rpt)")
    return {
        "LUT": vsynth.get("LUT", 0),
        "FF": vsynth.get("FF", 0),
        "DSP": vsynth.get("DSP48E", 0),
        "BRAM_18K": round(BRAM18_PER_TILE * float(vsynth.get("BRAM_18K", 0) or 0)),
        "URAM": vsynth.get("URAM", 0),
    }


def _hls4ml_reports(hls_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """hls4ml's ``parse_vivado_report`` on ``hls_dir``, silenced; (report or None, why not)."""
    from hls4ml.report import parse_vivado_report

    if not (hls_dir / "project.tcl").is_file():
        return None, "no project.tcl"
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            report = parse_vivado_report(str(hls_dir))
    except (
        OSError,
        IndexError,
        KeyError,
        AttributeError,
        ValueError,
        UnboundLocalError,
        ET.ParseError,
    ) as exc:
        return None, f"hls4ml's reader failed ({type(exc).__name__}: {exc})"
    if not report or "CSynthesisReport" not in report:
        said = " ".join(captured.getvalue().split())[:200]
        return None, f"hls4ml's reader found no C-synthesis report ({said or 'no message'})"
    return report, ""


def _read_head(path: Path) -> str:
    return path.read_text(errors="replace")[:2000]


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def read_vendor_cost(project_dir: Path, clock_period_ns: float | None = None) -> dict[str, Any] | None:
    """The vendor cost section of an HLS project dir, or None when it holds no vendor report.
    Raises TriggerMLError naming a report that is present but cannot be read.

    ``project_dir`` may be ``hls_projects/<model>`` (reports under ``hls4ml_prj/``), the
    hls4ml output dir itself, or any directory the reports were copied into.
    ``clock_period_ns`` is the period the design was converted for; the report's own
    target period is what the figures refer to, and a mismatch is noted.
    """
    project_dir = Path(project_dir)
    hls_dir = hls4ml_dir(project_dir)
    settings = project_settings(hls_dir)
    top = settings.get("project_name", DEFAULT_TOP)
    if settings.get("backend", "").lower() == "vivadoaccelerator":
        top += "_axi"

    notes: list[str] = []
    found = _csynth(hls_dir, top, notes)
    if found is None:
        synth = _find_report(hls_dir, "vivado_synth.rpt")
        if synth is None:
            return None
        raise TriggerMLError(
            f"{synth}: a Vivado synthesis report without its C-synthesis report ({top}_csynth.xml or "
            f"{top}_csynth.rpt), which holds the latency",
            "copy <project>/myproject_prj/solution1/syn/report/ back too",
        )
    csynth, vsynth, report_path, meta = found
    app_file = next(
        (path for name in ("vivado_hls.app", "hls.app") for path in sorted(hls_dir.rglob(name))),
        None,
    )
    text_report = report_path if report_path.suffix == ".rpt" else report_path.with_suffix(".rpt")
    banner = meta.get("banner") or (_read_head(text_report) if text_report.is_file() else "")
    tool = _tool_of(app_file, banner)

    target = float(csynth.get("TargetClockPeriod") or clock_period_ns or 0.0)
    if not target:
        raise TriggerMLError(
            f"{report_path} has no target clock period", "pass the clock period the design was built for"
        )
    if clock_period_ns is not None and abs(float(clock_period_ns) - target) > 1e-6:
        notes.append(
            f"report target clock {target:g} ns differs from the configured {float(clock_period_ns):g} ns"
        )

    best, worst = _int_or_none(csynth.get("BestLatency")), _int_or_none(csynth.get("WorstLatency"))
    if best is None or worst is None:
        notes.append(
            f"latency not fixed in the report ({csynth.get('BestLatency')}/{csynth.get('WorstLatency')}); 0 shown"
        )
    interval = _int_or_none(csynth.get("IntervalMax")) or _int_or_none(csynth.get("IntervalMin")) or 0

    logic = _logic_synthesis(hls_dir, vsynth, notes)

    estimated = csynth.get("EstimatedClockPeriod")
    return make_section(
        source="vendor",
        tool=tool,
        tool_version=meta["version"],
        part=meta["part"],
        clock_period_ns=target,
        estimated_clock_period_ns=float(estimated) if estimated else None,
        latency_cycles=(best or 0, worst or 0),
        initiation_interval=interval,
        resources={key: csynth.get(key, 0) for key in ("LUT", "FF", "DSP", "BRAM_18K", "URAM")},
        available={key: csynth.get(f"Available{key}", 0) for key in ("LUT", "FF", "DSP", "BRAM_18K", "URAM")},
        logic_synthesis=logic,
        notes=notes,
    )
