"""A firmware bundle's end-to-end top ``trigger_top`` (front end -> network -> b-tag decision):
the decision's integer arithmetic, the checks of its vectors, running its C simulation on them,
and on a user's own inputs (``verify.py --run-top INPUTS``).

One of the verifier's files (``verify_top.py`` beside ``verify.py`` in every bundle, the same
bytes as ``trigger_ml/firmware/verify_top.py``); see ``verify.py`` for the checks' order. It
must import nothing but the standard library and numpy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _sibling(name: str) -> ModuleType:
    """The verifier file ``name``.py in this file's own directory, loaded by path under a private
    module name (once per directory): never another installed copy of trigger-ml."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    key = f"_trigger_ml_verifier_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"{path.name}: missing beside {Path(__file__).name} (the verifier needs it)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__/ in a bundle
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    finally:
        sys.dont_write_bytecode = writes
    return module


_files = _sibling("verify_files")
BundleError = _files.BundleError
TOP, TOP_INPUTS, TOP_OUTPUTS, TOP_FAMILIES = (
    _files.TOP,
    _files.TOP_INPUTS,
    _files.TOP_OUTPUTS,
    _files.TOP_FAMILIES,
)
CSIM_TIMEOUT_S = _files.CSIM_TIMEOUT_S
WORD_RANGE = (-(2**63), 2**63 - 1)
"""What trigger_top's testbench reads per word: a C++ ``long long``."""
_INTEGER = re.compile(r"[+-]?[0-9]+")


class RunTopError(BundleError):
    """``--run-top`` cannot run: the user's input file is malformed, or the bundle has no trigger_top."""


def decision_outputs(logit_codes: list[int], emulation: dict[str, Any]) -> tuple[int, int]:
    """(score code, tag word) of one jet's logit codes (b, c, light): the decision block's
    integer arithmetic as ``output_spec.json`` states it (the same as
    ``trigger_ml.decision.score.max_form_codes``)."""
    z_b, z_c, z_l = logit_codes
    terms = [
        z + emulation[key] for z, key in ((z_c, "offset_c"), (z_l, "offset_l")) if emulation[key] is not None
    ]
    score = (z_b - max(terms)) >> emulation["shift"]
    tags = sum(1 << k for k, threshold in enumerate(emulation["thresholds"]) if score >= threshold)
    return score, tags


def check_top_vectors(
    root: Path, spec: dict[str, Any], logits: list[list[int]], n_outputs: int
) -> tuple[list[list[int]], list[str]]:
    """Read trigger_top's vectors (the test vectors' jets, then hostile ones) and their families;
    the first ``len(logits)`` rows' logit codes must be ``logits`` (the network's vectors of the
    same jets), every row's score and tag word the decision of its logit codes. Returns the
    expected output rows and each one's family."""
    words = _files.read_rows(root, TOP_INPUTS, spec["n_words"], int)
    rows = _files.read_rows(root, TOP_OUTPUTS, n_outputs + 2, int)
    counts = spec.get("vectors", {})
    n_rows = counts["n_test"] + counts["n_hostile"] if "n_test" in counts else len(logits)
    if len(words) != n_rows or len(rows) != n_rows or len(logits) > n_rows:
        raise BundleError(
            f"{TOP_OUTPUTS}: {len(rows)} rows and {TOP_INPUTS} {len(words)}, expected {n_rows} "
            "(the test vectors, then the hostile vectors)"
        )
    if (root / TOP_FAMILIES).is_file():
        families = _files.read_text(root, TOP_FAMILIES).split()
    else:  # format 3 bundles before front-end families: test rows, then the network's hostile ones
        families = ["test"] * counts.get("n_test", n_rows) + ["hostile"] * (
            n_rows - counts.get("n_test", n_rows)
        )
    if len(families) != n_rows or not all(re.fullmatch(r"[a-z0-9_]+", name) for name in families):
        raise BundleError(f"{TOP_FAMILIES}: expected one family name ([a-z0-9_]+) per vector, {n_rows} lines")
    for i, row in enumerate(rows):
        where = f"{TOP} vector {i} ({TOP_OUTPUTS} line {i + 1})"
        if i < len(logits) and row[:n_outputs] != logits[i]:
            raise BundleError(
                f"{where}: its logit codes are not those of the network's vectors of the same jets"
            )
        check_decision(row, n_outputs, spec["emulation"], where)
    return rows, families


def check_decision(row: list[int], n_outputs: int, emulation: dict[str, Any], where: str) -> None:
    """A row's score code and tag word must be the decision of its logit codes."""
    score, tags = decision_outputs(row[:n_outputs], emulation)
    if row[n_outputs] != score:
        raise BundleError(f"{where}: score code {row[n_outputs]}, the decision of its logits gives {score}")
    if row[n_outputs + 1] != tags:
        raise BundleError(
            f"{where}: tag bits {row[n_outputs + 1]:b}, the decision of its logits gives {tags:b}"
        )


def run_top_csim(project_dir: Path, inputs: Path, n_columns: int) -> list[list[int]]:
    """Run trigger_top's compiled testbench (``trigger_top_csim`` in ``project_dir``) on the
    words in ``inputs``; its output rows (logit codes, score code, tag word)."""
    out = inputs.with_name(inputs.stem + ".out")
    try:
        ran = subprocess.run(
            [str(project_dir / f"{TOP}_csim"), str(inputs), str(out)],
            cwd=project_dir,  # WEIGHTS_DIR is relative: networks that read their weights at run time
            capture_output=True,
            text=True,
            timeout=CSIM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise BundleError(
            f"hls/{TOP}_test.cpp: the C simulation did not finish in {CSIM_TIMEOUT_S} s"
        ) from None
    if ran.returncode != 0 or not out.is_file():
        raise BundleError(
            f"hls/{TOP}_test.cpp: the C simulation of {TOP} exited with status {ran.returncode}"
        )
    rows = []
    for number, line in enumerate(out.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if len(tokens) != n_columns or not all(_INTEGER.fullmatch(token) for token in tokens):
            raise BundleError(f"hls/{TOP}_test.cpp: output line {number} is not {n_columns} integers")
        rows.append([int(token) for token in tokens])
    return rows


def run_top(project_dir: Path, expected: list[list[int]], families: list[str]) -> dict[str, int]:
    """Run trigger_top's compiled testbench on its vectors (``top_inputs.txt`` beside
    ``project_dir``); every output row must equal ``expected``. Returns the number of
    (bit-exact) vectors per family."""
    got = run_top_csim(
        project_dir, project_dir.parent / "top_inputs.txt", len(expected[0]) if expected else 0
    )
    if len(got) != len(expected):
        raise BundleError(
            f"{TOP_INPUTS}: the C simulation of {TOP} gave {len(got)} rows for {len(expected)} vectors"
        )
    for i, (have, want) in enumerate(zip(got, expected, strict=True)):
        if have != want:
            raise BundleError(
                f"{TOP} vector {i} ({families[i]}): C simulation gives {have}, {TOP_OUTPUTS} line {i + 1} "
                f"expects {want} (logit codes, score code, tag word)"
            )
    return {family: families.count(family) for family in dict.fromkeys(families)}


# --- a user's own inputs (--run-top) -----------------------------------------------------------


def read_user_inputs(path: Path, n_words: int) -> list[list[int]]:
    """A user's trigger_top inputs: one jet per line, ``n_words`` integers (the front end's words,
    each a 64-bit signed integer as the testbench reads it). RunTopError names the file, the
    first bad line and the expected count."""
    expected = f"expected {n_words} integers per line (one jet: the front end's words, see {TOP_INPUTS})"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunTopError(f"{path}: no such input file") from None
    except (UnicodeDecodeError, OSError) as error:
        raise RunTopError(f"{path}: not a readable text file ({type(error).__name__}); {expected}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if len(tokens) != n_words:
            raise RunTopError(f"{path}: line {number} has {len(tokens)} values, {expected}")
        bad = next((token for token in tokens if not _INTEGER.fullmatch(token)), None)
        if bad is not None:
            raise RunTopError(f"{path}: line {number} holds {bad[:20]!r}, not an integer; {expected}")
        row = [int(token) for token in tokens]
        if not all(WORD_RANGE[0] <= word <= WORD_RANGE[1] for word in row):
            raise RunTopError(
                f"{path}: line {number} holds a value beyond a 64-bit signed integer; {expected}"
            )
        rows.append(row)
    if not rows:
        raise RunTopError(f"{path}: empty; {expected}")
    return rows


def run_user_inputs(
    project_dir: Path, rows: list[list[int]], decision: dict[str, Any], n_outputs: int, source: Path
) -> list[list[int]]:
    """Run trigger_top's compiled testbench in ``project_dir`` on a user's ``rows`` (read from
    ``source``); each output row (logit codes, score code, tag word) is checked against the
    decision's integer arithmetic of its logits."""
    inputs = project_dir.parent / "user_inputs.txt"
    inputs.write_text(format_rows(rows), encoding="utf-8")
    got = run_top_csim(project_dir, inputs, n_outputs + 2)
    if len(got) != len(rows):
        raise BundleError(f"{source}: the C simulation of {TOP} gave {len(got)} rows for {len(rows)} jets")
    for number, row in enumerate(got, start=1):
        check_decision(row, n_outputs, decision["emulation"], f"{TOP} on {source} line {number}")
    return got


def format_rows(rows: list[list[int]]) -> str:
    """One row per line, integers separated by single spaces (the layout of ``vectors/``)."""
    return "".join(" ".join(str(value) for value in row) + "\n" for row in rows)
