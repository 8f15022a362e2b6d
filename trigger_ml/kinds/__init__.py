"""Model kinds as plugins: every kind is one module, registered here and nowhere else.

=====================  ==============================================  ============
kind                   what                                            firmware by
=====================  ==============================================  ============
``qkeras-deepsets``    QKeras Deep Set (DIPS style)                    ``hls``
``qkeras-dense``       QKeras dense tagger on flat inputs              ``hls``
``hgq``                HGQ (learned bit widths), Deep Set or dense     ``hls``
``ptq``                float network, post-training quantized          ``hls``
``float-reference``    float network, physics only                     none
``symbolic-flat``      expressions of the flat inputs (``-sr``)        ``distill``
``symbolic-deepsets``  symbolic Deep Set (``-srds``)                   ``distill``
``user-keras``         a user's QKeras model, imported (``--keras``)    ``hls``
``bdt``                gradient-boosted trees, conifer firmware        ``hls``
=====================  ==============================================  ============

A network configuration belongs to exactly one network kind (``kind_of``); a new kind is a
module with a :class:`~trigger_ml.kinds.base.ModelKind` subclass added to :data:`KINDS`, and
gets its tests by declaring fixtures in a subclass of the contract test base
(``tests/kind_contract.py``).
"""

from __future__ import annotations

from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.kinds.base import FLOAT, QUANTIZED, ModelKind, NetworkKind, TrainedKind
from trigger_ml.kinds.bdt import BDT
from trigger_ml.kinds.hgq import HGQ
from trigger_ml.kinds.ptq import FloatReference, PostTrainingQuantized
from trigger_ml.kinds.qkeras import QKerasDeepSet, QKerasDense
from trigger_ml.kinds.symbolic import SymbolicDeepSet, SymbolicFlat
from trigger_ml.kinds.user_keras import UserKeras

__all__ = ["FLOAT", "KINDS", "QUANTIZED", "ModelKind", "NetworkKind", "TrainedKind", "kind_named", "kind_of"]

KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        QKerasDeepSet(),
        QKerasDense(),
        HGQ(),
        PostTrainingQuantized(),
        FloatReference(),
        SymbolicFlat(),
        SymbolicDeepSet(),
        UserKeras(),
        BDT(),
    )
}
"""Every model kind by name: the one place a kind is registered."""


def kind_of(config: ModelConfig) -> TrainedKind:
    """The kind of the model ``config`` describes (exactly one claims it)."""
    claimed = [kind for kind in KINDS.values() if isinstance(kind, TrainedKind) and kind.claims(config)]
    if len(claimed) != 1:
        names = ", ".join(kind.name for kind in claimed) or "none"
        raise TriggerMLError(f"{config.name}: {len(claimed)} model kinds claim it ({names})", "report this")
    return claimed[0]


def kind_named(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError:
        raise TriggerMLError(f"unknown model kind {name!r}", f"kinds: {', '.join(KINDS)}") from None
