"""Firmware bundles on the tiny real project: build, verify anywhere (also without the package),
name every tampered file, reproduce byte for byte, and never leave a half-written bundle."""

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from bundle_edit import resign

from trigger_ml.config import load_model_config
from trigger_ml.data.dataset import quantize_to_fixed
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware import build_bundle, verifier, verify_bundle
from trigger_ml.firmware.hostile import FAMILIES
from trigger_ml.firmware.interface import FixedType
from trigger_ml.physics import discriminant_from_logits
from trigger_ml.workspace import Workspace

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(workspace, tiny_config, tiny_sample) -> Path:
    from trigger_ml.pipeline import ensure_hls

    ensure_hls(tiny_config, workspace)
    return build_bundle(tiny_config, workspace, verify=False)


def _tarball(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + ".tar.gz")


def _flip_one_byte(path: Path) -> bytes:
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :])
    return data


@slow
def test_bundle_contents(bundle, workspace, tiny_config):
    names = set(verifier.bundle_files(bundle))
    for required in (
        "README.md",
        "MANIFEST",
        "BUILD_INFO.json",
        "verify.py",
        "provenance.json",
        "report/report.json",
        "report/report.md",
        verifier.INPUT_SPEC,
        verifier.OUTPUT_SPEC,
        "hls/firmware/myproject.cpp",
        "hls/myproject_test.cpp",
        "hls/build_prj.tcl",
        "hls/build_opt.tcl",
        "hls/build_prj_vivado_hls.tcl",
        verifier.TB_INPUTS,
        verifier.TB_OUTPUTS,
        verifier.INPUT_CODES,
        verifier.INPUT_WORDS,
        verifier.OUTPUT_CODES,
        verifier.LABELS,
    ):
        assert required in names, required
    assert not [n for n in names if n.endswith((".so", ".o", ".keras"))]
    manifest = (bundle / "MANIFEST").read_text()
    firmware_id = verifier.sha256_bytes(manifest.encode())
    assert bundle.name.endswith(firmware_id[:12]) and _tarball(bundle).is_file()
    assert sorted(line.split("  ", 1)[1] for line in manifest.splitlines()) == sorted(
        names - {"MANIFEST", "BUILD_INFO.json"}
    )
    assert (bundle / "verify.py").read_bytes() == Path(verifier.__file__).read_bytes()
    assert "python3 verify.py" in (bundle / "README.md").read_text()
    info = json.loads((bundle / "BUILD_INFO.json").read_text())
    assert info["firmware_id"] == firmware_id and info["packages"]["hls4ml"] == "1.3.0"
    provenance = json.loads((bundle / "provenance.json").read_text())
    assert provenance["config_sha256"] == tiny_config.digest()
    assert provenance["seeds"] == {"sample": 1, "split": 0, "training": 42}
    in_spec = json.loads((bundle / verifier.INPUT_SPEC).read_text())
    assert in_spec["port"]["name"] == "tracks" and in_spec["port"]["elements"] == 16 * 7
    assert in_spec["port"]["type"]["c_type"] == "ap_fixed<10,4,AP_RND_CONV,AP_SAT>"
    assert [f["name"] for f in in_spec["layout"]["features"]] == list(tiny_config.inputs.track_features)
    out_spec = json.loads((bundle / verifier.OUTPUT_SPEC).read_text())
    assert [wp["b_efficiency"] for wp in out_spec["working_points"]] == [0.70, 0.77, 0.85]
    # hls4ml's random stamp is replaced by one derived from the sources; no absolute path leaks.
    assert "Stamp: " in (bundle / "hls/hls4ml_config.yml").read_text()
    for name in names:
        if name.endswith((".json", ".md", ".yml", ".tcl", ".sh", ".cpp")):
            assert str(workspace.root) not in (bundle / name).read_text(), name


@slow
def test_verify_passes_on_the_directory(bundle):
    result = verify_bundle(bundle)
    assert result.firmware_id == verifier.sha256_bytes((bundle / "MANIFEST").read_bytes())
    assert result.n_vectors == len((bundle / verifier.LABELS).read_text().splitlines()) > 100
    assert [wp["b_efficiency"] for wp in result.working_points] == [0.70, 0.77, 0.85]
    # every hostile family ran through the C simulation, bit-exact against the QKeras model
    assert [row["family"] for row in result.hostile] == list(FAMILIES)
    assert all(row["n_exact"] == row["n_vectors"] for row in result.hostile)
    provenance = json.loads((bundle / "provenance.json").read_text())["hostile_vectors"]
    assert result.n_hostile == provenance["count"] > 50
    assert provenance["expected_outputs"].startswith("the qkeras model")
    assert "hostile vectors in 8 families bit-exact" in result.summary()


@slow
def test_a_wrong_hostile_output_is_named_with_its_family(bundle, tmp_path):
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    families = (copy / verifier.HOSTILE_FAMILIES).read_text().splitlines()
    i = families.index("beyond_range") + 3
    path = copy / verifier.HOSTILE_OUTPUT_CODES
    lines = path.read_text().splitlines()
    codes = lines[i].split()
    codes[1] = str(int(codes[1]) + 1)
    lines[i] = " ".join(codes)
    path.write_text("\n".join(lines) + "\n")
    resign(copy)
    with pytest.raises(TriggerMLError) as caught:
        verify_bundle(copy)
    assert (
        f"hostile family beyond_range: 1 of {families.count('beyond_range')} vectors differ"
        in caught.value.message
    )
    assert f"hostile vector {i} ({verifier.HOSTILE_INPUTS} line {i + 1})" in caught.value.message
    # an input code that is not the port's conversion of its value is named too
    lines[i] = " ".join(str(int(codes[1]) - 1) if k == 1 else c for k, c in enumerate(codes))
    path.write_text("\n".join(lines) + "\n")
    codes_path = copy / verifier.HOSTILE_INPUT_CODES
    rows = codes_path.read_text().splitlines()
    rows[0] = " ".join(str(int(c) - 1) for c in rows[0].split())
    codes_path.write_text("\n".join(rows) + "\n")
    resign(copy)
    with pytest.raises(TriggerMLError, match="hostile vector 0 .* is not the port's conversion of it"):
        verify_bundle(copy)


@slow
def test_a_format_1_bundle_without_hostile_vectors_still_verifies(bundle, tmp_path):
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    for name in (verifier.HOSTILE_FAMILIES, verifier.HOSTILE_INPUTS, verifier.HOSTILE_INPUT_CODES):
        (copy / name).unlink()
    resign(copy, bundle_format=verifier.READABLE_FORMATS[0])
    assert verify_bundle(copy).hostile == ()
    resign(copy, bundle_format=verifier.BUNDLE_FORMAT)  # format 2 and later must carry them
    with pytest.raises(TriggerMLError, match=f"{verifier.HOSTILE_FAMILIES}: missing"):
        verify_bundle(copy)


@slow
def test_standalone_verify_on_the_unpacked_tarball(bundle, tmp_path):
    # verify.py and its two sibling files import nothing but the standard library and numpy...
    for name in verifier.VERIFIER_FILES:
        tree = ast.parse((bundle / name).read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert imported <= set(sys.stdlib_module_names) | {"numpy"}, (name, imported)
    # ...and runs from a copy unpacked elsewhere, with only g++'s directory on PATH (not the venv's bin).
    with tarfile.open(_tarball(bundle)) as archive:
        archive.extractall(tmp_path, filter="data")
    unpacked = tmp_path / bundle.name
    gxx_dir = str(Path(shutil.which("g++")).parent)
    assert gxx_dir != str(Path(sys.executable).parent)
    env = {"PATH": os.pathsep.join([gxx_dir, "/bin"]), "HOME": str(tmp_path), "LANG": "C"}
    done = subprocess.run(
        [sys.executable, "verify.py"], cwd=unpacked, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("PASS firmware")


@slow
def test_changing_any_byte_of_any_file_is_caught_and_named(bundle, tmp_path):
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    names = verifier.bundle_files(copy)
    assert len(names) > 50
    for name in names:
        original = _flip_one_byte(copy / name)
        with pytest.raises(TriggerMLError) as caught:
            verify_bundle(copy)
        assert f": {name}: " in caught.value.message, (name, caught.value.message)
        (copy / name).write_bytes(original)
    # an unlisted file is named too, and a damaged tarball
    (copy / "hls" / "extra.cpp").write_text("// not in the manifest\n")
    with pytest.raises(TriggerMLError, match="hls/extra.cpp: not listed in MANIFEST"):
        verify_bundle(copy)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(_tarball(bundle).read_bytes())
    _flip_one_byte(broken)
    with pytest.raises(TriggerMLError, match="broken.tar.gz"):
        verify_bundle(broken)


@slow
def test_two_builds_are_byte_identical(bundle, workspace, tiny_config, tmp_path):
    tarball = _tarball(bundle).read_bytes()
    manifest = (bundle / "MANIFEST").read_bytes()
    again = build_bundle(tiny_config, workspace, verify=False)
    assert again == bundle and _tarball(again).read_bytes() == tarball
    # A workspace elsewhere whose project was rewritten by hls4ml (new random stamp), with other
    # timings and leftovers of a compile and a vendor run, gives the same bytes too.
    other = Workspace(tmp_path / "elsewhere")
    other.root.mkdir()
    for name in ("data", "runs"):
        (other.root / name).symlink_to(workspace.root / name)
    project = other.hls_dir(tiny_config.name)
    shutil.copytree(workspace.hls_dir(tiny_config.name), project)
    prj = project / "hls4ml_prj"
    for name, key in (("hls4ml_config.yml", "Stamp: "), ("build_lib.sh", "LIB_STAMP=")):
        text = (prj / name).read_text()
        old = text.split(key, 1)[1].split("\n", 1)[0]
        (prj / name).write_text(text.replace(key + old, key + "0badcafe"))
    report = json.loads((project / "report.json").read_text())
    report["timings_s"]["hls"]["compile_s"] += 1.0
    (project / "report.json").write_text(json.dumps(report))
    (prj / "firmware" / "myproject-0badcafe.so").write_bytes(b"\x7fELF")
    (prj / "myproject_prj" / "solution1").mkdir(parents=True)
    (prj / "myproject_prj" / "solution1" / "csim.log").write_text("vendor output\n")
    moved = build_bundle(tiny_config, other, verify=False)
    assert moved.name == bundle.name
    assert (moved / "MANIFEST").read_bytes() == manifest
    assert _tarball(moved).read_bytes() == tarball


@slow
def test_the_70_percent_threshold_reproduces_its_efficiency(bundle):
    spec = json.loads((bundle / verifier.OUTPUT_SPEC).read_text())
    outputs = np.array(
        [
            [float(Fraction(v)) for v in line.split()]
            for line in (bundle / verifier.TB_OUTPUTS).read_text().splitlines()
        ]
    )
    classes = np.array([int(line.split()[1]) for line in (bundle / verifier.LABELS).read_text().splitlines()])
    f_c = spec["discriminant"]["f_c"]
    disc = discriminant_from_logits(outputs, f_c)
    np.testing.assert_array_equal(verifier.discriminant(outputs, f_c), disc)  # the same bits in verify.py
    wp = next(wp for wp in spec["working_points"] if wp["b_efficiency"] == 0.70)
    b_disc = np.sort(disc[classes == 0])
    passed = b_disc > wp["threshold"]
    # The tiny test split is small enough to be all vectors: the threshold gives exactly the
    # efficiency it gives on the test split, the smallest one reachable at or above 70 % (the
    # tiny network has ties), and the next distinct cut above it falls below 70 %.
    assert len(b_disc) == wp["n_b_test_split"]
    assert passed.mean() == wp["b_efficiency_test_split"] >= 0.70
    assert np.mean(b_disc > b_disc[passed].min()) < 0.70


@slow
def test_a_failed_build_leaves_nothing(bundle, workspace, tiny_config, monkeypatch):
    before = sorted(p.name for p in workspace.firmware_dir.iterdir())
    tarball = _tarball(bundle).read_bytes()
    monkeypatch.setenv("CXX", "no-such-compiler")  # the self-check cannot compile
    with pytest.raises(TriggerMLError, match="no-such-compiler not found"):
        build_bundle(tiny_config, workspace)
    assert sorted(p.name for p in workspace.firmware_dir.iterdir()) == before
    assert _tarball(bundle).read_bytes() == tarball
    # A model without a finished HLS project names the command that makes one.
    missing = load_model_config(tiny_config.name + ",reuse=4,strategy=Latency")
    with pytest.raises(TriggerMLError, match="no HLS project") as caught:
        build_bundle(missing, workspace)
    assert "trigger-ml hls" in caught.value.fix
    assert sorted(p.name for p in workspace.firmware_dir.iterdir()) == before


def test_input_encoding_matches_the_quantizer():
    from trigger_ml.config import FixedPoint

    fp = FixedPoint(bits=10, integer=3)
    fixed = FixedType(signed=True, width=10, integer=4, rounding="AP_RND_CONV", overflow="AP_SAT")
    values = np.concatenate([np.linspace(-9, 9, 2001), (np.arange(-20, 20) + 0.5) / 64])
    np.testing.assert_array_equal(fixed.encode(values) * fixed.lsb, quantize_to_fixed(values, fp))
    wrap = FixedType(signed=True, width=4, integer=2)  # ap_fixed<4,2>: TRN, WRAP
    assert wrap.encode(np.array([1.99, 2.0, -2.25, -0.1])).tolist() == [7, -8, 7, -1]


def test_vector_formats():
    assert verifier.exact_decimal(Fraction(-3, 64)) == "-0.046875"
    assert verifier.exact_decimal(Fraction(5, 1)) == "5" and verifier.exact_decimal(Fraction(0)) == "0"
    assert verifier.exact_decimal(Fraction(1, 2**20)) == "0.00000095367431640625"
    assert verifier.pack_word([1, -1, 0], 4) == "0f1"
    assert verifier.efficiency_tolerance(0.7, 300, 300) == 0.0
    assert 0 < verifier.efficiency_tolerance(0.7, 300, 9000) < 3 * (0.21 / 300) ** 0.5
    info = {"bundle_format": verifier.BUNDLE_FORMAT, "firmware_id": "0" * 64}
    info["checksum"] = verifier.build_info_checksum(info)
    assert json.load(io.StringIO(verifier.build_info_text(info))) == info


@slow
def test_bundle_report_holds_no_build_rates_or_workspace_paths(bundle):
    """Rates measured while building are timings: the identity must not depend on them."""
    report = json.loads((bundle / "report" / "report.json").read_text())
    assert "firmware_jets_per_s" not in report["evaluation"]
    assert "jets_per_s" not in report["fidelity"]["emulator"]
    assert report["evaluation"]["path"].startswith("data/") and report["evaluation"]["path"].endswith(
        "/jets.h5"
    )
    assert "## Physics on the evaluation sample" in (bundle / "report" / "report.md").read_text()
