"""A firmware bundle's files: layout, the formats shared with the builder (MANIFEST,
BUILD_INFO.json, exact decimals, packed words), reading them, the integrity checks (build info,
manifest, every file's hash), unpacking a tarball and the g++ toolchain.

One of the verifier's files (``verify_files.py`` beside ``verify.py`` in every bundle, the same
bytes as ``trigger_ml/firmware/verify_files.py``); see ``verify.py`` for the checks' order. It
must import nothing but the standard library and numpy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tarfile
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

VERIFIER_FILES = {
    "verify.py": "verifier.py",
    "verify_files.py": "verify_files.py",
    "verify_top.py": "verify_top.py",
}
"""The verifier's files at a bundle's root -> their names in trigger_ml/firmware/ (same bytes);
only ``verify.py`` is run (executable), it loads the other two from its own directory."""


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


def read_text(root: Path, relative: str) -> str:
    """A bundle file's text; BundleError naming it when it is missing or not UTF-8."""
    try:
        return (root / relative).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{relative}: missing") from None
    except UnicodeDecodeError:
        raise BundleError(f"{relative}: not UTF-8 text") from None


def read_json(root: Path, relative: str) -> Any:
    """A bundle file's JSON; BundleError naming it when it is not valid JSON."""
    text = read_text(root, relative)
    try:
        return json.loads(text)
    except ValueError as error:
        raise BundleError(f"{relative}: not valid JSON ({error})") from None


def check_build_info(root: Path) -> dict[str, Any]:
    """BUILD_INFO.json, checked for its exact layout and its own checksum."""
    info = read_json(root, BUILD_INFO)
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


def read_rows(root: Path, relative: str, width: int, kind: Callable[[str], Any]) -> list[list[Any]]:
    """``relative``'s lines, each ``width`` values parsed by ``kind``."""
    rows = []
    for number, line in enumerate(read_text(root, relative).splitlines(), start=1):
        tokens = line.split()
        if len(tokens) != width:
            raise BundleError(f"{relative}: line {number} has {len(tokens)} values, expected {width}")
        try:
            rows.append([kind(token) for token in tokens])
        except ValueError:
            raise BundleError(f"{relative}: line {number} holds a malformed value") from None
    return rows


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


# --- the C++ toolchain ---------------------------------------------------------------------


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


def gxx(command: list[str], cwd: Path, what: str) -> None:
    """Run one g++ command in ``cwd``; BundleError naming ``what`` on failure or timeout."""
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
