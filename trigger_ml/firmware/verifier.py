#!/usr/bin/env python3
"""Verify a trigger-ml firmware bundle with nothing but Python 3, numpy and g++.

Usage::

    python3 verify.py [BUNDLE] [--keep-workdir] [--run-top INPUTS.txt [--out OUT.txt]]

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

``--run-top INPUTS.txt`` runs your own jets through ``trigger_top``'s C simulation once
every check above has passed: one jet per line, the front end's integer words
(``spec/input_spec.json`` ``trigger_top``; ``vectors/top_inputs.txt`` is an example); it
writes one line per jet to OUT.txt (``--out``; standard output otherwise, the log then
going to standard error): the logit codes, the score code and the tag word (bit k: working
point k), each checked against the decision's integer arithmetic. A malformed INPUTS.txt
or a bundle without ``trigger_top`` stops before compiling, with exit status 2 and no output.

The verifier is three files, ``verify.py`` (this one: the checks' order, the test and hostile
vectors, compiling and running the C simulation), ``verify_files.py`` (the bundle's layout,
formats and integrity) and ``verify_top.py`` (``trigger_top``); ``verify.py`` loads the other
two from its own directory, never from an installed trigger-ml. They are
``trigger_ml/firmware/verifier.py``, ``verify_files.py`` and ``verify_top.py`` of the trigger-ml
package, copied into every bundle unchanged; ``trigger-ml verify`` runs the same code. They
import nothing but the standard library and numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


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
_top = _sibling("verify_top")

# The names of verify_files.py and verify_top.py, re-exported: `verifier.<NAME>` is the one way in
# (the package's modules and tests use them so, and so get the one copy of BundleError).
BUNDLE_FORMAT = _files.BUNDLE_FORMAT
READABLE_FORMATS = _files.READABLE_FORMATS
MANIFEST = _files.MANIFEST
BUILD_INFO = _files.BUILD_INFO
UNLISTED = _files.UNLISTED
HLS_DIR = _files.HLS_DIR
INPUT_SPEC = _files.INPUT_SPEC
OUTPUT_SPEC = _files.OUTPUT_SPEC
TB_INPUTS = _files.TB_INPUTS
TB_OUTPUTS = _files.TB_OUTPUTS
INPUT_CODES = _files.INPUT_CODES
INPUT_WORDS = _files.INPUT_WORDS
OUTPUT_CODES = _files.OUTPUT_CODES
LABELS = _files.LABELS
HOSTILE_FAMILIES = _files.HOSTILE_FAMILIES
HOSTILE_INPUTS = _files.HOSTILE_INPUTS
HOSTILE_INPUT_CODES = _files.HOSTILE_INPUT_CODES
HOSTILE_OUTPUT_CODES = _files.HOSTILE_OUTPUT_CODES
TOP_INPUTS = _files.TOP_INPUTS
TOP_OUTPUTS = _files.TOP_OUTPUTS
TOP_FAMILIES = _files.TOP_FAMILIES
TOP = _files.TOP
CSIM_LOG = _files.CSIM_LOG
CXX_FLAGS = _files.CXX_FLAGS
CSIM_TIMEOUT_S = _files.CSIM_TIMEOUT_S
COMPILE_TIMEOUT_S = _files.COMPILE_TIMEOUT_S
COMPILE_TIMEOUT_ENV = _files.COMPILE_TIMEOUT_ENV
WP_SIGMAS = _files.WP_SIGMAS
VERIFIER_FILES = _files.VERIFIER_FILES
Log = _files.Log
BundleError = _files.BundleError
sha256_bytes = _files.sha256_bytes
sha256_file = _files.sha256_file
manifest_text = _files.manifest_text
build_info_text = _files.build_info_text
build_info_checksum = _files.build_info_checksum
discriminant = _files.discriminant
efficiency_tolerance = _files.efficiency_tolerance
pack_word = _files.pack_word
exact_decimal = _files.exact_decimal
read_text = _files.read_text
read_json = _files.read_json
read_rows = _files.read_rows
check_build_info = _files.check_build_info
read_manifest = _files.read_manifest
bundle_files = _files.bundle_files
check_files = _files.check_files
unpack = _files.unpack
compile_timeout = _files.compile_timeout
compiler = _files.compiler
gxx = _files.gxx
RunTopError = _top.RunTopError
decision_outputs = _top.decision_outputs
check_top_vectors = _top.check_top_vectors
check_decision = _top.check_decision
run_top_csim = _top.run_top_csim
run_top = _top.run_top
read_user_inputs = _top.read_user_inputs
run_user_inputs = _top.run_user_inputs
format_rows = _top.format_rows


# --- test vectors --------------------------------------------------------------------------


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
    floats_in = read_rows(root, TB_INPUTS, n_in, Fraction)
    codes_in = read_rows(root, INPUT_CODES, n_in, int)
    words = [line.strip() for line in read_text(root, INPUT_WORDS).splitlines()]
    floats_out = read_rows(root, TB_OUTPUTS, n_out, Fraction)
    codes_out = read_rows(root, OUTPUT_CODES, n_out, int)
    labels = read_rows(root, LABELS, 2, int)
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
    families = [line.strip() for line in read_text(root, HOSTILE_FAMILIES).splitlines()]
    floats_in = read_rows(root, HOSTILE_INPUTS, in_port["elements"], Fraction)
    codes_in = read_rows(root, HOSTILE_INPUT_CODES, in_port["elements"], int)
    codes_out = read_rows(root, HOSTILE_OUTPUT_CODES, out_port["elements"], int)
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
        "inputs": read_text(root, HOSTILE_INPUTS),
        "expected": [[code * scale for code in row] for row in codes_out],
    }


def compare_families(got: list[list[Fraction]], hostile: dict[str, Any]) -> list[dict[str, Any]]:
    """Per hostile family: vectors and bit-exact ones; raise naming the first differing vector."""
    families, expected = hostile["families"], hostile["expected"]
    if len(got) != len(expected):
        raise BundleError(
            f"{HOSTILE_INPUTS}: the C simulation produced {len(got)} outputs for {len(expected)} vectors"
        )
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
    gxx(network, project_dir, "the C simulation")
    gxx([cxx, *CXX_FLAGS, f"{project}_test.cpp", f"{project}.o", "-o", "csim"], project_dir, "the testbench")
    if with_top:
        top = [cxx, *CXX_FLAGS, f"{TOP}_test.cpp", f"firmware/{TOP}.cpp", f"{project}.o", "-o", f"{TOP}_csim"]
        gxx(top, project_dir, f"the C simulation of {TOP}")
    log(f"compiled in {time.perf_counter() - start:.1f} s (the network once); running the test vectors")
    return run_testbench(project_dir, project)


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


def verify(
    bundle: Path, log: Log | None = None, keep_workdir: bool = False, top_inputs: Path | None = None
) -> dict[str, Any]:
    """Run every check on a bundle directory or tarball; raise BundleError at the first failure.

    With ``top_inputs`` (a user's file of trigger_top inputs, see ``--run-top``), read it before
    compiling (RunTopError when it is malformed or the bundle has no trigger_top), then run it
    through trigger_top's C simulation once every check has passed: ``top_outputs`` in the result.
    Returns a summary: firmware id, file and vector counts, working-point efficiencies.
    """
    say: Log = log or (lambda message: None)
    bundle = Path(bundle)
    start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="trigger-ml-verify-"))
    top_rows = user_rows = top_outputs = None
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
        in_spec = read_json(root, INPUT_SPEC)
        out_spec = read_json(root, OUTPUT_SPEC)
        try:
            decision = out_spec.get("decision") if info["bundle_format"] == BUNDLE_FORMAT else None
            top_source = root / HLS_DIR / "firmware" / f"{TOP}.cpp"
            if info["bundle_format"] == BUNDLE_FORMAT and decision is None and top_source.is_file():
                raise BundleError(f"{OUTPUT_SPEC}: no decision section, but hls/ holds {TOP}")
            if top_inputs is not None:
                if decision is None:
                    raise RunTopError(
                        f"{bundle}: --run-top needs {TOP}, and this bundle has none (format "
                        f"{info['bundle_format']}, no decision section in {OUTPUT_SPEC})"
                    )
                user_rows = read_user_inputs(Path(top_inputs), decision["n_words"])
                say(f"{top_inputs}: {len(user_rows)} jets of {decision['n_words']} words for {TOP}")
            vectors = check_vectors(root, in_spec["port"], out_spec["port"])
            with_hostile = info["bundle_format"] != READABLE_FORMATS[0]
            hostile = check_hostile(root, in_spec["port"], out_spec["port"]) if with_hostile else None
            n = len(vectors["expected"])
            csim = workdir / "csim"
            outputs = compile_and_run(root, in_spec["project"], csim, say, with_top=decision is not None)
            compare_outputs(outputs, vectors["expected"])
            say(f"{n} test vectors: C simulation == expected outputs, bit for bit")
            families = []
            if hostile is not None:
                got = run_testbench(csim / "hls", in_spec["project"], hostile)
                families = compare_families(got, hostile)
                for row in families:
                    say(f"hostile family {row['family']}: {row['n_exact']}/{row['n_vectors']} bit-exact")
            else:
                say(f"bundle format {info['bundle_format']}: no hostile vectors")
            working_points = check_working_points(outputs, vectors["classes"], out_spec)
            if decision is not None:
                n_out = out_spec["port"]["elements"]
                scale = 2 ** out_spec["port"]["fractional_bits"]
                logits = [[int(v * scale) for v in row] for row in vectors["expected"]]
                if hostile and decision.get("vectors", {}).get("hostile_logits", "network") == "network":
                    logits += [[int(v * scale) for v in row] for row in hostile["expected"]]
                top_rows, top_families = check_top_vectors(root, decision, logits, n_out)
                say(
                    f"{len(top_rows)} {TOP} vectors: score codes and tag bits are the decision of their logits"
                )
                shutil.copyfile(root / TOP_INPUTS, csim / "top_inputs.txt")
                for family, count in run_top(csim / "hls", top_rows, top_families).items():
                    say(f"{TOP} family {family}: {count}/{count} bit-exact (logits, score code, tag bits)")
                if user_rows is not None:
                    top_outputs = run_user_inputs(csim / "hls", user_rows, decision, n_out, Path(top_inputs))
                    say(
                        f"{TOP} ran the {len(top_outputs)} jets of {top_inputs}; their tags are the decision's"
                    )
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
        "top_outputs": top_outputs,
        "seconds": time.perf_counter() - start,
    }


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temporary file beside it, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module's docstring); exit 0 on success, 1 when the bundle fails a
    check, 2 on bad usage, a malformed ``--run-top`` file or a bundle without trigger_top."""
    parser = argparse.ArgumentParser(
        prog="verify.py",
        description="Verify a trigger-ml firmware bundle (python3, numpy and g++ only).",
        epilog="exit status: 0 every check passed; 1 a check failed (one line naming the file or vector); "
        "2 bad usage, a malformed --run-top file (read before anything is compiled; no output is written) "
        "or a bundle without trigger_top",
    )
    parser.add_argument(
        "bundle", nargs="?", help="bundle directory or .tar.gz (default: this file's directory)"
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temporary build directory")
    parser.add_argument(
        "--run-top",
        metavar="INPUTS.txt",
        help=f"after every check passes, run these jets through {TOP}'s C simulation: one jet per line, "
        f"the front end's integer words (layout: {INPUT_SPEC} trigger_top; example: {TOP_INPUTS}); "
        "writes per line the logit codes, the score code and the tag word",
    )
    parser.add_argument(
        "--out", metavar="OUT.txt", help="with --run-top: write the rows here (default: stdout)"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.out and not args.run_top:
        parser.error("--out needs --run-top")
    log_stream = sys.stderr if args.run_top and not args.out else sys.stdout  # stdout: the rows
    bundle = Path(args.bundle) if args.bundle else Path(__file__).resolve().parent
    try:
        result = verify(
            bundle,
            log=lambda message: print(f"[verify] {message}", file=log_stream, flush=True),
            keep_workdir=args.keep_workdir,
            top_inputs=Path(args.run_top) if args.run_top else None,
        )
    except RunTopError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    except BundleError as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    hostile = sum(row["n_vectors"] for row in result["hostile"])
    top = f", {TOP} on {result['n_top_vectors']} vectors" if result["n_top_vectors"] else ""
    print(
        f"PASS firmware {result['firmware_id']} ({result['n_files']} files, {result['n_vectors']} vectors "
        f"and {hostile} hostile vectors in {len(result['hostile'])} families bit-exact{top}) in {result['seconds']:.1f} s",
        file=log_stream,
    )
    if result["top_outputs"] is not None:
        rows = format_rows(result["top_outputs"])
        if args.out:
            try:
                write_atomic(Path(args.out), rows)
            except OSError as error:
                print(f"ERROR: {args.out}: cannot write it ({error.strerror or error})", file=sys.stderr)
                return 1
            print(f"{TOP}: {len(result['top_outputs'])} rows written to {args.out}", file=log_stream)
        else:
            sys.stdout.write(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
