"""``trigger-ml verify``: the bundle's own verifier (``verify.py``, the same file as
:mod:`trigger_ml.firmware.verifier`), with its failures turned into one-line TriggerMLErrors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.firmware import verifier
from trigger_ml.logs import stage_logger

logger = stage_logger("verify")


@dataclass(frozen=True)
class VerifyResult:
    """A bundle that passed every check."""

    bundle: Path
    firmware_id: str
    n_files: int
    n_vectors: int
    working_points: tuple[dict[str, Any], ...]
    seconds: float
    hostile: tuple[dict[str, Any], ...] = ()
    """Per hostile family (trigger_ml.firmware.hostile): ``family``, ``n_vectors``, ``n_exact``
    (all of them: verification stops at the first inexact one); empty for a format-1 bundle."""
    n_top_vectors: int = 0
    """Vectors trigger_top (front end -> network -> decision) ran bit-exact (0: no decision block)."""

    @property
    def n_hostile(self) -> int:
        return sum(row["n_vectors"] for row in self.hostile)

    def summary(self) -> str:
        """One line for the command line."""
        hostile = (
            f"{self.n_hostile} hostile vectors in {len(self.hostile)} families bit-exact"
            if self.hostile
            else "no hostile vectors (bundle format 1)"
        )
        return (
            f"PASS firmware {self.firmware_id} ({self.n_files} files, {self.n_vectors} vectors bit-exact, "
            f"{hostile}, "
            + (f"trigger_top logits, score and tag bits on {self.n_top_vectors} vectors bit-exact, " if self.n_top_vectors else "")
            + f"{len(self.working_points)} working points) in {self.seconds:.1f} s"
        )


def verify_bundle(path: Path) -> VerifyResult:
    """Verify a bundle directory or ``.tar.gz`` (see ``verify.py``); raise TriggerMLError naming
    the first bad file or test vector."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist", "pass a firmware/<model>-<id> directory or its .tar.gz")
    try:
        result = verifier.verify(path, log=logger.info)
    except verifier.BundleError as error:
        problem = str(error).removeprefix(f"{path.name}: ")  # the path is named once
        fix = (
            "verify it with the verify.py inside it (`python3 verify.py`) or a trigger-ml that knows the format"
            if "bundle format" in problem
            else "the bundle was modified or damaged: rebuild it with `trigger-ml firmware MODEL`"
        )
        raise TriggerMLError(f"{path}: {problem}", fix) from None
    return VerifyResult(
        bundle=path,
        firmware_id=result["firmware_id"],
        n_files=result["n_files"],
        n_vectors=result["n_vectors"],
        working_points=tuple(result["working_points"]),
        seconds=result["seconds"],
        hostile=tuple(result["hostile"]),
        n_top_vectors=result.get("n_top_vectors", 0),
    )
