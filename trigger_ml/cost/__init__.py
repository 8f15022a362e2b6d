"""Cost stage: latency and FPGA resources of an HLS project (docs/cost-model.md).

``estimate_cost`` models a converted hls4ml ModelGraph, ``read_vendor_cost`` reads the
vendor's reports, ``run_vendor_synthesis`` runs the vendor tool when it is installed and
``cost_for_project`` gathers them and picks the best (vendor > rtl > da4ml > estimate); ``da4ml_cost`` is da4ml's cost model of the traced firmware.
The ``rtl`` section is Yosys' cell count (``yosys``) of the Verilog the RTL stage
(:mod:`trigger_ml.rtl`) writes.
"""

from trigger_ml.cost.estimate import estimate_cost
from trigger_ml.cost.sections import best_cost, cost_for_project, format_cost_table, make_section
from trigger_ml.cost.synth import find_vendor_tool, run_vendor_synthesis
from trigger_ml.cost.vendor import read_vendor_cost

__all__ = [
    "best_cost",
    "cost_for_project",
    "estimate_cost",
    "find_vendor_tool",
    "format_cost_table",
    "make_section",
    "read_vendor_cost",
    "run_vendor_synthesis",
]
