"""``trigger-ml verify``: the bundle's own verifier (``verify.py`` and its two sibling files, the
same files as :mod:`trigger_ml.firmware.verifier`, ``verify_files``, ``verify_top``), with its
failures turned into one-line TriggerMLErrors."""

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
    top_outputs: tuple[tuple[int, ...], ...] | None = None
    """With ``top_inputs``: trigger_top's C simulation of each of the user's jets (logit codes,
    score code, tag word)."""

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
            + (
                f"trigger_top logits, score and tag bits on {self.n_top_vectors} vectors bit-exact, "
                if self.n_top_vectors
                else ""
            )
            + f"{len(self.working_points)} working points) in {self.seconds:.1f} s"
        )


def verify_bundle(path: Path, top_inputs: Path | None = None) -> VerifyResult:
    """Verify a bundle directory or ``.tar.gz`` (see ``verify.py``); raise TriggerMLError naming
    the first bad file or test vector. With ``top_inputs`` (``--run-top``: one jet per line, the
    front end's integer words), also run those jets through trigger_top's C simulation once
    every check has passed; a malformed file or a bundle without trigger_top is a UsageError
    raised before anything is compiled."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist", "pass a firmware/<model>-<id> directory or its .tar.gz")
    try:
        result = verifier.verify(path, log=logger.info, top_inputs=top_inputs)
    except verifier.RunTopError as error:
        fix = (
            "use the bundle of a model with a decision block (bundle format 3)"
            if "this bundle has none" in str(error)
            else f"correct that line ({verifier.INPUT_SPEC} trigger_top gives the words' layout)"
            if ": line " in str(error)
            else f"give a file of one jet per line (the bundle's {verifier.TOP_INPUTS} is an example)"
        )
        raise UsageError(str(error), fix) from None
    except verifier.BundleError as error:
        problem = str(error).removeprefix(f"{path.name}: ")  # the path is named once
        fix = (
            "verify it with the verify.py inside it (`python3 verify.py`) or a trigger-ml that knows the format"
            if "bundle format" in problem
            else "the bundle was modified or damaged: rebuild it with `trigger-ml firmware MODEL`"
        )
        raise TriggerMLError(f"{path}: {problem}", fix) from None
    outputs = result.get("top_outputs")
    return VerifyResult(
        bundle=path,
        firmware_id=result["firmware_id"],
        n_files=result["n_files"],
        n_vectors=result["n_vectors"],
        working_points=tuple(result["working_points"]),
        seconds=result["seconds"],
        hostile=tuple(result["hostile"]),
        n_top_vectors=result.get("n_top_vectors", 0),
        top_outputs=None if outputs is None else tuple(tuple(row) for row in outputs),
    )
