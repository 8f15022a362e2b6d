"""Bad input through every entry point of the command line: each row of docs/bad-input.md is run
here through ``trigger_ml.cli.main`` in-process, in an empty workspace, and must give its exit
code, exactly one line on stderr naming the problem and the fix (``error: … -> …``), and leave
nothing behind: no file or directory in the workspace, the inputs untouched.

``python tests/test_bad_input.py`` prints the table of docs/bad-input.md from real runs.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from trigger_ml.cli import main
from trigger_ml.firmware import verifier

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
USER_META = (
    "name: m\nsample: {n_jets: 800, jets_per_shard: 400}\nevaluation: {n_jets: 1200, jets_per_shard: 600}\n"
    "inputs: {max_tracks: 16}\nclasses: [b, c, light]\ninput_type: {bits: 10, integer: 3}\nscaling: fit\n"
)


@dataclass(frozen=True)
class Row:
    entry: str  # the entry point (docs/bad-input.md groups by it)
    tried: str  # what was tried, in words; also the test id
    argv: tuple[str, ...]  # "{in}" stands for the inputs directory
    exit_code: int
    says: str  # a fragment of the one error line


ROWS = (
    Row("model spec", "unknown model", ("hls", "nonexistent"), 2, "unknown model 'nonexistent'"),
    Row("model spec", "a path as model name", ("hls", "../../etc/passwd"), 2, "unknown model"),
    Row("model spec", "empty model name", ("hls", ""), 2, "unknown model ''"),
    Row("overrides", "override without =", ("hls", "dips-small@bits"), 2, "is not key=value"),
    Row("overrides", "unknown key", ("hls", "dips-small@nosuchkey=1"), 2, "unknown key 'nosuchkey'"),
    Row("overrides", "value of the wrong type", ("hls", "dips-small@bits=foo"), 2, "valid integer"),
    Row("overrides", "unclosed list", ("hls", "dips-small@architecture.phi_widths=[8,"), 2, "phi_widths"),
    Row("overrides", "out of range", ("train", "dips-small@epochs=-1"), 2, "greater than or equal to 1"),
    Row(
        "overrides",
        "huge value",
        ("hls", "dips-small@inputs.max_tracks=1000000"),
        2,
        "less than or equal to 64",
    ),
    Row(
        "overrides",
        "track count not a power of two",
        ("hls", "dips-small@inputs.max_tracks=12"),
        2,
        "power of two",
    ),
    Row(
        "overrides",
        "split fractions not adding to 1",
        ("hls", "dips-small@split.train=0.9"),
        2,
        "add up to 1",
    ),
    Row("config file", "missing file", ("show", "--config", "{in}/none.yaml"), 2, "does not exist"),
    Row("config file", "a directory", ("show", "--config", "{in}/adir"), 2, "is a directory"),
    Row("config file", "not YAML", ("show", "--config", "{in}/garbage.yaml"), 2, "not valid YAML"),
    Row("config file", "binary bytes", ("show", "--config", "{in}/binary.yaml"), 2, "not UTF-8 text"),
    Row("config file", "Latin-1 text", ("show", "--config", "{in}/latin1.yaml"), 2, "not UTF-8 text"),
    Row("config file", "empty file", ("show", "--config", "{in}/empty.yaml"), 2, "expected a mapping"),
    Row("config file", "a list at the top", ("show", "--config", "{in}/list.yaml"), 2, "expected a mapping"),
    Row("config file", "unknown key", ("show", "--config", "{in}/unknown.yaml"), 2, "unknown key 'foo'"),
    Row("scan spec", "missing file", ("scan", "{in}/none.yaml"), 2, "does not exist"),
    Row("scan spec", "a directory", ("scan", "{in}/adir"), 2, "is a directory"),
    Row("scan spec", "binary bytes", ("scan", "{in}/binary.yaml"), 2, "not UTF-8 text"),
    Row("scan spec", "not YAML", ("scan", "{in}/garbage.yaml"), 2, "not valid YAML"),
    Row("scan spec", "unknown key", ("scan", "{in}/scan-unknown.yaml"), 2, "unknown key 'foo'"),
    Row("scan spec", "empty grid", ("scan", "{in}/scan-empty.yaml"), 2, "lists no values"),
    Row("scan spec", "grid values not a list", ("scan", "{in}/scan-scalar.yaml"), 2, "valid list"),
    Row("scan spec", "unknown base model", ("scan", "{in}/scan-base.yaml"), 2, "unknown model 'nonexistent'"),
    Row(
        "scan spec",
        "zero workers",
        ("scan", "{in}/scan-ok.yaml", "--workers", "0"),
        2,
        "--workers must be at least 1",
    ),
    Row(
        "symbolic settings",
        "unknown setting",
        ("distill", "--sr", "foo=1"),
        2,
        "unknown symbolic setting 'foo'",
    ),
    Row(
        "symbolic settings",
        "bad value",
        ("distill", "--sr", "backend=nosuch"),
        2,
        "'auto', 'pysr' or 'operon'",
    ),
    Row("symbolic settings", "unclosed list", ("distill", "--sr", "max_complexity=[5,"), 2, "max_complexity"),
    Row(
        "symbolic settings", "missing file", ("distill", "--sr-config", "{in}/none.yaml"), 2, "does not exist"
    ),
    Row("symbolic settings", "a directory", ("distill", "--sr-config", "{in}/adir"), 2, "is a directory"),
    Row(
        "symbolic settings", "not YAML", ("distill", "--sr-config", "{in}/garbage.yaml"), 2, "not valid YAML"
    ),
    Row("convert-ftag", "missing file", ("convert-ftag", "{in}/none.h5"), 2, "does not exist"),
    Row(
        "convert-ftag", "text, not HDF5", ("convert-ftag", "{in}/text.h5"), 1, "unreadable or truncated HDF5"
    ),
    Row("convert-ftag", "empty file", ("convert-ftag", "{in}/empty.h5"), 1, "unreadable or truncated HDF5"),
    Row("convert-ftag", "truncated HDF5", ("convert-ftag", "{in}/truncated.h5"), 1, "truncated file"),
    Row("convert-ftag", "HDF5 without jets", ("convert-ftag", "{in}/nojets.h5"), 1, "no 'jets' dataset"),
    Row(
        "convert-ftag", "jets without tracks", ("convert-ftag", "{in}/jetsonly.h5"), 1, "no 'tracks' dataset"
    ),
    Row(
        "convert-ftag",
        "mapping file missing",
        ("convert-ftag", "{in}/jetsonly.h5", "--mapping", "{in}/none.yaml"),
        2,
        "does not exist",
    ),
    Row(
        "convert-ftag",
        "mapping without source",
        ("convert-ftag", "{in}/jetsonly.h5", "--mapping", "{in}/mapping.yaml"),
        2,
        "names no source field",
    ),
    Row(
        "convert-ftag",
        "zero tracks",
        ("convert-ftag", "{in}/jetsonly.h5", "--max-tracks", "0"),
        2,
        "--max-tracks must be >= 1",
    ),
    Row("sample.path", "missing file", ("train", "dips-small@sample.path={in}/none.h5"), 2, "does not exist"),
    Row("sample.path", "a directory", ("train", "dips-small@sample.path={in}/adir"), 2, "is not a file"),
    Row(
        "sample.path",
        "text, not HDF5",
        ("train", "dips-small@sample.path={in}/text.h5"),
        1,
        "unreadable or truncated HDF5",
    ),
    Row(
        "sample.path",
        "truncated HDF5",
        ("train", "dips-small@sample.path={in}/truncated.h5"),
        1,
        "truncated file",
    ),
    Row(
        "sample.path",
        "HDF5 without jets",
        ("train", "dips-small@sample.path={in}/nojets.h5"),
        1,
        "no 'jets' dataset",
    ),
    Row(
        "sample.path",
        "evaluation.path without a file sample",
        ("hls", "dips-small@evaluation.path={in}/nojets.h5"),
        2,
        "evaluation.path is for a file sample",
    ),
    Row("verify", "missing bundle", ("verify", "{in}/none.tar.gz"), 2, "does not exist"),
    Row("verify", "not a tarball", ("verify", "{in}/text.tar.gz"), 1, "not a readable .tar.gz"),
    Row("verify", "truncated tarball", ("verify", "{in}/truncated.tar.gz"), 1, "not a readable .tar.gz"),
    Row(
        "verify",
        "tampered tarball",
        ("verify", "{in}/tampered.tar.gz"),
        1,
        "notes.txt: modified (sha256 differs from MANIFEST)",
    ),
    Row(
        "verify",
        "tarball escaping its directory",
        ("verify", "{in}/unsafe.tar.gz"),
        1,
        "unsafe member '../escape.txt'",
    ),
    Row(
        "verify",
        "bundle of an unknown format",
        ("verify", "{in}/future.tar.gz"),
        1,
        "bundle format 'trigger-ml-firmware-bundle/9'",
    ),
    Row("verify", "a directory that is no bundle", ("verify", "{in}/adir"), 1, "BUILD_INFO.json: missing"),
    Row(
        "verify --run-top",
        "a line of the wrong length",
        ("verify", "{in}/top.tar.gz", "--run-top", "{in}/jets-short.txt", "--out", "{in}/tags.txt"),
        2,
        "jets-short.txt: line 2 has 3 values, expected 4 integers per line",
    ),
    Row(
        "verify --run-top",
        "not an integer",
        ("verify", "{in}/top.tar.gz", "--run-top", "{in}/jets-float.txt", "--out", "{in}/tags.txt"),
        2,
        "jets-float.txt: line 1 holds '4.5', not an integer; expected 4 integers per line",
    ),
    Row(
        "verify --run-top",
        "empty file",
        ("verify", "{in}/top.tar.gz", "--run-top", "{in}/empty.yaml", "--out", "{in}/tags.txt"),
        2,
        "empty.yaml: empty; expected 4 integers per line",
    ),
    Row(
        "verify --run-top",
        "missing file",
        ("verify", "{in}/top.tar.gz", "--run-top", "{in}/none.txt", "--out", "{in}/tags.txt"),
        2,
        "none.txt: no such input file",
    ),
    Row(
        "verify --run-top",
        "bundle without trigger_top",
        ("verify", "{in}/notop.tar.gz", "--run-top", "{in}/jets-short.txt", "--out", "{in}/tags.txt"),
        2,
        "--run-top needs trigger_top, and this bundle has none",
    ),
    Row(
        "verify --run-top",
        "--out without --run-top",
        ("verify", "{in}/top.tar.gz", "--out", "{in}/tags.txt"),
        2,
        "--out needs --run-top",
    ),
    Row("--keras", "missing model file", ("hls", "--keras", "{in}/none.h5"), 2, "does not exist"),
    Row("--keras", "a directory", ("hls", "--keras", "{in}/adir"), 2, "is a directory"),
    Row("--keras", "no metadata beside it", ("hls", "--keras", "{in}/text.h5"), 2, "no metadata file"),
    Row(
        "--keras",
        "text, not a model",
        ("hls", "--keras", "{in}/model.h5"),
        2,
        "not a loadable Keras/QKeras model",
    ),
    Row(
        "--keras",
        "HDF5 that is not a model",
        ("hls", "--keras", "{in}/nojets.h5", "--meta", "{in}/model.yaml"),
        2,
        "not a loadable Keras/QKeras model",
    ),
    Row(
        "--keras",
        "metadata with an unknown key",
        ("hls", "--keras", "{in}/model.h5", "--meta", "{in}/unknown.yaml"),
        2,
        "unknown key(s) ['foo']",
    ),
    Row(
        "--keras",
        "--meta without --keras",
        ("hls", "--meta", "{in}/model.yaml"),
        2,
        "--meta describes a model given with --keras",
    ),
    Row(
        "other options",
        "zero test vectors",
        ("firmware", "--vectors", "0"),
        2,
        "--vectors must be at least 1",
    ),
    Row(
        "other options",
        "zero seeds",
        ("compare", "dips-small", "--seeds", "0"),
        2,
        "--seeds must be between 1 and",
    ),
    Row(
        "other options",
        "zero workers",
        ("compare", "dips-small", "--workers", "0"),
        2,
        "--workers must be at least 1",
    ),
    Row(
        "other options",
        "cost of a directory that is no project",
        ("cost", "{in}/adir"),
        2,
        "is not an HLS project",
    ),
)


# --- the inputs -------------------------------------------------------------------------------


def _fake_bundle(
    root: Path, bundle_format: str = verifier.BUNDLE_FORMAT, decision: dict | None = None
) -> Path:
    """A tiny bundle whose MANIFEST and BUILD_INFO.json are consistent (what a tampered copy of a
    real one looks like to the first checks); with ``decision``, specs whose output spec has that
    decision section (what --run-top reads before compiling)."""
    root.mkdir(parents=True)
    files = {"notes.txt": "firmware notes\n"}
    if decision is not None:
        files |= {
            verifier.INPUT_SPEC: "{}\n",
            verifier.OUTPUT_SPEC: json.dumps({"decision": decision}) + "\n",
        }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    manifest = verifier.manifest_text({name: verifier.sha256_file(root / name) for name in files})
    (root / "MANIFEST").write_text(manifest)
    info = {"bundle_format": bundle_format, "firmware_id": verifier.sha256_bytes(manifest.encode())}
    info["checksum"] = verifier.build_info_checksum(info)
    (root / "BUILD_INFO.json").write_text(verifier.build_info_text(info))
    return root


def _tar(source: Path, target: Path, extra: dict[str, bytes] | None = None) -> None:
    from trigger_ml.firmware.bundle import tarball_bytes

    data = tarball_bytes(source, source.name)
    if extra:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as original:
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                for member in original.getmembers():
                    archive.addfile(member, original.extractfile(member) if member.isfile() else None)
                for name, content in extra.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(content)
                    archive.addfile(info, io.BytesIO(content))
        data = gzip.compress(buffer.getvalue())
    target.write_bytes(data)


def make_inputs(folder: Path) -> Path:
    """Every bad input the rows name, in ``folder``."""
    import h5py
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adir").mkdir()
    texts = {
        "garbage.yaml": "a: [1, 2\n  b: }",
        "empty.yaml": "",
        "list.yaml": "- 1\n- 2\n",
        "unknown.yaml": "name: x\nfoo: 1\n",
        "scan-unknown.yaml": "name: s\nbase: dips-small\ngrid: {bits: [4]}\nfoo: 1\n",
        "scan-empty.yaml": "name: s\nbase: dips-small\ngrid: {bits: []}\n",
        "scan-scalar.yaml": "name: s\nbase: dips-small\ngrid: {bits: 4}\n",
        "scan-base.yaml": "name: s\nbase: nonexistent\ngrid: {bits: [4]}\n",
        "scan-ok.yaml": "name: s\nbase: dips-small\ngrid: {bits: [4]}\n",
        "mapping.yaml": "jets: {pt: [1]}\n",
        "text.h5": "not HDF5\n",
        "text.tar.gz": "not a tarball\n",
        "model.h5": "not a model\n",
        "model.yaml": USER_META,
    }
    for name, text in texts.items():
        (folder / name).write_text(text)
    (folder / "binary.yaml").write_bytes(bytes(range(256)))
    (folder / "latin1.yaml").write_bytes("name: café\n".encode("latin-1"))
    (folder / "empty.h5").write_bytes(b"")
    with h5py.File(folder / "nojets.h5", "w") as handle:
        handle.create_dataset("x", data=np.arange(5), track_times=False)
    with h5py.File(folder / "jetsonly.h5", "w") as handle:
        handle.create_dataset(
            "jets", data=np.zeros(20000, dtype=[("pt", "f4"), ("eta", "f4")]), track_times=False
        )
    data = (folder / "jetsonly.h5").read_bytes()
    (folder / "truncated.h5").write_bytes(data[: len(data) // 2])
    staging = folder / ".staging"
    _tar(_fake_bundle(staging / "bundle-ok"), folder / "good.tar.gz")
    good = (folder / "good.tar.gz").read_bytes()
    (folder / "truncated.tar.gz").write_bytes(good[: len(good) // 2])
    (staging / "bundle-ok" / "notes.txt").write_text("firmware notes, edited\n")
    _tar(staging / "bundle-ok", folder / "tampered.tar.gz")
    _tar(_fake_bundle(staging / "bundle-escape"), folder / "unsafe.tar.gz", {"../escape.txt": b"x"})
    _tar(_fake_bundle(staging / "bundle-future", "trigger-ml-firmware-bundle/9"), folder / "future.tar.gz")
    _tar(_fake_bundle(staging / "bundle-top", decision={"n_words": 4}), folder / "top.tar.gz")
    old_format = _fake_bundle(staging / "bundle-notop", verifier.READABLE_FORMATS[1], decision={"n_words": 4})
    _tar(old_format, folder / "notop.tar.gz")
    (folder / "jets-short.txt").write_text("1 2 3 4\n1 2 3\n")
    (folder / "jets-float.txt").write_text("1 2 3 4.5\n")
    import shutil

    shutil.rmtree(staging)
    return folder


def run_row(row: Row, inputs: Path) -> tuple[int, list[str], str]:
    """(exit code, stderr lines, stdout) of the row's command."""
    argv = [arg.replace("{in}", str(inputs)) for arg in row.argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, [line for line in err.getvalue().splitlines() if line.strip()], out.getvalue()


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("bad-inputs"))


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.entry}: {row.tried}" for row in ROWS])
def test_bad_input_is_one_line_an_exit_code_and_nothing_written(
    row: Row, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.setenv("TRIGGER_ML_HOME", str(workspace))
    monkeypatch.chdir(workspace)
    before = _listing(inputs)
    code, errors, _ = run_row(row, inputs)
    assert code == row.exit_code, errors
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: ") and " -> " in errors[0], errors[0]
    assert row.says in errors[0], errors[0]
    assert not list(workspace.iterdir()), f"left behind: {sorted(workspace.rglob('*'))}"
    assert _listing(inputs) == before


def test_every_row_is_in_the_documented_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [f"{row.entry}: {row.tried}" for row in ROWS if f"| {row.entry} | {row.tried} |" not in text]
    assert not missing, (
        f"docs/bad-input.md lacks rows {missing}: regenerate it with `python tests/test_bad_input.py`"
    )


def _markdown(inputs: Path) -> str:
    lines = [
        "| entry point | what was tried | command | exit | what the user gets (stderr, one line) |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        code, errors, _ = run_row(row, inputs)
        said = (errors[0] if len(errors) == 1 else f"{len(errors)} lines!").replace(str(inputs), "IN")
        command = " ".join(["trigger-ml", *(json.dumps(a) if (not a or " " in a) else a for a in row.argv)])
        command = command.replace("{in}", "IN")
        lines.append(f"| {row.entry} | {row.tried} | `{command}` | {code} | {said.replace('|', '∣')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        folder = make_inputs(Path(scratch) / "IN")
        workspace = Path(scratch) / "workspace"
        workspace.mkdir()
        os.environ["TRIGGER_ML_HOME"] = str(workspace)
        os.chdir(workspace)
        sys.stdout.write(_markdown(folder))
