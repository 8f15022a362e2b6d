#!/usr/bin/env python3
"""Verify a trigger-ml firmware bundle with nothing but Python 3, numpy and g++.

Usage::

    python3 verify.py [BUNDLE] [--keep-workdir]

BUNDLE is a bundle directory or its ``.tar.gz``; the default is the directory holding this
file. The checks run in this order and stop at the first failure, which is printed as one
line naming the bad file or test vector (exit status 1; 0 when everything passes):

1. ``BUILD_INFO.json`` is intact (canonical layout, its own checksum) and names this format;
2. ``MANIFEST`` hashes to the firmware identity recorded in ``BUILD_INFO.json``;
3. every file listed in ``MANIFEST`` exists and has its SHA-256; no file is unlisted;
4. the test vectors agree with each other (floats, integer codes, packed input words), and
   so do the hostile vectors (the port's own conversion of each value gives its code);
5. the C simulation is compiled from ``hls/`` alone with g++ in a temporary directory,
   the project's own testbench runs every test vector, and each output must equal the
   expected output exactly (compared as exact fractions);
6. the testbench runs every hostile vector (saturating, beyond-range and tie values, random
   codes, empty and full jets, one extreme track), reported per family; each output must
   equal the expected output exactly;
7. the working-point thresholds give, on the vectors, the b-jet efficiency they give on
   the whole test split, within the statistical tolerance written in the output spec;
8. (format 3, a model with a decision block) the end-to-end top ``trigger_top`` (front end ->
   network -> b-tag decision): every expected score code and tag word is the decision's
   integer arithmetic (``output_spec.json`` ``decision.emulation``) of its expected logit
   codes, which are those of the network's vectors of the same jets (the test vectors; the
   hostile vectors too when the front end passes features through; a track-word front end
   has hostile words of its own); ``trigger_top``'s testbench, linked with the same compiled
   network, runs every vector, and its logits, score and tag bits must equal the expected
   ones exactly, reported per family.

This file is ``trigger_ml/firmware/verifier.py`` of the trigger-ml package, copied into every
bundle unchanged; ``trigger-ml verify`` runs the same code. It must import nothing but the
standard library and numpy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

BUNDLE_FORMAT = "trigger-ml-firmware-bundle/3"
READABLE_FORMATS = ("trigger-ml-firmware-bundle/1", "trigger-ml-firmware-bundle/2", BUNDLE_FORMAT)
"""Formats this verifier checks; /1 bundles have no hostile vectors, /1 and /2 no decision block
(``trigger_top``; /3 bundles have it unless the model's decision is disabled)."""
MANIFEST = "MANIFEST"
BUILD_INFO = "BUILD_INFO.json"
UNLISTED = (MANIFEST, BUILD_INFO)
"""The two files MANIFEST does not list: itself, and the build metadata outside the identity."""

HLS_DIR = "hls"
INPUT_SPEC = "spec/input_spec.json"
OUTPUT_SPEC = "spec/output_spec.json"
TB_INPUTS = "hls/tb_data/tb_input_features.dat"
TB_OUTPUTS = "hls/tb_data/tb_output_predictions.dat"
INPUT_CODES = "vectors/input_codes.txt"
INPUT_WORDS = "vectors/input_words.hex"
OUTPUT_CODES = "vectors/output_codes.txt"
LABELS = "vectors/labels.txt"
HOSTILE_FAMILIES = "vectors/hostile_families.txt"
HOSTILE_INPUTS = "vectors/hostile_inputs.dat"
HOSTILE_INPUT_CODES = "vectors/hostile_input_codes.txt"
HOSTILE_OUTPUT_CODES = "vectors/hostile_output_codes.txt"
TOP_INPUTS = "vectors/top_inputs.txt"
TOP_OUTPUTS = "vectors/top_outputs.txt"
TOP_FAMILIES = "vectors/top_families.txt"
TOP = "trigger_top"
CSIM_LOG = "tb_data/csim_results.log"
"""Where the project's testbench writes its outputs (relative to the project directory)."""

CXX_FLAGS = ("-std=c++11", "-O1", "-Ifirmware", "-Ifirmware/ap_types", '-DWEIGHTS_DIR="firmware/weights"')
CSIM_TIMEOUT_S = 1800
COMPILE_TIMEOUT_S = 1800.0
COMPILE_TIMEOUT_ENV = "TRIGGER_ML_GXX_TIMEOUT_S"
WP_SIGMAS = 3.0
"""Working-point tolerance: this many standard deviations of the efficiency on the vectors."""

_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")

Log = Callable[[str], None]


class BundleError(Exception):
    """The first problem found in a bundle; the message names the file or the vector."""


# --- formats shared with the builder ------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_text(hashes: dict[str, str]) -> str:
    """MANIFEST: ``<sha256>  <path>`` per file, sorted by path (``sha256sum -c`` reads it)."""
    return "".join(f"{hashes[path]}  {path}\n" for path in sorted(hashes))


def build_info_text(info: dict[str, Any]) -> str:
    """The one byte layout BUILD_INFO.json may have: sorted keys, two-space indent."""
    return json.dumps(info, indent=2, sort_keys=True) + "\n"


def build_info_checksum(info: dict[str, Any]) -> str:
    """SHA-256 of BUILD_INFO's content without its ``checksum`` key, in canonical JSON."""
    body = {key: value for key, value in info.items() if key != "checksum"}
    return sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def discriminant(logits: np.ndarray, f_c: float) -> np.ndarray:
    """D_b = ln(p_b / (f_c p_c + (1 - f_c) p_light)) from (b, c, light) logits, in float64.

    The same operations in the same order as ``trigger_ml.physics.discriminant_from_logits``,
    so thresholds computed there apply bit for bit here.
    """
    logits = np.asarray(logits, dtype=np.float64)
    log_c = np.log(f_c) + logits[:, 1] if f_c > 0 else np.full(len(logits), -np.inf)
    log_l = np.log1p(-f_c) + logits[:, 2] if f_c < 1 else np.full(len(logits), -np.inf)
    return logits[:, 0] - np.logaddexp(log_c, log_l)


def efficiency_tolerance(efficiency: float, n_vectors: int, n_population: int) -> float:
    """WP_SIGMAS standard deviations of an efficiency measured on ``n_vectors`` jets drawn
    without replacement from the ``n_population`` jets it was set on (hypergeometric: zero
    when the vectors are the whole population)."""
    if n_vectors <= 0 or n_population <= 1:
        return 0.0
    finite = max(n_population - n_vectors, 0) / (n_population - 1)
    return WP_SIGMAS * math.sqrt(efficiency * (1.0 - efficiency) / n_vectors * finite)


def pack_word(codes: list[int], width: int) -> str:
    """Hex (most significant digit first) of the word holding ``codes`` in two's complement,
    element 0 in the least significant ``width`` bits."""
    word = 0
    mask = (1 << width) - 1
    for index, code in enumerate(codes):
        word |= (code & mask) << (width * index)
    digits = (width * len(codes) + 3) // 4
    return format(word, f"0{digits}x")


def exact_decimal(value: Fraction) -> str:
    """Exact decimal text of a dyadic fraction (what the testbench and the vectors hold)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    value = abs(value)
    shift = 0
    while value.denominator != 1:
        if value.denominator % 2:
            raise ValueError(f"{value} is not a binary fraction")
        value *= 10
        shift += 1
    digits = str(value.numerator).rjust(shift + 1, "0")
    if shift == 0:
        return sign + digits
    return sign + (digits[:-shift] + "." + digits[-shift:]).rstrip("0").rstrip(".")


# --- reading a bundle ----------------------------------------------------------------------


def _text(root: Path, relative: str) -> str:
    try:
        return (root / relative).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{relative}: missing") from None
    except UnicodeDecodeError:
        raise BundleError(f"{relative}: not UTF-8 text") from None


def _read_json(root: Path, relative: str) -> Any:
    text = _text(root, relative)
    try:
        return json.loads(text)
    except ValueError as error:
        raise BundleError(f"{relative}: not valid JSON ({error})") from None


def check_build_info(root: Path) -> dict[str, Any]:
    """BUILD_INFO.json, checked for its exact layout and its own checksum."""
    info = _read_json(root, BUILD_INFO)
    if not isinstance(info, dict):
        raise BundleError(f"{BUILD_INFO}: not a JSON object")
    if (root / BUILD_INFO).read_bytes() != build_info_text(info).encode():
        raise BundleError(f"{BUILD_INFO}: modified (its bytes are not the canonical layout)")
    if info.get("checksum") != build_info_checksum(info):
        raise BundleError(f"{BUILD_INFO}: modified (checksum does not match its content)")
    if not re.fullmatch(r"[0-9a-f]{64}", str(info.get("firmware_id"))):
        raise BundleError(f"{BUILD_INFO}: no valid firmware_id")
    if info.get("bundle_format") not in READABLE_FORMATS:
        raise BundleError(
            f"{BUILD_INFO}: bundle format {info.get('bundle_format')!r}, expected one of {READABLE_FORMATS}"
        )
    return info


def read_manifest(root: Path, firmware_id: str) -> dict[str, str]:
    """MANIFEST's entries (path -> sha256), after checking it hashes to ``firmware_id``."""
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{MANIFEST}: missing")
    data = path.read_bytes()
    if sha256_bytes(data) != firmware_id:
        raise BundleError(f"{MANIFEST}: modified (its sha256 is not the firmware id {firmware_id})")
    entries: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        match = _MANIFEST_LINE.match(line)
        if not match:
            raise BundleError(f"{MANIFEST}: line {number} is not '<sha256>  <path>'")
        digest, relative = match.groups()
        if relative.startswith("/") or ".." in relative.split("/") or relative in UNLISTED:
            raise BundleError(f"{MANIFEST}: line {number} names a forbidden path {relative!r}")
        entries[relative] = digest
    if manifest_text(entries).encode() != data:
        raise BundleError(f"{MANIFEST}: entries are not sorted and unique")
    return entries


def bundle_files(root: Path) -> list[str]:
    """Every file below ``root`` as a relative POSIX path; links and special files are errors."""
    found = []
    for directory, subdirs, files in os.walk(root):
        for name in sorted(subdirs) + sorted(files):
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise BundleError(f"{relative}: symbolic link (a bundle holds regular files only)")
            if name in files:
                if not path.is_file():
                    raise BundleError(f"{relative}: not a regular file")
                found.append(relative)
    return sorted(found)


def check_files(root: Path, entries: dict[str, str]) -> None:
    """Every listed file has its hash; every file present is listed."""
    present = set(bundle_files(root))
    for relative in sorted(entries):
        if relative not in present:
            raise BundleError(f"{relative}: listed in {MANIFEST} but missing")
        if sha256_file(root / relative) != entries[relative]:
            raise BundleError(f"{relative}: modified (sha256 differs from {MANIFEST})")
    extra = sorted(present - set(entries) - set(UNLISTED))
    if extra:
        raise BundleError(f"{extra[0]}: not listed in {MANIFEST}")


# --- test vectors --------------------------------------------------------------------------


def _rows(root: Path, relative: str, width: int, kind: Callable[[str], Any]) -> list[list[Any]]:
    rows = []
    for number, line in enumerate(_text(root, relative).splitlines(), start=1):
        tokens = line.split()
        if len(tokens) != width:
            raise BundleError(f"{relative}: line {number} has {len(tokens)} values, expected {width}")
        try:
            rows.append([kind(token) for token in tokens])
        except ValueError:
            raise BundleError(f"{relative}: line {number} holds a malformed value") from None
    return rows


def _on_grid(values: list[Fraction], fractional_bits: int, where: str) -> list[int]:
    codes = []
    for value in values:
        code = value * 2**fractional_bits
        if code.denominator != 1:
            raise BundleError(f"{where}: {exact_decimal(value)} is not a multiple of 2^-{fractional_bits}")
        codes.append(int(code))
    return codes


def check_vectors(root: Path, in_port: dict[str, Any], out_port: dict[str, Any]) -> dict[str, Any]:
    """Read the vectors and check that their encodings agree; returns expected outputs and labels."""
    n_in, n_out = in_port["elements"], out_port["elements"]
    floats_in = _rows(root, TB_INPUTS, n_in, Fraction)
    codes_in = _rows(root, INPUT_CODES, n_in, int)
    words = [line.strip() for line in _text(root, INPUT_WORDS).splitlines()]
    floats_out = _rows(root, TB_OUTPUTS, n_out, Fraction)
    codes_out = _rows(root, OUTPUT_CODES, n_out, int)
    labels = _rows(root, LABELS, 2, int)
    n = len(floats_in)
    for relative, rows in (
        (INPUT_CODES, codes_in),
        (INPUT_WORDS, words),
        (TB_OUTPUTS, floats_out),
        (OUTPUT_CODES, codes_out),
        (LABELS, labels),
    ):
        if len(rows) != n:
            raise BundleError(f"{relative}: {len(rows)} vectors, but {TB_INPUTS} has {n}")
    if n == 0:
        raise BundleError(f"{TB_INPUTS}: no test vectors")
    for i in range(n):
        where = f"vector {i} ({TB_INPUTS} line {i + 1})"
        if _on_grid(floats_in[i], in_port["fractional_bits"], where) != codes_in[i]:
            raise BundleError(f"vector {i}: {INPUT_CODES} line {i + 1} disagrees with {TB_INPUTS}")
        if pack_word(codes_in[i], in_port["width"]) != words[i]:
            raise BundleError(f"vector {i}: {INPUT_WORDS} line {i + 1} disagrees with {INPUT_CODES}")
        where = f"vector {i} ({TB_OUTPUTS} line {i + 1})"
        if _on_grid(floats_out[i], out_port["fractional_bits"], where) != codes_out[i]:
            raise BundleError(f"vector {i}: {OUTPUT_CODES} line {i + 1} disagrees with {TB_OUTPUTS}")
        if labels[i][1] not in (0, 1, 2):
            raise BundleError(f"vector {i}: {LABELS} line {i + 1}: class must be 0 (b), 1 (c) or 2 (light)")
    return {"expected": floats_out, "classes": np.array([row[1] for row in labels])}


def port_code(value: Fraction, port: dict[str, Any]) -> int:
    """The code the C++ conversion ``ap_fixed(value)`` gives on the port's type (its modes)."""
    kind = port["type"]
    rounding, overflow = (kind[key].split(":")[0] for key in ("rounding", "overflow"))
    scaled = value * 2 ** port["fractional_bits"]
    floor = scaled.numerator // scaled.denominator
    codes = {
        "AP_TRN": floor,
        "AP_TRN_ZERO": int(scaled),
        "AP_RND": math.floor(scaled + Fraction(1, 2)),
        "AP_RND_CONV": round(scaled),
    }
    if rounding not in codes or overflow not in ("AP_SAT", "AP_WRAP"):
        raise BundleError(f"{INPUT_SPEC}: port modes {rounding}/{overflow} are not supported by verify.py")
    low, high, width = kind["code_min"], kind["code_max"], port["width"]
    if overflow == "AP_SAT":
        return min(max(codes[rounding], low), high)
    return (codes[rounding] - low) % 2**width + low


def check_hostile(root: Path, in_port: dict[str, Any], out_port: dict[str, Any]) -> dict[str, Any]:
    """Read the hostile vectors: family names, float32 input values, the codes the port's own
    conversion gives them, expected output codes; returns the families, the testbench's input
    text and the expected outputs."""
    families = [line.strip() for line in _text(root, HOSTILE_FAMILIES).splitlines()]
    floats_in = _rows(root, HOSTILE_INPUTS, in_port["elements"], Fraction)
    codes_in = _rows(root, HOSTILE_INPUT_CODES, in_port["elements"], int)
    codes_out = _rows(root, HOSTILE_OUTPUT_CODES, out_port["elements"], int)
    for relative, rows in (
        (HOSTILE_INPUTS, floats_in),
        (HOSTILE_INPUT_CODES, codes_in),
        (HOSTILE_OUTPUT_CODES, codes_out),
    ):
        if len(rows) != len(families):
            raise BundleError(f"{relative}: {len(rows)} vectors, but {HOSTILE_FAMILIES} has {len(families)}")
    if not families or not all(re.fullmatch(r"[a-z0-9_]+", name) for name in families):
        raise BundleError(f"{HOSTILE_FAMILIES}: expected one family name ([a-z0-9_]+) per line")
    for i, row in enumerate(floats_in):
        where = f"hostile vector {i} ({families[i]}, {HOSTILE_INPUTS} line {i + 1})"
        if any(float(np.float32(float(v))) != v for v in row):
            raise BundleError(f"{where}: a value is not a float32 number (the testbench reads float32)")
        if [port_code(v, in_port) for v in row] != codes_in[i]:
            raise BundleError(
                f"{where}: {HOSTILE_INPUT_CODES} line {i + 1} is not the port's conversion of it"
            )
    scale = Fraction(1, 2 ** out_port["fractional_bits"])
    return {
        "families": families,
        "inputs": _text(root, HOSTILE_INPUTS),
        "expected": [[code * scale for code in row] for row in codes_out],
    }


def compare_families(got: list[list[Fraction]], hostile: dict[str, Any]) -> list[dict[str, Any]]:
    """Per hostile family: vectors and bit-exact ones; raise naming the first differing vector."""
    families, expected = hostile["families"], hostile["expected"]
    if len(got) != len(expected):
        raise BundleError(f"{HOSTILE_INPUTS}: the C simulation produced {len(got)} outputs for {len(expected)} vectors")
    exact = [got[i] == expected[i] for i in range(len(expected))]
    rows: dict[str, dict[str, Any]] = {}
    for i, family in enumerate(families):
        row = rows.setdefault(family, {"family": family, "n_vectors": 0, "n_exact": 0})
        row["n_vectors"], row["n_exact"] = row["n_vectors"] + 1, row["n_exact"] + exact[i]
    if not all(exact):
        i = exact.index(False)
        row = rows[families[i]]
        shown = [" ".join(exact_decimal(v) for v in values) for values in (got[i], expected[i])]
        raise BundleError(
            f"hostile family {row['family']}: {row['n_vectors'] - row['n_exact']} of {row['n_vectors']} vectors "
            f"differ; first: hostile vector {i} ({HOSTILE_INPUTS} line {i + 1}): C simulation gives "
            f"[{shown[0]}], {HOSTILE_OUTPUT_CODES} line {i + 1} expects [{shown[1]}]"
        )
    return list(rows.values())


# --- C simulation ----------------------------------------------------------------------------


def compile_timeout() -> float | None:
    """Seconds g++ may take to compile the C simulation: $TRIGGER_ML_GXX_TIMEOUT_S (0: no
    limit), else COMPILE_TIMEOUT_S."""
    raw = os.environ.get(COMPILE_TIMEOUT_ENV, "").strip()
    if not raw:
        return COMPILE_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise BundleError(f"{COMPILE_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    return value if value > 0 else None


def compiler() -> str:
    """The C++ compiler: $CXX, else g++ on PATH."""
    cxx = os.environ.get("CXX") or "g++"
    found = shutil.which(cxx)
    if not found:
        raise BundleError(f"{cxx} not found on PATH: it is needed to compile the C simulation (install g++)")
    return found


def _gxx(command: list[str], cwd: Path, what: str) -> None:
    limit = compile_timeout()
    try:
        built = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise BundleError(
            f"hls/: g++ did not compile {what} in {limit:g} s ({COMPILE_TIMEOUT_ENV} sets the limit)"
        ) from None
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BundleError(f"hls/: g++ failed to compile {what} ({last})")


def compile_and_run(
    root: Path, project: str, workdir: Path, log: Log, with_top: bool = False
) -> list[list[Fraction]]:
    """Copy ``hls/`` into ``workdir``, compile the network once with g++ and link the project's
    testbench (and, ``with_top``, trigger_top's) to it; run every vector; the outputs."""
    project_dir = workdir / "hls"
    shutil.copytree(root / HLS_DIR, project_dir)
    cxx = compiler()
    network = [cxx, *CXX_FLAGS, "-c", f"firmware/{project}.cpp", "-o", f"{project}.o"]
    log(f"compiling the C simulation in {project_dir}: {' '.join(network)}")
    start = time.perf_counter()
    _gxx(network, project_dir, "the C simulation")
    _gxx([cxx, *CXX_FLAGS, f"{project}_test.cpp", f"{project}.o", "-o", "csim"], project_dir, "the testbench")
    if with_top:
        top = [cxx, *CXX_FLAGS, f"{TOP}_test.cpp", f"firmware/{TOP}.cpp", f"{project}.o", "-o", f"{TOP}_csim"]
        _gxx(top, project_dir, f"the C simulation of {TOP}")
    log(f"compiled in {time.perf_counter() - start:.1f} s (the network once); running the test vectors")
    return run_testbench(project_dir, project)


def decision_outputs(logit_codes: list[int], emulation: dict[str, Any]) -> tuple[int, int]:
    """(score code, tag word) of one jet's logit codes (b, c, light): the decision block's
    integer arithmetic as ``output_spec.json`` states it (the same as
    ``trigger_ml.decision.score.max_form_codes``)."""
    z_b, z_c, z_l = logit_codes
    terms = [z + emulation[key] for z, key in ((z_c, "offset_c"), (z_l, "offset_l")) if emulation[key] is not None]
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
    words = _rows(root, TOP_INPUTS, spec["n_words"], int)
    rows = _rows(root, TOP_OUTPUTS, n_outputs + 2, int)
    counts = spec.get("vectors", {})
    n_rows = counts["n_test"] + counts["n_hostile"] if "n_test" in counts else len(logits)
    if len(words) != n_rows or len(rows) != n_rows or len(logits) > n_rows:
        raise BundleError(
            f"{TOP_OUTPUTS}: {len(rows)} rows and {TOP_INPUTS} {len(words)}, expected {n_rows} "
            "(the test vectors, then the hostile vectors)"
        )
    if (root / TOP_FAMILIES).is_file():
        families = _text(root, TOP_FAMILIES).split()
    else:  # format 3 bundles before front-end families: test rows, then the network's hostile ones
        families = ["test"] * counts.get("n_test", n_rows) + ["hostile"] * (n_rows - counts.get("n_test", n_rows))
    if len(families) != n_rows or not all(re.fullmatch(r"[a-z0-9_]+", name) for name in families):
        raise BundleError(f"{TOP_FAMILIES}: expected one family name ([a-z0-9_]+) per vector, {n_rows} lines")
    for i, row in enumerate(rows):
        where = f"{TOP} vector {i} ({TOP_OUTPUTS} line {i + 1})"
        if i < len(logits) and row[:n_outputs] != logits[i]:
            raise BundleError(f"{where}: its logit codes are not those of the network's vectors of the same jets")
        score, tags = decision_outputs(row[:n_outputs], spec["emulation"])
        if row[n_outputs] != score:
            raise BundleError(f"{where}: score code {row[n_outputs]}, the decision of its logits gives {score}")
        if row[n_outputs + 1] != tags:
            raise BundleError(f"{where}: tag bits {row[n_outputs + 1]:b}, the decision of its logits gives {tags:b}")
    return rows, families


def run_top(project_dir: Path, expected: list[list[int]], families: list[str]) -> dict[str, int]:
    """Run trigger_top's compiled testbench on its vectors; every output row must equal ``expected``.
    Returns the number of (bit-exact) vectors per family."""
    out = project_dir / "top_outputs.txt"
    try:
        ran = subprocess.run(
            [str(project_dir / f"{TOP}_csim"), str(project_dir.parent / "top_inputs.txt"), str(out)],
            cwd=project_dir,  # WEIGHTS_DIR is relative: networks that read their weights at run time
            capture_output=True,
            text=True,
            timeout=CSIM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise BundleError(f"hls/{TOP}_test.cpp: the C simulation did not finish in {CSIM_TIMEOUT_S} s") from None
    if ran.returncode != 0 or not out.is_file():
        raise BundleError(f"hls/{TOP}_test.cpp: the C simulation of {TOP} exited with status {ran.returncode}")
    got = [[int(token) for token in line.split()] for line in out.read_text(encoding="utf-8").splitlines()]
    if len(got) != len(expected):
        raise BundleError(f"{TOP_INPUTS}: the C simulation of {TOP} gave {len(got)} rows for {len(expected)} vectors")
    for i, (have, want) in enumerate(zip(got, expected, strict=True)):
        if have != want:
            raise BundleError(
                f"{TOP} vector {i} ({families[i]}): C simulation gives {have}, {TOP_OUTPUTS} line {i + 1} "
                f"expects {want} (logit codes, score code, tag word)"
            )
    return {family: families.count(family) for family in dict.fromkeys(families)}


def run_testbench(
    project_dir: Path, project: str, vectors: dict[str, Any] | None = None
) -> list[list[Fraction]]:
    """Run the compiled testbench in ``project_dir`` on its tb_data, or on ``vectors`` (hostile:
    their input text and expected outputs); the outputs it logs."""
    results = project_dir / CSIM_LOG
    if results.exists():
        results.unlink()
    if vectors is not None:
        expected = "".join(" ".join(exact_decimal(v) for v in row) + "\n" for row in vectors["expected"])
        (project_dir / "tb_data" / "tb_input_features.dat").write_text(vectors["inputs"], encoding="utf-8")
        (project_dir / "tb_data" / "tb_output_predictions.dat").write_text(expected, encoding="utf-8")
    try:
        ran = subprocess.run(
            [str(project_dir / "csim")],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=CSIM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise BundleError(
            f"hls/{project}_test.cpp: the C simulation did not finish in {CSIM_TIMEOUT_S} s"
        ) from None
    if ran.returncode != 0:
        raise BundleError(f"hls/{project}_test.cpp: the C simulation exited with status {ran.returncode}")
    if not results.is_file():
        raise BundleError(f"hls/{project}_test.cpp: the testbench wrote no hls/{CSIM_LOG}")
    rows = []
    for line in results.read_text(encoding="utf-8").splitlines():
        try:
            rows.append([Fraction(token) for token in line.split()])
        except ValueError:
            raise BundleError(f"hls/{CSIM_LOG}: malformed output line {line!r}") from None
    return rows


def compare_outputs(got: list[list[Fraction]], expected: list[list[Fraction]]) -> None:
    """Every vector's outputs must equal the expected ones exactly."""
    for i, want in enumerate(expected):
        if i >= len(got):
            raise BundleError(f"vector {i}: the C simulation produced only {len(got)} outputs")
        if got[i] != want:
            shown = " ".join(exact_decimal(v) for v in got[i])
            raise BundleError(
                f"vector {i}: C simulation gives [{shown}], {TB_OUTPUTS} line {i + 1} expects "
                f"[{' '.join(exact_decimal(v) for v in want)}]"
            )
    if len(got) != len(expected):
        raise BundleError(
            f"{TB_INPUTS}: the C simulation produced {len(got)} outputs for {len(expected)} vectors"
        )


def check_working_points(
    outputs: list[list[Fraction]], classes: np.ndarray, spec: dict[str, Any]
) -> list[dict]:
    """Apply each threshold of the output spec to the vectors' outputs; compare the b-efficiency
    with the one measured on the whole test split, within the stated tolerance."""
    logits = np.array([[float(v) for v in row] for row in outputs], dtype=np.float64)
    disc = discriminant(logits, spec["discriminant"]["f_c"])
    b_jets = classes == 0
    n_b = int(b_jets.sum())
    if n_b == 0:
        raise BundleError(f"{LABELS}: no b-jets among the vectors: the working points cannot be checked")
    rows = []
    for wp in spec["working_points"]:
        efficiency = float(np.count_nonzero(disc[b_jets] > wp["threshold"])) / n_b
        reference = wp["b_efficiency_test_split"]
        tolerance = efficiency_tolerance(reference, n_b, wp["n_b_test_split"])
        row = {
            "b_efficiency": wp["b_efficiency"],
            "threshold": wp["threshold"],
            "b_efficiency_vectors": efficiency,
            "b_efficiency_test_split": reference,
            "tolerance": tolerance,
            "n_b_vectors": n_b,
        }
        rows.append(row)
        if abs(efficiency - reference) > tolerance + 1e-12:
            raise BundleError(
                f"{OUTPUT_SPEC}: the {wp['b_efficiency']:.0%} working point gives b-efficiency "
                f"{efficiency:.4f} on the {n_b} b-jets of the vectors, expected {reference:.4f} +- {tolerance:.4f}"
            )
    return rows


# --- the whole verification ------------------------------------------------------------------


def unpack(tarball: Path, into: Path) -> Path:
    """Extract a bundle tarball safely (regular files and directories below one top directory)."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            members = archive.getmembers()
            tops = {member.name.split("/")[0] for member in members}
            for member in members:
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                    raise BundleError(f"{tarball.name}: unsafe member {member.name!r}")
            if len(tops) != 1:
                raise BundleError(f"{tarball.name}: expected one top-level directory, found {sorted(tops)}")
            for member in members:
                if hasattr(tarfile, "data_filter"):
                    archive.extract(member, into, filter="data")
                else:
                    archive.extract(member, into)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BundleError(f"{tarball.name}: not a readable .tar.gz ({error})") from None
    return into / tops.pop()


def verify(bundle: Path, log: Log | None = None, keep_workdir: bool = False) -> dict[str, Any]:
    """Run every check on a bundle directory or tarball; raise BundleError at the first failure.

    Returns a summary: firmware id, file and vector counts, working-point efficiencies.
    """
    say: Log = log or (lambda message: None)
    bundle = Path(bundle)
    start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="trigger-ml-verify-"))
    try:
        if bundle.is_file():
            say(f"unpacking {bundle}")
            root = unpack(bundle, workdir / "unpacked")
        elif bundle.is_dir():
            root = bundle
        else:
            raise BundleError(f"{bundle}: no such bundle directory or tarball")
        info = check_build_info(root)
        firmware_id = info["firmware_id"]
        entries = read_manifest(root, firmware_id)
        check_files(root, entries)
        say(f"firmware {firmware_id}: {len(entries)} files match {MANIFEST}")
        in_spec = _read_json(root, INPUT_SPEC)
        out_spec = _read_json(root, OUTPUT_SPEC)
        try:
            vectors = check_vectors(root, in_spec["port"], out_spec["port"])
            with_hostile = info["bundle_format"] != READABLE_FORMATS[0]
            hostile = check_hostile(root, in_spec["port"], out_spec["port"]) if with_hostile else None
            n = len(vectors["expected"])
            decision = out_spec.get("decision") if info["bundle_format"] == BUNDLE_FORMAT else None
            top_rows = None
            top_source = root / HLS_DIR / "firmware" / f"{TOP}.cpp"
            if info["bundle_format"] == BUNDLE_FORMAT and decision is None and top_source.is_file():
                raise BundleError(f"{OUTPUT_SPEC}: no decision section, but hls/ holds {TOP}")
            outputs = compile_and_run(
                root, in_spec["project"], workdir / "csim", say, with_top=decision is not None
            )
            compare_outputs(outputs, vectors["expected"])
            say(f"{n} test vectors: C simulation == expected outputs, bit for bit")
            families = []
            if hostile is not None:
                got = run_testbench(workdir / "csim" / "hls", in_spec["project"], hostile)
                families = compare_families(got, hostile)
                for row in families:
                    say(f"hostile family {row['family']}: {row['n_exact']}/{row['n_vectors']} bit-exact")
            else:
                say(f"bundle format {info['bundle_format']}: no hostile vectors")
            working_points = check_working_points(outputs, vectors["classes"], out_spec)
            if decision is not None:
                scale = 2 ** out_spec["port"]["fractional_bits"]
                logits = [[int(v * scale) for v in row] for row in vectors["expected"]]
                if hostile and decision.get("vectors", {}).get("hostile_logits", "network") == "network":
                    logits += [[int(v * scale) for v in row] for row in hostile["expected"]]
                top_rows, top_families = check_top_vectors(root, decision, logits, out_spec["port"]["elements"])
                say(f"{len(top_rows)} {TOP} vectors: score codes and tag bits are the decision of their logits")
                shutil.copyfile(root / TOP_INPUTS, workdir / "csim" / "top_inputs.txt")
                for family, count in run_top(workdir / "csim" / "hls", top_rows, top_families).items():
                    say(f"{TOP} family {family}: {count}/{count} bit-exact (logits, score code, tag bits)")
        except (KeyError, TypeError, IndexError) as error:
            raise BundleError(f"{INPUT_SPEC} or {OUTPUT_SPEC}: malformed ({error!r})") from None
        for wp in working_points:
            say(
                f"working point {wp['b_efficiency']:.0%}: D_b > {wp['threshold']:.6g} keeps "
                f"{wp['b_efficiency_vectors']:.4f} of {wp['n_b_vectors']} b-jets "
                f"(test split {wp['b_efficiency_test_split']:.4f}, tolerance {wp['tolerance']:.4f})"
            )
    finally:
        if keep_workdir:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "bundle": str(bundle),
        "firmware_id": firmware_id,
        "n_files": len(entries),
        "n_vectors": n,
        "hostile": families,
        "working_points": working_points,
        "n_top_vectors": len(top_rows) if top_rows is not None else 0,
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python3 verify.py [BUNDLE] [--keep-workdir]``; exit 0 on success, 1 on failure."""
    args = list(sys.argv[1:] if argv is None else argv)
    keep = "--keep-workdir" in args
    args = [arg for arg in args if arg != "--keep-workdir"]
    if len(args) > 1 or any(arg.startswith("-") for arg in args):
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    bundle = Path(args[0]) if args else Path(__file__).resolve().parent
    try:
        result = verify(
            bundle, log=lambda message: print(f"[verify] {message}", flush=True), keep_workdir=keep
        )
    except BundleError as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    hostile = sum(row["n_vectors"] for row in result["hostile"])
    top = f", {TOP} on {result['n_top_vectors']} vectors" if result["n_top_vectors"] else ""
    print(
        f"PASS firmware {result['firmware_id']} ({result['n_files']} files, {result['n_vectors']} vectors "
        f"and {hostile} hostile vectors in {len(result['hostile'])} families bit-exact{top}) in {result['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
