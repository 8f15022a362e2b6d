"""Firmware hand-off bundles: build them from a finished HLS project, verify them anywhere.

See docs/firmware-bundle.md. ``build_bundle`` writes ``firmware/<model>-<id>/`` and its
``.tar.gz``; ``verify_bundle`` runs the verifier every bundle carries as ``verify.py``.
"""

from trigger_ml.firmware.bundle import DEFAULT_N_VECTORS, build_bundle
from trigger_ml.firmware.verification import VerifyResult, verify_bundle

__all__ = ["DEFAULT_N_VECTORS", "VerifyResult", "build_bundle", "verify_bundle"]
