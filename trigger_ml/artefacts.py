"""Typed artefacts: ``hls_projects/<model>/report.json`` and the comparison table.

Every report (network or symbolic model) is written with :func:`write_report_json` and read
with :func:`read_report`: both validate it against :class:`Report` (strict: an unknown, missing
or mistyped field is an error naming the file, the field and the fix). Every report carries
the same ``record`` section, the figures a comparison takes (:class:`Record`): the kind label,
the parameters, the physics of record (which sample, its metrics, where its predictions are)
and the fidelity of record (the fraction of jets the firmware reproduces, and by which rule).

The JSON Schemas under ``docs/schema/`` are generated from these models::

    python -m trigger_ml.artefacts docs/schema      (or: make schema)

See docs/artefacts.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import dump_json, read_json, write_json_atomic
from trigger_ml.schema import StrictModel

FORMAT_VERSION = 5
"""Version of what a report holds; a project written by an older version is rebuilt once
(2: the firmware program, its emulator check, the da4ml cost source; 3: physics of record on
the evaluation sample; 4: typed report, ``report_format`` renamed ``format_version``, the
``record`` section; 5: predictions in the FTAG layout (``ftag``) and the project's ``plots``)."""

REPORT_FILE = "report.json"
Number = int | float
"""A figure that is an integer or a float as written (kept as written, not coerced)."""
CostSourceName = Literal["vendor", "rtl", "da4ml", "estimate"]


# --------------------------------------------------------------------------- physics


class PhysicsMetrics(StrictModel):
    """Tagging metrics of one discriminant on one sample (trigger_ml.physics): AUC b vs light,
    light and c rejections at 70 and 77 % b-efficiency (None: no background jet passes), the
    binomial uncertainties of the light rejections where measured."""

    auc_b_vs_light: float
    rej_light_at_70: float | None
    rej_c_at_70: float | None
    rej_light_at_77: float | None
    rej_c_at_77: float | None
    rej_light_at_70_stat: float | None = None
    rej_light_at_77_stat: float | None = None


class CsimCheck(StrictModel):
    n_jets: int
    emulator_vs_csim_exact_fraction: float | None


class Evaluation(StrictModel):
    """The evaluation sample of record and every model kind's physics on it (trigger_ml.evaluation)."""

    path: str
    sha256: str
    seed: int | None  # None: a sample read from a file (``origin`` says which)
    origin: str | None = None  # where the evaluation jets come from, in words
    n_jets: int
    jets_per_class: dict[str, int]
    evaluated_by: str
    evaluated_by_reason: str | None = None
    csim_check: CsimCheck | None = None
    firmware_jets_per_s: float | None = None
    firmware_vs_reference_exact_fraction: float | None = None
    reference: str
    metrics: dict[str, PhysicsMetrics]


# --------------------------------------------------------------------------- fidelity


class EmulatorCheck(StrictModel):
    """The firmware program's emulator against the C simulation on the test split."""

    n_jets: int
    emulator_vs_csim_exact_fraction: float | None
    jets_per_s: float | None = None
    reason: str | None


class NetworkFidelity(StrictModel):
    """The C simulation of a network against its QKeras (or float) model, bit for bit."""

    reference: Literal["qkeras", "float"]
    n_jets: int
    csim_vs_qkeras_exact_fraction: float | None
    csim_vs_reference_exact_fraction: float
    max_abs_logit_diff: float
    first_divergent_layer: dict[str, Any] | None
    permutation_invariant_fraction: float | None
    permutation_n_jets: int | None = None
    permutation_n_jets_with_2plus_tracks: int | None = None
    emulator: EmulatorCheck


class SymbolicFidelity(StrictModel):
    """The C simulation of an expression against the expression in float, per jet."""

    reference: Literal["expression_float"]
    n_jets: int
    max_abs_deviation: float
    fixed_point_step: float
    within_step_fraction: float
    lut_functions: dict[str, Any]
    max_abs_deviation_to_emulated_tables: float | None = None
    within_step_fraction_to_emulated_tables: float | None = None
    # the same rule on the hostile families (trigger_ml.firmware.hostile): measured, not claimed
    hostile: list[dict[str, Any]] | None = None


class BDTFidelity(StrictModel):
    """The C simulation of a BDT against its quantized trees (trigger_ml.bdt), bit for bit, and
    where both depart from the float trees."""

    reference: Literal["quantized_trees"]
    n_jets: int
    csim_vs_reference_exact_fraction: float
    max_abs_logit_diff: float
    hls_csim: dict[str, Any]
    score_range_fits: bool
    vs_float_trees: dict[str, Any]


Fidelity = Annotated[NetworkFidelity | SymbolicFidelity | BDTFidelity, Field(discriminator="reference")]


# --------------------------------------------------------------------------- cost


class MinMax(StrictModel):
    min: Number
    max: Number


class Resources(StrictModel):
    LUT: int
    FF: int
    DSP: int
    BRAM_18K: int
    URAM: int


class CostSection(StrictModel):
    """One source's latency and resources (trigger_ml.cost.sections, docs/cost-model.md)."""

    source: CostSourceName
    tool: str | None
    tool_version: str | None
    part: str | None
    clock_period_ns: float
    estimated_clock_period_ns: float | None
    latency_cycles: MinMax
    latency_ns: MinMax
    initiation_interval: int
    resources: Resources
    available: Resources | None
    logic_synthesis: Resources | None
    per_layer: list[dict[str, Any]] | None
    notes: list[str]


class Da4mlSummary(StrictModel):
    da4ml_version: str
    pipeline_stages: int
    luts: int
    register_bits: int
    multipliers: int
    n_jets_checked: int
    timings_s: dict[str, Number]


class Cost(StrictModel):
    """``best`` of the ``sources`` (vendor > rtl > da4ml > estimate), why a source is
    ``unavailable``, da4ml's summary when it ran."""

    best: CostSection
    sources: dict[CostSourceName, CostSection | None]
    unavailable: dict[str, str] = {}
    da4ml: Da4mlSummary | None = None
    blocks: dict[str, CostSection] | None = None
    """The blocks around the network in ``trigger_top`` (``front_end``, ``decision``), each
    with its own source; a comparison adds them to the network's figures (trigger_ml.decision)."""


# --------------------------------------------------------------------------- the rest


class DataSection(StrictModel):
    path: str
    sha256: str
    jets_per_split: dict[str, int]
    n_truncated_jets: int | None = None


class HlsLayer(StrictModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    class_: str = Field(alias="class")
    types: dict[str, str]


class HlsSection(StrictModel):
    """The HLS settings; ``layers``, ``reuse_factor``… for networks, ``precision`` for expressions."""

    backend: str
    part: str
    clock_period_ns: Number
    io_type: str
    project: str
    strategy: str | None = None
    reuse_factor: int | None = None
    input_type: str | None = None
    output_type: str | None = None
    layers: list[HlsLayer] | None = None
    clock_uncertainty: str | None = None
    precision: str | None = None


class OutputDiff(StrictModel):
    mean: float
    std: float
    p01: float
    p50: float
    p99: float
    max_abs: float


class Teacher(StrictModel):
    """A symbolic model's teacher: its name, hash, latency and what measured it."""

    model: str
    config_sha256: str
    metrics_source: str
    latency_cycles: int | None
    cost_source: str | None


class SymbolicSection(StrictModel):
    """The expressions of a symbolic model and how they were chosen (trigger_ml.symbolic)."""

    backend: dict[str, Any]
    output: str
    structure: Literal["deepsets"] | None = None
    expressions: list[str]
    deployed: list[str]
    readable: list[str]
    phi_produced_by: list[str] | None = None
    phi: list[dict[str, Any]] | None = None
    produced_by: str
    complexity: int
    selection: dict[str, Any]
    validation: dict[str, dict[str, float | None]]
    front_size: int
    settings: dict[str, Any]


# --------------------------------------------------------------------------- the record


class PredictionsRef(StrictModel):
    """Where the physics of record's predictions are: ``path`` relative to the project
    directory, ``dataset`` its name there (``logits_*``: three logits, ``discriminant_*``: D_b)."""

    path: str
    dataset: str


class PhysicsRecord(StrictModel):
    sample: Literal["evaluation", "test split"]
    n_jets: int
    metrics: PhysicsMetrics
    predictions: PredictionsRef


BIT_EXACT = "bit-exact"
WITHIN_STEP = "within one fixed-point step"


class FidelityRecord(StrictModel):
    """``exact_fraction`` of test jets the firmware reproduces by ``rule``: ``bit-exact`` against
    the QKeras or float model, or ``within one fixed-point step`` of the expression in float."""

    exact_fraction: float
    rule: Literal["bit-exact", "within one fixed-point step"]
    reference: str

    def label(self) -> str:
        """The comparison table's ``fidelity_reference``."""
        return self.reference if self.rule == BIT_EXACT else f"{self.reference}, {self.rule}"


class Record(StrictModel):
    """What a comparison takes from any report, under the same names."""

    kind: str
    model_kind: str | None = None  # the registered kind (trigger_ml.kinds.KINDS)
    n_params: int
    physics: PhysicsRecord
    fidelity: FidelityRecord


class FtagSection(StrictModel):
    """The project's predictions in the FTAG ``jets`` layout (trigger_ml.ftag): the tagger name
    of each model kind, and the file of each sample (relative to the project directory)."""

    taggers: dict[str, str]
    files: dict[str, str]


class Report(StrictModel):
    """``hls_projects/<model>/report.json``."""

    format_version: int
    model: str
    description: str
    config_sha256: str
    record: Record
    quantization_kind: Literal["hgq", "qkeras"] | None = None
    training_sha256: str | None = None
    teacher: Teacher | None = None
    run_dir: str
    data: DataSection
    n_params: dict[str, int]
    evaluation: Evaluation | None = None
    metrics: dict[str, PhysicsMetrics]
    fidelity: Fidelity
    output_diff_csim_minus_float: dict[str, OutputDiff] | None = None
    symbolic: SymbolicSection | None = None
    bdt: dict[str, Any] | None = None  # a BDT's settings and trees (trigger_ml.bdt)
    hls: HlsSection
    cost: Cost
    rtl: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None  # the decision stage's summary (trigger_ml.decision)
    ftag: FtagSection | None = None  # networks
    plots: dict[str, str] | None = None  # file -> what it shows (trigger_ml.plots.project)
    timings_s: dict[str, dict[str, Number]] = {}
    """Wall times per stage (left out of a firmware bundle's copy)."""

    @property
    def is_symbolic(self) -> bool:
        return self.symbolic is not None

    def as_json(self) -> dict[str, Any]:
        """The JSON content: the fields as written (unset defaults left out), ``class`` keys aliased."""
        return self.model_dump(exclude_unset=True, by_alias=True)

    def updated(self, **changes: Any) -> Report:
        """A validated copy with top-level fields replaced (JSON content or models)."""
        content = self.as_json()
        for key, value in changes.items():
            content[key] = (
                value.model_dump(exclude_unset=True, by_alias=True)
                if isinstance(value, StrictModel)
                else value
            )
        return Report.model_validate(content)


# --------------------------------------------------------------------------- reading and writing


def rebuild_hint(content: Any, project_dir: Path) -> str:
    """The command that rebuilds the project of a report (symbolic: distill)."""
    name = project_dir.name
    if isinstance(content, dict) and "symbolic" in content:
        teacher = (content.get("teacher") or {}).get("model") or name.rsplit("-", 1)[0]
        return f"rebuild with `trigger-ml distill --force {teacher}`"
    return f"rebuild with `trigger-ml hls --force {name}`"


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    extra = f" ({len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    return f"field `{field}`: {first['msg']}{extra}"


def validate_report(content: Any, where: Path) -> Report:
    """``content`` as a :class:`Report`, or a one-line TriggerMLError naming ``where``, the field and the fix."""
    project_dir = where.parent
    version = content.get("format_version") if isinstance(content, dict) else None
    if version != FORMAT_VERSION:
        said = "has no format_version" if version is None else f"has format_version {version}"
        raise TriggerMLError(
            f"{where} {said}; this trigger-ml reads format_version {FORMAT_VERSION}",
            rebuild_hint(content, project_dir),
        )
    try:
        return Report.model_validate(content)
    except ValidationError as error:
        raise TriggerMLError(f"{where}: {_first_error(error)}", rebuild_hint(content, project_dir)) from None


def read_report(project_dir: Path) -> Report:
    """The validated report of ``project_dir`` (or of a report.json path)."""
    path = Path(project_dir)
    path = path if path.suffix == ".json" else path / REPORT_FILE
    if not path.is_file():
        raise TriggerMLError(
            f"{path} is missing", f"build the project first ({rebuild_hint(None, path.parent)})"
        )
    try:
        content = read_json(path)
    except ValueError as error:
        raise TriggerMLError(f"{path} is not valid JSON ({error})", rebuild_hint(None, path.parent)) from None
    return validate_report(content, path)


def write_report_json(directory: Path, report: Report | dict[str, Any]) -> Report:
    """Validate ``report`` and write it as ``directory/report.json`` (atomically); returns it."""
    path = Path(directory) / REPORT_FILE
    typed = report if isinstance(report, Report) else validate_report(report, path)
    write_json_atomic(path, typed.as_json())
    return typed


def report_text(report: Report) -> str:
    """report.json's text as :func:`write_report_json` writes it (sorted keys, indented)."""
    return dump_json(report.as_json())


# --------------------------------------------------------------------------- the comparison table


class RowPredictions(StrictModel):
    """Where a row's curve comes from: the predictions file and its dataset."""

    path: str
    logits: str


Cell = int | float | str | None
"""A cost or fidelity cell: a figure, None (n/a) or a marker such as ``no firmware``."""


class ComparisonRow(StrictModel):
    """One row of ``comparison/table.json`` (the columns of ``trigger_ml.compare.COLUMNS`` and
    what the table carries beside them)."""

    model: str
    kind: str
    config_sha256: str | None = None
    n_params: int
    n_seeds: int | None = None
    auc_b_vs_light: float | None
    auc_b_vs_light_seed_std: float | None = None
    rej_light_at_70: float | None
    rej_light_at_70_stat: float | None = None
    rej_light_at_70_seed_std: float | None = None
    rej_light_at_77: float | None
    rej_light_at_77_stat: float | None = None
    rej_light_at_77_seed_std: float | None = None
    rej_c_at_70: float | None
    rej_c_at_70_seed_std: float | None = None
    rej_c_at_77: float | None
    rej_c_at_77_seed_std: float | None = None
    rej_light_at_70_stat_seed_std: float | None = None
    rej_light_at_77_stat_seed_std: float | None = None
    physics_sample: str | None = None
    exact_fraction: Cell
    fidelity_reference: str | None = None
    latency_cycles: Cell
    latency_ns: Cell
    initiation_interval: Cell
    LUT: Cell
    FF: Cell
    DSP: Cell
    BRAM_18K: Cell
    cost_source: str
    blocks: str | None = None  # the blocks added to the network's cost (trigger_top), with their sources
    ant_factor: float
    predictions: RowPredictions | None = None
    seed_values: dict[str, list[Cell]] | None = None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ComparisonTable(StrictModel):
    """``comparison/table.json``."""

    columns: list[str]
    cost_source: str
    rows: list[ComparisonRow]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def write_table_json(path: Path, table: ComparisonTable) -> None:
    write_json_atomic(path, table.as_json())


# --------------------------------------------------------------------------- JSON Schemas

SCHEMAS: dict[str, type[StrictModel]] = {
    "report.schema.json": Report,
    "comparison-table.schema.json": ComparisonTable,
}


def _sorted_enums(node: Any) -> Any:
    """``node`` with every ``enum`` sorted: typing caches ``Literal`` by its set of values, so
    their order depends on which module spelled it first."""
    if isinstance(node, dict):
        return {
            key: sorted(value, key=str) if key == "enum" else _sorted_enums(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_sorted_enums(value) for value in node]
    return node


def schema_texts() -> dict[str, str]:
    """File name -> text of each published JSON Schema."""
    return {
        name: json.dumps(_sorted_enums(model.model_json_schema(by_alias=True)), indent=2, sort_keys=True)
        + "\n"
        for name, model in SCHEMAS.items()
    }


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_texts().items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trigger_ml.artefacts DIRECTORY   (writes the JSON Schemas there)")
        return 2
    for path in write_schemas(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
