"""Build a firmware hand-off bundle from a finished HLS project and its trained run.

``build_bundle`` writes ``firmware/<model>-<id12>/`` and ``firmware/<model>-<id12>.tar.gz``::

    README.md            model card
    MANIFEST             sha256 of every other file; sha256(MANIFEST) is the firmware identity
    BUILD_INFO.json      git state, package versions, g++, platform: outside the identity
    verify.py            standalone verifier (python3 + numpy + g++); it loads verify_files.py
    verify_*.py          and verify_top.py from beside it (trigger_ml/firmware/, unchanged)
    rtl/                 the decision block as Verilog (models with a decision, trigger_ml.decision)
    provenance.json      configuration, its hashes, training and data hashes, seeds
    spec/                input_spec.json, output_spec.json (types, layout, working points)
    report/              report.json, report.md and the plots (roc.png, ...) of the HLS project
    hls/                 the hls4ml project: firmware/, testbench, build scripts, tb_data/;
                         with the decision: firmware/trigger_top.cpp, decision.h, ..., trigger_top_test.cpp
    vectors/             input codes and words, output codes, truth classes; trigger_top's
                         words in and logit codes, score codes and tag words out

Everything but BUILD_INFO.json is a function of the trained model, the HLS project and the
installed hls4ml: the bytes, the tar member order and metadata and the gzip header are fixed,
so two builds give identical files, tarballs and identity. The bundle is assembled in a
hidden staging directory, verified (unless ``verify=False``), and only then renamed into
place, tarball first: a failed or interrupted build leaves neither.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import io
import os
import platform
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trigger_ml.artefacts import read_report, validate_report
from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import atomic_path, dump_json, read_json, remove_leftovers, sha256_of_file
from trigger_ml.firmware import verifier
from trigger_ml.firmware.hostile import write_bundle_vectors
from trigger_ml.firmware.interface import Interface, read_interface
from trigger_ml.locks import output_lock
from trigger_ml.logs import stage_logger
from trigger_ml.workspace import Workspace

if TYPE_CHECKING:
    from trigger_ml.data.dataset import FeatureScaling

logger = stage_logger("firmware")

DEFAULT_N_VECTORS = 1000
PROJECT_NAME = "myproject"
PACKAGES = ("trigger-ml", "tensorflow-cpu", "qkeras", "hls4ml", "numpy", "pythia8mc", "fastjet", "h5py")
EXECUTABLES = ("verify.py", "hls/build_lib.sh")
_PROJECT_FILES = (
    f"{PROJECT_NAME}_test.cpp",
    f"{PROJECT_NAME}_bridge.cpp",
    "build_prj.tcl",
    "build_opt.tcl",
    "project.tcl",
    "vivado_synth.tcl",
    "build_lib.sh",
    "hls4ml_config.yml",
)
_REQUIRED_FILES = (
    f"{PROJECT_NAME}_test.cpp",
    "build_prj.tcl",
    "project.tcl",
    "hls4ml_config.yml",
    "build_lib.sh",
)
_FIRMWARE_SUFFIXES = (".h", ".hpp", ".cpp", ".txt")
_TEXT_SUFFIXES = (".h", ".hpp", ".cpp", ".txt", ".v", ".tcl", ".sh", ".yml", ".json", ".md", ".py", ".dat", ".hex")
# The other vendor tool's script: (hls4ml template directory, file name in the bundle).
_OTHER_TOOL_SCRIPT = {
    "Vitis": ("vivado", "build_prj_vivado_hls.tcl"),
    "Vivado": ("vitis", "build_prj_vitis.tcl"),
}
_TESTBENCH_ANCHOR = "std::ofstream fout(RESULTS_LOG);"
_TESTBENCH_PATCH = (
    "    fout.precision(1000); // trigger-ml: write outputs exactly (ap_fixed prints os.precision() digits)\n"
)


@dataclass(frozen=True)
class _Sources:
    """The finished stages a bundle is made from."""

    project_dir: Path
    report: dict[str, Any]
    run_dir: Path
    data_path: Path
    decision: dict[str, Any] | None = None
    """The decision stage's summary (trigger_ml.decision), None when the model has none."""


def bundle_name(config: ModelConfig, firmware_id: str) -> str:
    """``<model>-<first 12 hex digits of the identity>``, with only [A-Za-z0-9._-] in the name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", config.name.replace("@", "__").replace("=", "-")).strip("_")
    return f"{safe}-{firmware_id[:12]}"


def _locate(config: ModelConfig, ws: Workspace) -> _Sources:
    """The finished HLS project, run and data of ``config``, checked to belong together."""
    from trigger_ml.data.stage import sample_path

    fix = f"run `trigger-ml hls '{config.name}'`"
    fix_force = f"run `trigger-ml hls '{config.name}' --force`"
    if not config.hls.enabled:
        raise UsageError(
            f"{config.name} is a physics-only reference (hls.enabled: false): it has no firmware"
        )
    project_dir = ws.hls_dir(config.name)
    if not (project_dir / "report.json").is_file():
        raise TriggerMLError(f"no HLS project for {config.name} at {project_dir}", fix)
    report = read_report(project_dir)
    if report.config_sha256 != config.digest():
        raise TriggerMLError(f"{project_dir} was built from another configuration of {config.name}", fix)
    from trigger_ml.kinds import kind_of

    for name in ("csim_predictions.h5", *kind_of(config).firmware_sources):
        if not (project_dir / name).is_file():
            raise TriggerMLError(f"{project_dir / name} is missing", fix_force)
    run_dir = ws.run_dir(config.name, config.training_digest())
    if not (run_dir / "scaling.json").is_file():
        raise TriggerMLError(f"trained run {run_dir} is missing", fix)
    data_path = sample_path(config, ws)
    if not data_path.is_file():
        raise TriggerMLError(f"data file {data_path} is missing", fix)
    if sha256_of_file(data_path) != report.data.sha256:
        raise TriggerMLError(f"{data_path} is not the data {project_dir} was built from", fix_force)
    from trigger_ml.decision.bundle import decision_summary
    from trigger_ml.decision.stage import wants_decision

    decision = decision_summary(config, project_dir) if wants_decision(config) else None
    return _Sources(project_dir, report.as_json(), run_dir, data_path, decision)


def _decimal_lines(codes: np.ndarray, fractional_bits: int) -> str:
    """One line per row: the exact decimal of every code * 2^-fractional_bits."""
    text = {int(c): verifier.exact_decimal(Fraction(int(c), 2**fractional_bits)) for c in np.unique(codes)}
    return "".join(" ".join(text[int(c)] for c in row) + "\n" for row in codes)


def _int_lines(codes: np.ndarray) -> str:
    """One line per row of integer codes."""
    return "".join(" ".join(str(int(c)) for c in row) + "\n" for row in codes)


def _write_vectors(root: Path, interface: Interface, split: dict[str, np.ndarray], n: int) -> None:
    """Test vectors: the first ``n`` jets of the test split in every encoding."""
    in_fixed, out_fixed = interface.input.fixed, interface.output.fixed
    codes_in = in_fixed.encode(split["inputs"][:n])
    scaled_out = split["logits"][:n] * 2.0**out_fixed.fractional_bits
    codes_out = np.round(scaled_out).astype(np.int64)
    if not np.array_equal(codes_out, scaled_out):
        raise TriggerMLError(
            f"C-simulation outputs are not on the output type {out_fixed.c_type}",
            "rebuild the HLS project (`trigger-ml hls MODEL --force`)",
        )
    files = {
        verifier.TB_INPUTS: _decimal_lines(codes_in, in_fixed.fractional_bits),
        verifier.TB_OUTPUTS: _decimal_lines(codes_out, out_fixed.fractional_bits),
        verifier.INPUT_CODES: _int_lines(codes_in),
        verifier.INPUT_WORDS: "".join(
            verifier.pack_word(row.tolist(), in_fixed.width) + "\n" for row in codes_in
        ),
        verifier.OUTPUT_CODES: _int_lines(codes_out),
        verifier.LABELS: "".join(
            f"{r} {c}\n" for r, c in zip(split["rows"][:n], split["classes"][:n], strict=True)
        ),
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")


def _hls4ml_template(kind: str, name: str) -> Path:
    """A file of the installed hls4ml's templates (found without importing hls4ml)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise TriggerMLError("hls4ml is not installed", "install the package with its dependencies")
    return Path(list(spec.submodule_search_locations)[0]) / "templates" / kind / name


def _replace_once(text: str, pattern: str, replacement: str, where: Path) -> str:
    """``text`` with the one match of ``pattern`` replaced; anything else means hls4ml changed."""
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise TriggerMLError(
            f"{where}: expected one match of {pattern!r}, found {count}", "check the hls4ml version (1.3.0)"
        )
    return new


def _copy_project(src: Path, dst: Path, backend: str) -> str:
    """Copy the hls4ml project's sources and scripts (no binaries, no vendor output) into ``dst``;
    normalise hls4ml's random stamp, make the testbench print exact values, add the other vendor
    tool's build script. Returns that script's name."""
    missing = [name for name in _REQUIRED_FILES if not (src / name).is_file()]
    if missing:
        raise TriggerMLError(f"{src}: incomplete hls4ml project (no {missing[0]})", "rebuild it with --force")
    chosen = [name for name in _PROJECT_FILES if (src / name).is_file()]
    chosen += sorted(
        path.relative_to(src).as_posix()
        for path in (src / "firmware").rglob("*")
        if path.is_file() and path.suffix in _FIRMWARE_SUFFIXES
    )
    for relative in chosen:
        (dst / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / relative, dst / relative)
    # hls4ml stamps every write with a random 8-hex-digit id (the .so name); derive it from the
    # firmware sources instead, so that the same firmware always has the same stamp.
    listing = "".join(
        f"{sha256_of_file(dst / r)} {r}\n" for r in chosen if r.startswith("firmware/")
    ).encode()
    stamp = verifier.sha256_bytes(listing)[:8]
    for name, pattern, replacement in (
        ("hls4ml_config.yml", r"^Stamp: \w+$", f"Stamp: {stamp}"),
        ("build_lib.sh", r"^LIB_STAMP=\w+$", f"LIB_STAMP={stamp}"),
    ):
        path = dst / name
        text = path.read_text(encoding="utf-8")
        path.write_text(_replace_once(text, pattern, replacement, src / name), encoding="utf-8")
    testbench = dst / f"{PROJECT_NAME}_test.cpp"
    text = testbench.read_text(encoding="utf-8")
    anchor = re.escape(_TESTBENCH_ANCHOR) + r"\n"
    patched = _replace_once(text, anchor, _TESTBENCH_ANCHOR + "\n" + _TESTBENCH_PATCH, testbench)
    testbench.write_text(patched, encoding="utf-8")
    kind, script = _OTHER_TOOL_SCRIPT[backend]
    shutil.copyfile(_hls4ml_template(kind, "build_prj.tcl"), dst / script)
    if kind == "vitis" and not (dst / "build_opt.tcl").is_file():
        shutil.copyfile(_hls4ml_template("vitis", "build_opt.tcl"), dst / "build_opt.tcl")
    return script


def copy_hls4ml_project(config: ModelConfig, project_dir: Path, dst: Path) -> tuple[Interface, str]:
    """The hls4ml project of ``project_dir`` into the bundle's ``hls/`` (``dst``): its
    interface and the other vendor tool's script (the network kinds' ``bundle_project``)."""
    script = _copy_project(project_dir / "hls4ml_prj", dst, config.hls.backend)
    return read_interface(dst, PROJECT_NAME), script


def _relative_paths(obj: Any, prefix: str) -> Any:
    """``obj`` with ``prefix`` (the workspace root) removed from every string in it."""
    if isinstance(obj, dict):
        return {key: _relative_paths(value, prefix) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_relative_paths(value, prefix) for value in obj]
    return obj.replace(prefix, "") if isinstance(obj, str) else obj


def _write_report(root: Path, src: _Sources, ws: Workspace) -> dict[str, Any]:
    """report/: the project's report without timings and absolute paths, with fresh cost sources."""
    from trigger_ml.cost.sections import cost_for_project
    from trigger_ml.report import markdown_report

    report = {key: value for key, value in src.report.items() if key != "timings_s"}
    report["run_dir"] = src.run_dir.relative_to(ws.root).as_posix()
    report["data"] = {**report["data"], "path": src.data_path.relative_to(ws.root).as_posix()}
    # Rates measured during the build are timings too: the identity is the firmware's, not the machine's.
    if "evaluation" in report:
        evaluation = {k: v for k, v in report["evaluation"].items() if k != "firmware_jets_per_s"}
        sample_file = ws.data_dir / Path(evaluation["path"]).parent.name / Path(evaluation["path"]).name
        report["evaluation"] = {**evaluation, "path": sample_file.relative_to(ws.root).as_posix()}
    if isinstance(report.get("decision"), dict):
        report["decision"] = {k: v for k, v in report["decision"].items() if k != "timings_s"}
    emulator = report.get("fidelity", {}).get("emulator")
    if emulator:
        report["fidelity"] = {
            **report["fidelity"],
            "emulator": {k: v for k, v in emulator.items() if k != "jets_per_s"},
        }
    report["cost"] = cost_for_project(src.project_dir)
    report = _relative_paths(report, f"{ws.root}/")
    (root / "report").mkdir()
    # The same typed report as the project's (trigger_ml.artefacts), without timings.
    report = validate_report(report, root / "report" / "report.json").as_json()
    (root / "report" / "report.json").write_text(dump_json(report), encoding="utf-8")
    markdown = markdown_report({**report, "timings_s": {}}).split("\n## Timings (s)\n")[0]
    (root / "report" / "report.md").write_text(markdown.rstrip("\n") + "\n", encoding="utf-8")
    for name in report.get("plots") or ("roc.png", "logit_diff.png"):  # the plots report.md shows
        if (src.project_dir / name).is_file():
            shutil.copyfile(src.project_dir / name, root / "report" / name)
    return report


def _provenance(
    config: ModelConfig, src: _Sources, ws: Workspace, n_vectors: int, n_test: int
) -> dict[str, Any]:
    """provenance.json: what the firmware was made from (all of it part of the identity)."""
    sample_info_path = src.data_path.parent / "sample.json"
    sample_info = read_json(sample_info_path) if sample_info_path.is_file() else {}
    return {
        "bundle_format": verifier.BUNDLE_FORMAT,
        "model": config.name,
        "description": config.description,
        "config": config.model_dump(mode="json"),
        "config_sha256": config.digest(),
        "training_sha256": config.training_digest(),
        "run": src.run_dir.relative_to(ws.root).as_posix(),
        "hls_project": src.project_dir.relative_to(ws.root).as_posix(),
        "data": {
            "file": src.data_path.relative_to(ws.root).as_posix(),
            "sha256": src.report["data"]["sha256"],
            "jets_per_split": src.report["data"]["jets_per_split"],
            "n_truncated_jets": src.report["data"]["n_truncated_jets"],
            "sample": {key: value for key, value in sample_info.items() if key != "timing"},
        },
        "seeds": {"sample": config.sample.seed, "split": config.split.seed, "training": config.training.seed},
        "test_vectors": {
            "count": n_vectors,
            "selection": f"the first {n_vectors} of the {n_test} jets of the test split, in data-file order",
        },
        "build_environment": "BUILD_INFO.json (outside the firmware identity)",
    }


def _git_state() -> dict[str, Any] | None:
    """Commit and dirty flag of the trigger-ml checkout; None outside a git checkout."""
    checkout = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True, timeout=60
        ).stdout

    try:
        return {
            "commit": git("rev-parse", "HEAD").strip(),
            "dirty": bool(git("status", "--porcelain").strip()),
        }
    except (OSError, subprocess.SubprocessError):
        return None


def _gxx_version() -> str | None:
    """First line of ``g++ --version`` (the compiler verification uses); None without one."""
    try:
        found = subprocess.run([verifier.compiler(), "--version"], capture_output=True, text=True, timeout=60)
    except (verifier.BundleError, OSError, subprocess.SubprocessError):
        return None
    return (found.stdout.splitlines() or [None])[0]


def _package_version(name: str) -> str | None:
    """Installed version of a distribution, None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _build_info(firmware_id: str, src: _Sources) -> dict[str, Any]:
    """BUILD_INFO.json: the build machine and checkout (outside the identity), self-checksummed."""
    info = {
        "bundle_format": verifier.BUNDLE_FORMAT,
        "firmware_id": firmware_id,
        "about": "Build metadata, not listed in MANIFEST and not part of the firmware identity: it may "
        "differ between machines and checkouts that build the same firmware. Nothing here depends on time.",
        "git": _git_state(),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "gxx": _gxx_version(),
        "platform": platform.platform(),
        "run_files_sha256": {
            path.name: sha256_of_file(path) for path in sorted(src.run_dir.iterdir()) if path.is_file()
        },
    }
    info["checksum"] = verifier.build_info_checksum(info)
    return info


def _normalise_modes(root: Path) -> None:
    """0755 for directories and scripts, 0644 for the rest (the same modes as in the tarball)."""
    for path in root.rglob("*"):
        executable = path.is_dir() or path.relative_to(root).as_posix() in EXECUTABLES
        path.chmod(0o755 if executable else 0o644)


def _check_relocatable(root: Path, absolute: list[str]) -> None:
    """No file of the bundle may name a directory of the machine it was built on."""
    absolute = [prefix for prefix in absolute if len(prefix) > 1]
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in _TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8", errors="replace")
            for prefix in absolute:
                if prefix in text:
                    raise TriggerMLError(
                        f"bundle file {path.relative_to(root)} contains the absolute path {prefix}",
                        "a bundle must not depend on where it was built: report this as a bug",
                    )


def tarball_bytes(root: Path, top: str) -> bytes:
    """The bundle as a reproducible .tar.gz: members sorted under ``top/``, mtime 0, uid/gid 0,
    no user names, modes 0644/0755, gzip header without name and with mtime 0."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as archive:
            paths = [root, *sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())]
            for path in paths:
                relative = path.relative_to(root).as_posix()
                info = tarfile.TarInfo(top if relative == "." else f"{top}/{relative}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if path.is_dir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
                else:
                    data = path.read_bytes()
                    info.size, info.mode = len(data), 0o755 if relative in EXECUTABLES else 0o644
                    archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _assemble(config: ModelConfig, ws: Workspace, src: _Sources, root: Path, n_vectors: int) -> str:
    """Write every file of the bundle into ``root``; returns the firmware identity."""
    from trigger_ml.data.dataset import FeatureScaling
    from trigger_ml.decision.frontend import csim_test_split, front_end_for
    from trigger_ml.firmware.modelcard import model_card
    from trigger_ml.firmware.spec import input_spec, output_spec

    root.mkdir()
    from trigger_ml.kinds import kind_of

    interface, script = kind_of(config).bundle_project(config, src.project_dir, root / verifier.HLS_DIR)
    scaling = FeatureScaling.load(src.run_dir / "scaling.json")
    jet_path = src.run_dir / "jet_scaling.json"
    jet_scaling = FeatureScaling.load(jet_path) if jet_path.is_file() else None
    split = csim_test_split(config, src.data_path, src.project_dir, scaling, jet_scaling)
    front = front_end_for(config, interface)
    n = min(n_vectors, len(split["rows"]))
    _write_vectors(root, interface, split, n)
    hostile = write_bundle_vectors(root, config, src.run_dir, src.project_dir, interface, root.parent / "hostile")
    decision_spec = None
    if src.decision is not None:
        from trigger_ml.decision.bundle import copy_sources, write_top_vectors

        copy_sources(src.project_dir, root)
        decision_spec = write_top_vectors(
            root,
            config,
            interface,
            front,
            split["jets"].head(n),
            split["logits"][:n],
            src.decision,
            src.project_dir / "decision",
        )
    report = _write_report(root, src, ws)
    provenance = {**_provenance(config, src, ws, n, len(split["rows"])), "hostile_vectors": hostile}
    sample_settings = provenance["data"]["sample"].get("settings")
    in_spec = input_spec(
        config,
        interface,
        scaling,
        jet_scaling,
        sample_settings,
        report["fidelity"].get("permutation_invariant_fraction"),
        front,
    )
    out_spec = output_spec(config, interface, split["logits"], split["classes"])
    if decision_spec is not None:
        out_spec["decision"] = decision_spec
        in_spec["trigger_top"] = decision_spec["front_end"]
    (root / "spec").mkdir()
    card = model_card(config, report, provenance, in_spec, out_spec, script)
    for relative, text in (
        (verifier.INPUT_SPEC, dump_json(in_spec)),
        (verifier.OUTPUT_SPEC, dump_json(out_spec)),
        ("provenance.json", dump_json(provenance)),
        ("README.md", card),
    ):
        (root / relative).write_text(text, encoding="utf-8")
    for name, source in verifier.VERIFIER_FILES.items():
        shutil.copyfile(Path(verifier.__file__).with_name(source), root / name)
    _normalise_modes(root)
    _check_relocatable(root, [str(ws.root), str(src.project_dir)])
    hashes = {relative: sha256_of_file(root / relative) for relative in verifier.bundle_files(root)}
    manifest = verifier.manifest_text(hashes)
    (root / verifier.MANIFEST).write_text(manifest, encoding="utf-8")
    firmware_id = verifier.sha256_bytes(manifest.encode())
    info = verifier.build_info_text(_build_info(firmware_id, src))
    (root / verifier.BUILD_INFO).write_text(info, encoding="utf-8")
    _normalise_modes(root)
    return firmware_id


STAGING = ".staging"


def _staging_prefix(pid: int) -> str:
    return f"{STAGING}-{socket.gethostname()}-{pid}-"


def _remove_dead_staging(firmware_dir: Path) -> None:
    """Remove the staging directories of bundle builds on this host whose process is gone
    (killed before it could clean up)."""
    pattern = re.compile(rf"{re.escape(STAGING)}-{re.escape(socket.gethostname())}-(\d+)-\w+")
    for path in firmware_dir.glob(f"{STAGING}-*"):
        match = pattern.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_bundle(
    config: ModelConfig,
    workspace: Workspace,
    n_vectors: int = DEFAULT_N_VECTORS,
    verify: bool = True,
) -> Path:
    """Build ``firmware/<model>-<id12>/`` and its ``.tar.gz`` from the model's finished HLS project
    and trained run; returns the bundle directory.

    ``n_vectors`` test-split jets become test vectors (all of them if the split is smaller).
    With ``verify`` the new bundle must pass the full verification (g++ C simulation of every
    vector) before anything appears under ``firmware/``. Raises TriggerMLError naming
    ``trigger-ml hls MODEL`` when the project, run or data are missing or stale.
    """
    if n_vectors < 1:
        raise UsageError(f"the number of test vectors must be at least 1, got {n_vectors}")

    def say(message: str) -> None:
        logger.info(f"{config.name}: {message}")

    src = _locate(config, workspace)
    workspace.firmware_dir.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(workspace.firmware_dir)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(os.getpid()), dir=workspace.firmware_dir))
    try:
        root = staging / "bundle"
        say(f"assembling the bundle from {src.project_dir}")
        firmware_id = _assemble(config, workspace, src, root, n_vectors)
        if verify:
            say("verifying it: hashes, g++ C simulation of the test vectors, working points")
            try:
                verifier.verify(root, log=say)
            except verifier.BundleError as error:
                raise TriggerMLError(
                    f"the new bundle fails verification: {error}",
                    "nothing was written; rebuild the HLS project with `trigger-ml hls MODEL --force`",
                ) from None
        name = bundle_name(config, firmware_id)
        final = workspace.firmware_dir / name
        # Another process may be writing the same bundle: one at a time replaces it. The
        # directory last, so a bundle directory always has its tarball beside it.
        with output_lock(final, f"bundle {name}", logger):
            remove_leftovers(final)
            with atomic_path(final.with_name(f"{name}.tar.gz")) as tmp:
                tmp.write_bytes(tarball_bytes(root, name))
            with atomic_path(final) as tmp:
                root.rename(tmp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(path.stat().st_size for path in final.rglob("*") if path.is_file())
    say(
        f"{final} ({size / 1e6:.2f} MB; tarball {final.with_name(name + '.tar.gz').stat().st_size / 1e6:.2f} MB), "
        f"firmware id {firmware_id}"
    )
    return final
