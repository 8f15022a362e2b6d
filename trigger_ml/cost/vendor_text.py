"""The vendor tools' text reports, for projects copied back without the XML: ``<top>_csynth.rpt``
(Vivado HLS and Vitis HLS C synthesis) and ``vivado_synth.rpt`` (Vivado ``report_utilization``).

hls4ml's readers (``hls4ml.report``) only print the text C-synthesis report and read
``vivado_synth.rpt`` only inside a complete project; these readers take the same fields from
the text, with the same keys as :func:`trigger_ml.cost.vendor._parse_csynth_xml` and hls4ml's
``VivadoSynthReport``. A report that is present but lacks what it must hold (truncated,
garbled, not a report) raises a one-line :class:`~trigger_ml.errors.TriggerMLError` naming the
file and what is missing: never zeros.
"""

from __future__ import annotations

import re
from pathlib import Path

from trigger_ml.errors import TriggerMLError

_FIX = "copy the report back again from the synthesis machine, or re-run the vendor tool"
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TriggerMLError(f"{path}: unreadable vendor report ({error.strerror})", _FIX) from None
    if b"\x00" in data:
        raise TriggerMLError(f"{path}: unreadable vendor report (binary data, not a text report)", _FIX)
    return data.decode("utf-8", errors="replace")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _section(text: str, title: str) -> list[str]:
    """The lines of the ``== <title>`` section (up to the next ``==`` banner)."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if line.startswith("== ") and title in line:
            rest = lines[start + 1 :]
            end = next((i for i, item in enumerate(rest) if item.startswith("== ")), len(rest))
            return rest[:end]
    return []


def _missing(path: Path, what: str) -> TriggerMLError:
    return TriggerMLError(f"{path}: unreadable C-synthesis report (no {what}; truncated or garbled?)", _FIX)


def _ns(cell: str) -> str:
    return cell.replace("ns", "").strip()


def parse_csynth_rpt(path: Path) -> tuple[dict[str, str], dict[str, str | None]]:
    """(fields, meta) of a ``*_csynth.rpt``: the keys of the XML reader (TargetClockPeriod,
    EstimatedClockPeriod, Best/WorstLatency, IntervalMin/Max, LUT, FF, DSP, BRAM_18K, URAM and
    their ``Available`` counts) and ``version``, ``part``, ``banner`` (the report's first title)."""
    text = _read(path)
    banner = re.search(r"^== (Vivado|Vitis) HLS Report for '([^']*)'", text, re.MULTILINE)
    if banner is None:
        raise TriggerMLError(
            f"{path}: not a C-synthesis report (no '== Vivado HLS Report' or '== Vitis HLS Report' banner)",
            _FIX,
        )
    version = re.search(r"^\* Version:\s+(\S+)", text, re.MULTILINE)
    device = re.search(r"^\* Target device:\s+(\S+)", text, re.MULTILINE)
    fields: dict[str, str] = {}

    performance = _section(text, "Performance Estimates")
    clock = next((_cells(line) for line in performance if line.strip().startswith("|ap_clk")), None)
    if clock is None or len(clock) < 3 or not _NUMBER.match(_ns(clock[1])):
        raise _missing(path, "clock summary row '|ap_clk | target | estimated |'")
    fields["TargetClockPeriod"], fields["EstimatedClockPeriod"] = _ns(clock[1]), _ns(clock[2])
    latency_at = next((i for i, line in enumerate(performance) if line.strip().startswith("+ Latency")), None)
    rows = [_cells(line) for line in performance[latency_at or 0 :] if line.strip().startswith("|")]
    summary = next((row for row in rows if len(row) >= 6 and re.match(r"^(\d+|\?)$", row[0])), None)
    if latency_at is None or summary is None:
        raise _missing(path, "latency summary row")
    keys = ("BestLatency", "WorstLatency", None, None, "IntervalMin", "IntervalMax")
    fields.update({key: value for key, value in zip(keys, summary, strict=False) if key})

    utilisation = [line for line in _section(text, "Utilization Estimates") if line.strip().startswith("|")]
    header = next((_cells(line) for line in utilisation if "BRAM_18K" in line and "Name" in line), None)
    total = next((_cells(line) for line in utilisation if _cells(line)[0] == "Total"), None)
    available = next((_cells(line) for line in utilisation if _cells(line)[0] == "Available"), None)
    if header is None or total is None or len(total) != len(header):
        raise _missing(path, "utilization summary with a Total row")
    for index, name in enumerate(header[1:], start=1):
        key = "DSP" if name.startswith("DSP") else name
        if not _NUMBER.match(total[index]):
            raise _missing(path, f"number in the Total row's {name} column")
        fields[key] = total[index]
        if available is not None and len(available) == len(header):
            fields[f"Available{key}"] = available[index]
    meta = {
        "version": version.group(1) if version else None,
        "part": device.group(1) if device else None,
        "banner": f"{banner.group(1)} HLS Report",
    }
    return fields, meta


def parse_vivado_synth(path: Path) -> dict[str, str]:
    """``vivado_synth.rpt`` (``report_utilization``): LUT, FF, BRAM_18K (36 Kb tiles, as hls4ml
    reads them), URAM, DSP48E, in hls4ml's keys and sections. Raises naming the file when a
    row of the first three sections is missing (a truncated or garbled report)."""
    text = _read(path)
    report: dict[str, str] = {}
    section = 0
    for line in text.splitlines():
        match = re.match(r"^(\d)\.", line)
        if match:
            section = int(match.group(1))
        if "|" not in line:
            continue
        cells = line.split("|")
        if len(cells) < 3:
            continue
        value = cells[2].strip()
        if section == 1 and ("CLB LUTs" in line or "Slice LUTs" in line):
            report["LUT"] = value
        elif section == 1 and ("CLB Registers" in line or "Slice Registers" in line):
            report["FF"] = value
        elif section == 2 and "Block RAM Tile" in line:
            report["BRAM_18K"] = value
        elif section == 2 and "URAM" in line:
            report["URAM"] = value
        elif section == 3 and "DSPs" in line:
            report["DSP48E"] = value
    check_vivado_synth(report, path)
    return report


def check_vivado_synth(report: dict[str, str] | None, path: Path) -> None:
    """A Vivado synthesis report must give numbers for LUTs, registers, block RAM and DSPs,
    whoever read it (hls4ml's reader or :func:`parse_vivado_synth`)."""
    required = ("LUT", "FF", "BRAM_18K", "DSP48E")  # sections 1-3 of report_utilization
    bad = [key for key in required if not _NUMBER.match(str((report or {}).get(key, "")))]
    bad += [key for key, value in (report or {}).items() if not _NUMBER.match(str(value))]
    if bad:
        raise TriggerMLError(
            f"{path}: unreadable Vivado synthesis report (no number for {bad[0]}; truncated or garbled?)",
            _FIX,
        )
