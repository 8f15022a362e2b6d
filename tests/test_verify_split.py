"""The bundle verifier in three files (verify.py, verify_files.py, verify_top.py): each small and
standalone, loaded from its own directory and never from an installed trigger-ml; the bundle
carries all three, and they verify a copy of it elsewhere with trigger_ml not importable; and
``--run-top`` puts a user's jets through trigger_top's C simulation (the bundle's own vectors
reproduce vectors/top_outputs.txt byte for byte; a malformed line is one error line, exit 2,
no output)."""

import ast
import contextlib
import importlib.util
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from trigger_ml.cli import main
from trigger_ml.firmware import verifier

slow = pytest.mark.slow
PACKAGE_DIR = Path(verifier.__file__).resolve().parent
BLOCKED = (
    "import runpy, sys; sys.modules['trigger_ml'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
"""Run a script (argv[1]) with ``import trigger_ml`` failing, whatever is installed."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    names |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    return names


def test_each_verifier_file_is_small_and_imports_only_the_standard_library_and_numpy():
    assert set(verifier.VERIFIER_FILES) == {"verify.py", "verify_files.py", "verify_top.py"}
    for source in verifier.VERIFIER_FILES.values():
        path = PACKAGE_DIR / source
        assert len(path.read_text().splitlines()) < 600, source
        assert _imports(path) <= set(sys.stdlib_module_names) | {"numpy"}, source


def _load_copy(directory: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, directory / "verify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verify_py_loads_its_siblings_from_its_own_directory(tmp_path):
    """A copy of the three files elsewhere uses its own siblings, not the package's; two loads of
    one directory share one BundleError; no __pycache__ is written beside them."""
    copy = tmp_path / "bundle"
    copy.mkdir()
    for name, source in verifier.VERIFIER_FILES.items():
        shutil.copyfile(PACKAGE_DIR / source, copy / name)
    (copy / "verify_top.py").write_text((copy / "verify_top.py").read_text() + "\nMARK = 'the copy'\n")
    first, second = _load_copy(copy, "_copy_one"), _load_copy(copy, "_copy_two")
    assert Path(first._files.__file__).parent == copy.resolve() and first._top.MARK == "the copy"
    assert first.BundleError is second.BundleError is first._top.BundleError
    assert first.BundleError is not verifier.BundleError  # the package's copy is another one
    assert not hasattr(verifier._top, "MARK")
    assert sorted(p.name for p in copy.iterdir()) == sorted(verifier.VERIFIER_FILES)
    (copy / "verify_files.py").unlink()
    other = tmp_path / "other"
    shutil.copytree(copy, other)
    with pytest.raises(ImportError, match="verify_files.py: missing beside verify"):
        _load_copy(other, "_copy_three")


def test_user_inputs_are_checked_line_by_line(tmp_path):
    path = tmp_path / "jets.txt"
    path.write_text("1 2 3 4\n-5 +6 7 9223372036854775807\n")
    assert verifier.read_user_inputs(path, 4) == [[1, 2, 3, 4], [-5, 6, 7, 2**63 - 1]]
    for text, says in (
        ("1 2 3 4\n1 2 3\n", "line 2 has 3 values, expected 4 integers per line"),
        ("1 2 3 4\n\n", "line 2 has 0 values, expected 4 integers"),
        ("1 2 3 0x4\n", "line 1 holds '0x4', not an integer; expected 4 integers"),
        ("1 2 3 4.0\n", "line 1 holds '4.0', not an integer"),
        ("1 2 3 9223372036854775808\n", "line 1 holds a value beyond a 64-bit signed integer"),
        ("", "empty; expected 4 integers per line"),
    ):
        path.write_text(text)
        with pytest.raises(
            verifier.RunTopError, match=f"^{path}: {says.replace('(', '.').replace(')', '.')}"
        ):
            verifier.read_user_inputs(path, 4)
    with pytest.raises(verifier.RunTopError, match="no such input file"):
        verifier.read_user_inputs(tmp_path / "none.txt", 4)


# --- the tiny real bundle ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(workspace, tiny_config, tiny_sample) -> Path:
    from trigger_ml.firmware import build_bundle
    from trigger_ml.pipeline import ensure_hls

    ensure_hls(tiny_config, workspace)
    return build_bundle(tiny_config, workspace, verify=False)


@slow
def test_the_bundle_holds_every_verifier_file(bundle):
    listed = {line.split("  ", 1)[1] for line in (bundle / verifier.MANIFEST).read_text().splitlines()}
    for name, source in verifier.VERIFIER_FILES.items():
        assert (bundle / name).read_bytes() == (PACKAGE_DIR / source).read_bytes(), name
        assert name in listed, name
        executable = bool((bundle / name).stat().st_mode & stat.S_IXUSR)
        assert executable == (name == "verify.py"), name
    card = (bundle / "README.md").read_text()
    assert "`verify_files.py`" in card and "--run-top" in card


def _standalone(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """python3 -I SCRIPT ARGS from ``cwd``, no PYTHONPATH, trigger_ml not importable, only g++'s
    directory and /bin on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(Path(shutil.which("g++")).parent), "/bin"])
    return subprocess.run(
        [sys.executable, "-I", "-c", BLOCKED, str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@slow
def test_standalone_copy_elsewhere_runs_the_bundles_own_top_vectors(bundle, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import trigger_ml\n")
    blocked = _standalone(probe, [], tmp_path)
    assert blocked.returncode != 0 and "ModuleNotFoundError: import of trigger_ml halted" in blocked.stderr
    copy = tmp_path / "copy" / bundle.name
    shutil.copytree(bundle, copy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = elsewhere / "tags.txt"
    done = _standalone(
        copy / "verify.py", ["--run-top", str(copy / verifier.TOP_INPUTS), "--out", "tags.txt"], elsewhere
    )
    assert done.returncode == 0, done.stderr
    assert "PASS firmware" in done.stdout and "rows written to tags.txt" in done.stdout
    assert out.read_bytes() == (copy / verifier.TOP_OUTPUTS).read_bytes()
    assert not (copy / "__pycache__").exists()
    # a malformed line: one line naming the file, the line and the count; exit 2; nothing written
    n_words = len((copy / verifier.TOP_INPUTS).read_text().splitlines()[0].split())
    lines = (copy / verifier.TOP_INPUTS).read_text().splitlines()[:3]
    lines[1] = " ".join(lines[1].split()[:-1])
    bad = elsewhere / "bad.txt"
    bad.write_text("\n".join(lines) + "\n")
    failed = _standalone(copy / "verify.py", ["--run-top", "bad.txt", "--out", "bad-tags.txt"], elsewhere)
    assert failed.returncode == 2
    errors = [line for line in failed.stderr.splitlines() if line.strip()]
    assert errors == [
        f"ERROR: bad.txt: line 2 has {n_words - 1} values, expected {n_words} integers per line "
        f"(one jet: the front end's words, see {verifier.TOP_INPUTS})"
    ]
    assert not (elsewhere / "bad-tags.txt").exists() and "compiling" not in failed.stdout


def _cli(argv: list[str]) -> tuple[int, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), [line for line in err.getvalue().splitlines() if line.strip()]


@slow
def test_trigger_ml_verify_run_top_prints_the_rows_alone_on_stdout(bundle, tmp_path):
    code, out, errors = _cli(["verify", str(bundle), "--run-top", str(bundle / verifier.TOP_INPUTS)])
    assert code == 0, errors
    assert out == (bundle / verifier.TOP_OUTPUTS).read_text()  # the log and summary went to stderr
    assert errors[-1].startswith("PASS firmware")
    bad = tmp_path / "jets.txt"
    bad.write_text("1 2 x\n")
    code, out, errors = _cli(["verify", str(bundle), "--run-top", str(bad), "--out", str(tmp_path / "t.txt")])
    assert code == 2 and len(errors) == 1, errors
    assert "compiling" not in out  # the file is read before anything is compiled
    assert errors[0].startswith(f"error: {bad}: line 1 has 3 values, expected ") and " -> " in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jets.txt"]
