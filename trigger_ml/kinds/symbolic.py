"""Symbolic kinds: a teacher distilled into closed-form expressions by the ``distill`` stage
(trigger_ml.symbolic), named ``<teacher>-sr`` (flat inputs) or ``<teacher>-srds`` (a symbolic
Deep Set). Their firmware is hls4ml's symbolic backend; its C simulation must equal the
expression in float to within one fixed-point step of the output type."""

from __future__ import annotations

from trigger_ml.kinds.base import ModelKind


class SymbolicFlat(ModelKind):
    name = "symbolic-flat"
    summary = "symbolic expressions of the flat jet inputs"
    firmware_stage = "distill"
    exactness = "C simulation within one fixed-point step of the expression in float (not bit-exact)"
    claims_exactness = False
    structure = "flat"


class SymbolicDeepSet(SymbolicFlat):
    name = "symbolic-deepsets"
    summary = "symbolic Deep Set: φ_k per track, F of their means"
    structure = "deepsets"
