"""The cost section: one flat, JSON-serialisable dict per source of cost figures.

Every producer (``estimate.py``, ``vendor.py``, ``yosys.py``, ``da4ml_cost.py``) returns the same
shape, documented in ``docs/cost-model.md``::

    {"source": "estimate" | "da4ml" | "vendor" | "rtl", "tool": str | None, "tool_version": str | None,
     "part": str | None, "clock_period_ns": float, "estimated_clock_period_ns": float | None,
     "latency_cycles": {"min": int, "max": int}, "latency_ns": {"min": float, "max": float},
     "initiation_interval": int,
     "resources": {"LUT": int, "FF": int, "DSP": int, "BRAM_18K": int, "URAM": int},
     "available": {same keys} | None, "logic_synthesis": {same keys} | None,
     "per_layer": [{"name", "class", "latency_cycles", "initiation_interval",
                    "LUT", "FF", "DSP", "BRAM_18K", "notes"}] | None,
     "notes": [str]}

``best_cost`` picks the most trustworthy section (vendor > rtl > da4ml > estimate) and
``cost_for_project`` gathers the sections of one HLS project directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import read_json

# Most trustworthy first: the vendor's own report, an RTL-level count, da4ml's cost model of
# the adder graph (validated against post-route results), then our analytic model.
SOURCE_PRIORITY = ("vendor", "rtl", "da4ml", "estimate")
RESOURCE_KEYS = ("LUT", "FF", "DSP", "BRAM_18K", "URAM")
SECTION_KEYS = (
    "source",
    "tool",
    "tool_version",
    "part",
    "clock_period_ns",
    "estimated_clock_period_ns",
    "latency_cycles",
    "latency_ns",
    "initiation_interval",
    "resources",
    "available",
    "logic_synthesis",
    "per_layer",
    "notes",
)


def resource_dict(values: dict[str, Any] | None = None) -> dict[str, int]:
    """A resources dict with every key of ``RESOURCE_KEYS``; missing keys count as 0."""
    values = values or {}
    return {key: int(values.get(key, 0) or 0) for key in RESOURCE_KEYS}


def make_section(
    *,
    source: str,
    clock_period_ns: float,
    latency_cycles: tuple[int, int],
    initiation_interval: int,
    resources: dict[str, Any],
    tool: str | None = None,
    tool_version: str | None = None,
    part: str | None = None,
    estimated_clock_period_ns: float | None = None,
    available: dict[str, Any] | None = None,
    logic_synthesis: dict[str, Any] | None = None,
    per_layer: list[dict[str, Any]] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Build a cost section; ``latency_ns`` is derived from the cycles and the clock period."""
    if source not in SOURCE_PRIORITY:
        raise ValueError(f"unknown cost source {source!r}")
    lat_min, lat_max = int(latency_cycles[0]), int(latency_cycles[1])
    period = float(clock_period_ns)
    return {
        "source": source,
        "tool": tool,
        "tool_version": tool_version,
        "part": part,
        "clock_period_ns": period,
        "estimated_clock_period_ns": estimated_clock_period_ns,
        "latency_cycles": {"min": lat_min, "max": lat_max},
        "latency_ns": {"min": round(lat_min * period, 6), "max": round(lat_max * period, 6)},
        "initiation_interval": int(initiation_interval),
        "resources": resource_dict(resources),
        "available": resource_dict(available) if available is not None else None,
        "logic_synthesis": resource_dict(logic_synthesis) if logic_synthesis is not None else None,
        "per_layer": per_layer,
        "notes": list(notes or []),
    }


def check_section(section: Any, where: str) -> dict[str, Any]:
    """Return ``section`` if it is a valid cost section (trigger_ml.artefacts.CostSection), else
    raise a TriggerMLError naming ``where`` and the field."""
    from pydantic import ValidationError

    from trigger_ml.artefacts import CostSection

    try:
        CostSection.model_validate(section)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise TriggerMLError(
            f"{where}: cost section {('field `' + field + '`: ') if field else ''}{first['msg']}",
            "re-run the stage that wrote it",
        ) from None
    return section


def best_cost(sections: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The most trustworthy of ``sections`` (vendor > rtl > da4ml > estimate); ``None`` entries are skipped."""
    present = [section for section in sections if section is not None]
    if not present:
        raise TriggerMLError(
            "no cost figures: neither vendor reports nor a stored estimate",
            "convert the model first (it stores an estimate in report.json) or run C synthesis",
        )
    return min(present, key=lambda section: SOURCE_PRIORITY.index(section["source"]))


def _fmt_used(used: int, available: int | None) -> str:
    if available:
        return f"{used} / {available} ({100.0 * used / available:.1f} %)"
    return str(used)


def format_cost_table(section: dict[str, Any]) -> str:
    """Markdown rendering of one cost section (used in report.md and by ``trigger-ml cost``)."""
    tool = section["tool"] or "trigger_ml analytic model"
    if section["tool_version"]:
        tool += f" {section['tool_version']}"
    lat_c, lat_ns = section["latency_cycles"], section["latency_ns"]
    lines = [
        f"**Cost** (source: {section['source']}, {tool}"
        + (f", part {section['part']}" if section["part"] else "")
        + ")",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| latency (cycles) | {lat_c['min']}"
        + (f" - {lat_c['max']}" if lat_c["max"] != lat_c["min"] else "")
        + " |",
        f"| latency (ns) | {lat_ns['min']:g}"
        + (f" - {lat_ns['max']:g}" if lat_ns["max"] != lat_ns["min"] else "")
        + " |",
        f"| initiation interval (cycles) | {section['initiation_interval']} |",
        f"| clock period target (ns) | {section['clock_period_ns']:g} |",
    ]
    if section["estimated_clock_period_ns"] is not None:
        lines.append(
            f"| clock period estimated by the tool (ns) | {section['estimated_clock_period_ns']:g} |"
        )
    available = section["available"] or {}
    for key in RESOURCE_KEYS:
        lines.append(f"| {key} | {_fmt_used(section['resources'][key], available.get(key))} |")
    if section["logic_synthesis"] is not None:
        synth = section["logic_synthesis"]
        lines.append(
            "| after logic synthesis | " + ", ".join(f"{key} {synth[key]}" for key in RESOURCE_KEYS) + " |"
        )
    if section["per_layer"]:
        lines += [
            "",
            "| layer | class | latency (cycles) | II | LUT | FF | DSP | BRAM_18K |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for layer in section["per_layer"]:
            lines.append(
                f"| {layer['name']} | {layer['class']} | {layer['latency_cycles']} | {layer['initiation_interval']}"
                f" | {layer['LUT']} | {layer['FF']} | {layer['DSP']} | {layer['BRAM_18K']} |"
            )
    if section["notes"]:
        lines.append("")
        lines += [f"- {note}" for note in section["notes"]]
    return "\n".join(lines) + "\n"


def _stored_cost(project_dir: Path) -> tuple[Path, dict[str, Any]]:
    """``<project_dir>/report.json`` and its ``cost`` section as stored (empty if none). Only the
    cost section is read (and each source validated as a trigger_ml.artefacts.CostSection):
    ``trigger-ml cost`` also reads directories holding nothing but vendor reports and a cost."""
    report_path = Path(project_dir) / "report.json"
    if not report_path.is_file():
        return report_path, {}
    try:
        report = read_json(report_path)
    except (OSError, ValueError) as exc:
        raise TriggerMLError(f"{report_path} is unreadable ({exc})", "re-run the convert stage") from exc
    return report_path, ((report.get("cost") or {}) if isinstance(report, dict) else {})


def stored_sections(project_dir: Path) -> dict[str, dict[str, Any]]:
    """Cost sections stored in ``<project_dir>/report.json`` under ``cost`` -> ``sources``."""
    report_path, cost = _stored_cost(project_dir)
    sources = cost.get("sources") or {}
    return {
        name: check_section(section, f"{report_path} cost.sources.{name}")
        for name, section in sources.items()
        if section is not None and name in SOURCE_PRIORITY
    }


def cost_for_project(project_dir: Path) -> dict[str, Any]:
    """All cost figures for one HLS project dir and the best of them.

    Vendor reports are read fresh from disk (they may have been copied back after a
    synthesis run elsewhere); the estimate (and an RTL count, if any) come from
    ``report.json``. Returns ``{"best": section, "sources": {"vendor": ..., "estimate": ..., ...},
    "unavailable": {...}}``. A vendor report that is present but cannot be read is never
    silently replaced: ``unavailable["vendor"]`` names it, the best section carries a note
    saying which figures are shown instead, and a warning says it on the terminal.
    """
    from trigger_ml.cost.vendor import read_vendor_cost
    from trigger_ml.logs import stage_logger

    project_dir = Path(project_dir)
    if not project_dir.is_dir():
        raise TriggerMLError(f"{project_dir} is not a directory", "pass an hls_projects/<model> directory")
    stored = stored_sections(project_dir)
    unavailable = stored_unavailable(project_dir)
    clock = next(iter(stored.values()))["clock_period_ns"] if stored else None
    try:
        vendor = read_vendor_cost(project_dir, clock)
    except TriggerMLError as error:
        vendor = None
        unavailable["vendor"] = f"present but unreadable: {error.message}"
    sources: dict[str, dict[str, Any] | None] = {"vendor": vendor, "estimate": stored.get("estimate")}
    for name in ("rtl", "da4ml"):
        if name in stored:
            sources[name] = stored[name]
    best = best_cost(list(sources.values()))
    if vendor is None and "vendor" in unavailable and unavailable["vendor"].startswith("present but"):
        note = f"vendor report {unavailable['vendor']}; these figures are from {best['source']} instead"
        best = {**best, "notes": [*best["notes"], note]}
        stage_logger("cost").warning(f"{project_dir}: {note}")
    return {"best": best, "sources": sources, "unavailable": unavailable}


def stored_blocks(project_dir: Path) -> dict[str, dict[str, Any]]:
    """Cost sections of the blocks around the network (``cost.blocks``: the front end and the
    decision of ``trigger_top``, trigger_ml.decision), empty when the project has none."""
    report_path, cost = _stored_cost(project_dir)
    return {
        name: check_section(section, f"{report_path} cost.blocks.{name}")
        for name, section in (cost.get("blocks") or {}).items()
    }


def add_blocks(section: dict[str, Any], blocks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The network's figures with every block's added (latency in cycles and ns, resources):
    what ``trigger_top`` costs, the blocks being in series after the network."""
    total = {**section, "resources": dict(section["resources"])}
    for block in blocks.values():
        total["latency_cycles"] = {
            k: total["latency_cycles"][k] + block["latency_cycles"][k] for k in ("min", "max")
        }
        total["latency_ns"] = {k: total["latency_ns"][k] + block["latency_ns"][k] for k in ("min", "max")}
        for key in RESOURCE_KEYS:
            total["resources"][key] += block["resources"][key]
    return total


def stored_unavailable(project_dir: Path) -> dict[str, str]:
    """Why a cost source has no section in ``<project_dir>/report.json`` (``cost.unavailable``)."""
    return dict(_stored_cost(project_dir)[1].get("unavailable") or {})
