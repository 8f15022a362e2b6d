"""A BDT's firmware bundle (``trigger-ml firmware``): what differs from an hls4ml network's.

``hls/`` of the bundle holds conifer's HLS project (``firmware/BDT.h``, ``parameters.h`` with every
tree, ``bdt_tagger.cpp``, ``build_hls.tcl`` ...: the synthesisable source) and, as the reference
testbench that ``verify.py`` compiles with the bundle's usual protocol (``firmware/<project>.cpp``
then ``<project>_test.cpp``, project ``tree_csim``):

* ``firmware/tree_csim.cpp``: the run-time tree program of :mod:`trigger_ml.bdt.csim` as a
  function, reading ``firmware/trees.txt`` (the decimal literals of ``parameters.h``) into the
  project's ``ap_fixed`` types (``firmware/types.h``) once: compiled in seconds whatever the trees;
* ``tree_csim_test.cpp``: reads ``tb_data/tb_input_features.dat``, writes the exact scores to
  ``tb_data/csim_results.log`` (what ``verify.py`` compares, test and hostile vectors alike); for
  an ensemble of at most ``csim.HLS_CSIM_MAX_TREES`` trees it also runs conifer's HLS code
  (``bdt_tagger``) on every vector and exits with status 3 at the first difference.

The headers the code needs travel with it: Xilinx's ``ap_types`` (hls4ml's copy) in
``firmware/ap_types/``, conifer's ``hls_stream.h`` in ``firmware/``. Expected outputs of the hostile
vectors: the quantized trees' emulator (:class:`trigger_ml.bdt.ensemble.QuantizedEnsemble`), which
the C program equals on every input (tests/test_bdt.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.bdt import csim
from trigger_ml.config import FixedPoint, ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.interface import FixedType, Interface, Port

PROJECT = "tree_csim"
"""The bundle's reference testbench (``in_spec['project']``): what ``verify.py`` compiles."""
CONIFER_FILES = ("build_hls.tcl", "vivado_synth.tcl", "hls_parameters.tcl", f"{csim.PROJECT_NAME}_test.cpp")

TREE_LIB_CPP = r"""// The trees of conifer's parameters.h read at run time and evaluated with conifer's arithmetic
// (BDT_unrolled.h: x <= threshold in ap_fixed, the class scores summed in score_t).
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "types.h"

namespace {
struct Node { int feature, left, right; threshold_t threshold; score_t value; };
struct Tree { int cls; std::vector<Node> nodes; };
int n_features = -1, n_classes = 0;
std::vector<score_t> init;
std::vector<Tree> trees;

void load() {
  FILE* ft = std::fopen("firmware/trees.txt", "r");
  int n_trees;
  if (!ft || std::fscanf(ft, "%d %d %d", &n_features, &n_classes, &n_trees) != 3) { std::fprintf(stderr, "firmware/trees.txt unreadable\n"); std::exit(3); }
  char buf[128], thr[128], val[128];
  init.resize(n_classes);
  for (int c = 0; c < n_classes; c++) { if (std::fscanf(ft, "%127s", buf) != 1) std::exit(3); init[c] = std::strtod(buf, nullptr); }
  trees.resize(n_trees);
  for (auto& t : trees) {
    int n;
    if (std::fscanf(ft, "%d %d", &t.cls, &n) != 2) std::exit(3);
    t.nodes.resize(n);
    for (auto& node : t.nodes) {
      if (std::fscanf(ft, "%d %127s %127s %d %d", &node.feature, thr, val, &node.left, &node.right) != 5) std::exit(3);
      node.threshold = std::strtod(thr, nullptr);  // as the literal in parameters.h: AP_TRN, AP_WRAP
      node.value = std::strtod(val, nullptr);
    }
  }
  std::fclose(ft);
}
}  // namespace

int tree_csim_features() { if (n_features < 0) load(); return n_features; }
int tree_csim_classes() { if (n_features < 0) load(); return n_classes; }

// One jet: inputs as doubles (converted to input_t as the port converts them), scores as doubles (exact).
void tree_csim(const double* row, double* out) {
  if (n_features < 0) load();
  std::vector<input_t> x(n_features);
  for (int i = 0; i < n_features; i++) x[i] = row[i];
  std::vector<score_t> score(init);
  for (const auto& t : trees) {
    int n = 0;
    while (t.nodes[n].left != -1) n = (x[t.nodes[n].feature] <= t.nodes[n].threshold) ? t.nodes[n].left : t.nodes[n].right;
    score[t.cls] += t.nodes[n].value;
  }
  for (int c = 0; c < n_classes; c++) out[c] = score[c].to_double();
}
"""

TESTBENCH_CPP = r"""// Reference testbench of the bundle: the run-time tree program on every line of
// tb_data/tb_input_features.dat, exact scores to tb_data/csim_results.log.{conifer_note}
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
{conifer_include}
int tree_csim_features();
int tree_csim_classes();
void tree_csim(const double* row, double* out);

int main() {
  std::ifstream fin("tb_data/tb_input_features.dat");
  FILE* fout = std::fopen("tb_data/csim_results.log", "w");
  if (!fin.is_open() || !fout) { std::fprintf(stderr, "tb_data/ unreadable\n"); return 4; }
  const int nf = tree_csim_features(), nc = tree_csim_classes();
  std::vector<double> row(nf), out(nc);
  std::string line;
  long vector = 0;
  while (std::getline(fin, line)) {
    std::istringstream tokens(line);
    std::string token;
    int i = 0;
    while (tokens >> token) { if (i < nf) row[i] = std::strtod(token.c_str(), nullptr); i++; }
    if (i == 0) continue;
    if (i != nf) { std::fprintf(stderr, "vector %ld: %d inputs, expected %d\n", vector, i, nf); return 5; }
    tree_csim(row.data(), out.data());
{conifer_check}
    for (int c = 0; c < nc; c++) std::fprintf(fout, c ? " %.*f" : "%.*f", {score_frac}, out[c]);  // exact: on the score grid
    std::fprintf(fout, "\n");
    vector++;
  }
  std::fclose(fout);
  return 0;
}
"""

CONIFER_INCLUDE = """// conifer's HLS code itself (one translation unit), checked against the run-time program
#include "firmware/BDT.cpp"
#include "firmware/{project}.cpp"
"""

CONIFER_CHECK = r"""    {
      input_arr_t x;
      score_arr_t score;
      for (int k = 0; k < nf; k++) x[k] = row[k];
      {project}(x, score);
      for (int c = 0; c < nc; c++) {
        if (score[c].to_double() != out[c]) {
          std::fprintf(stderr, "vector %ld: conifer's HLS code gives %.17g for class %d, the run-time program %.17g\n",
                       vector, score[c].to_double(), c, out[c]);
          return 3;
        }
      }
    }"""


def _fixed(fp: FixedPoint) -> FixedType:
    """The ``ap_fixed<W, I>`` (default modes AP_TRN, AP_WRAP) of a QKeras-convention type."""
    return FixedType(signed=True, width=fp.bits, integer=fp.integer + 1)


def bdt_interface(config: ModelConfig, n_features: int) -> Interface:
    """The ports of conifer's top function ``bdt_tagger(input_arr_t x, score_arr_t score)``,
    as the bundle's reference testbench ``tree_csim`` takes them (same types)."""
    settings = config.bdt
    assert settings is not None
    pragma = "#pragma HLS array_partition variable={name}"
    return Interface(
        project=PROJECT,
        input=Port(
            "x", "input_t", str(n_features), _fixed(config.quantization.input), (pragma.format(name="x"),)
        ),
        output=Port(
            "score",
            "score_t",
            str(len(config.architecture.classes)),
            _fixed(settings.score),
            (pragma.format(name="score"),),
        ),
    )


def copy_bdt_project(config: ModelConfig, project_dir: Path, dst: Path) -> str:
    """Copy conifer's HLS project of ``project_dir`` and the reference testbench into the bundle's
    ``dst`` (``hls/``); returns the name of the build script (for the model card)."""
    source = project_dir / csim.CONIFER_SUBDIR
    trees = project_dir / "tree_csim" / "trees.txt"
    missing = [
        p for p in (source / "firmware" / "parameters.h", source / "build_hls.tcl", trees) if not p.is_file()
    ]
    if missing:
        raise TriggerMLError(f"{missing[0]} is missing", f"run `trigger-ml hls '{config.name}' --force`")
    shutil.copytree(source / "firmware", dst / "firmware")
    for name in CONIFER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, dst / name)
    shutil.copytree(csim.ap_types_include(), dst / "firmware" / "ap_types")
    shutil.copyfile(csim.hls_stream_include() / "hls_stream.h", dst / "firmware" / "hls_stream.h")
    shutil.copyfile(trees, dst / "firmware" / "trees.txt")
    shutil.copyfile(project_dir / "tree_csim" / "types.h", dst / "firmware" / "types.h")
    (dst / "firmware" / f"{PROJECT}.cpp").write_text(TREE_LIB_CPP, encoding="utf-8")
    n_trees = int((dst / "firmware" / "trees.txt").read_text(encoding="utf-8").split()[2])
    small = n_trees <= csim.HLS_CSIM_MAX_TREES
    settings = config.bdt
    assert settings is not None
    testbench = (
        TESTBENCH_CPP.replace(
            "{conifer_note}",
            "\n// With conifer's HLS code on every vector: exit status 3 at the first difference."
            if small
            else f"\n// ({n_trees} trees > {csim.HLS_CSIM_MAX_TREES}: conifer's HLS code is not compiled here.)",
        )
        .replace("{conifer_include}", CONIFER_INCLUDE if small else "")
        .replace("{conifer_check}", CONIFER_CHECK if small else "")
        .replace("{project}", csim.PROJECT_NAME)
        .replace("{score_frac}", str(settings.score.bits - 1 - settings.score.integer))
    )
    (dst / f"{PROJECT}_test.cpp").write_text(testbench, encoding="utf-8")
    (dst / "tb_data").mkdir(exist_ok=True)
    return "build_hls.tcl"


def hostile_expected(config: ModelConfig, run_dir: Path, values: np.ndarray) -> np.ndarray:
    """The quantized trees' (emulator's) scores on the hostile ``values`` (float32 numbers,
    converted to the input type by the emulator as the port converts them)."""
    from trigger_ml.bdt.train import load_trees, quantized_ensemble

    quantized = quantized_ensemble(config, load_trees(run_dir))
    return quantized.logits(np.asarray(values, dtype=np.float64))[0]


def card_sections(config: ModelConfig, report: dict[str, Any]) -> dict[str, str]:
    """Paragraphs of a BDT's model card that replace the network's (by their first words)."""
    settings = config.bdt
    assert settings is not None
    bdt = report["bdt"]
    hls = report["fidelity"]["hls_csim"]
    return {
        "architecture": (
            f"- architecture: gradient-boosted decision trees (scikit-learn), {settings.n_trees} rounds x "
            f"{len(config.architecture.classes)} classes = {bdt['n_trees_total']} trees of depth <= "
            f"{settings.max_depth}, {bdt['n_splits']} splits, {bdt['n_leaves']} leaves; thresholds "
            f"`ap_fixed<{settings.threshold.bits},{settings.threshold.integer + 1}>`, scores "
            f"`ap_fixed<{settings.score.bits},{settings.score.integer + 1}>`"
        ),
        "training": (
            f"- training: scikit-learn GradientBoostingClassifier on the quantized inputs, learning rate "
            f"{settings.learning_rate}, subsample {settings.subsample}, seed {config.training.seed}"
        ),
        "build": "\n".join(
            [
                "```sh",
                "cp -r hls ~/build/tagger && cd ~/build/tagger   # work on a copy: the bundle stays verifiable",
                "vivado_hls -f build_hls.tcl    # conifer's script: C synthesis of bdt_tagger (firmware/)",
                "```",
                "",
                f"`hls/` is conifer {bdt['conifer_version']}'s Xilinx HLS project (unrolled): the top function "
                f"`{csim.PROJECT_NAME}(input_arr_t x, score_arr_t score)` in `firmware/{csim.PROJECT_NAME}.cpp`, "
                "every tree in `firmware/parameters.h`. The reference testbench that `verify.py` compiles is "
                f"`{PROJECT}_test.cpp` with `firmware/{PROJECT}.cpp`: the same trees (`firmware/trees.txt`, the "
                "literals of parameters.h) evaluated at run time in the same `ap_fixed` types, compiled in "
                "seconds whatever the number of trees; "
                + (
                    "it also runs conifer's HLS code on every vector and stops at the first difference."
                    if hls["n_jets"]
                    else f"conifer's HLS code itself is compiled only for ensembles of at most "
                    f"{csim.HLS_CSIM_MAX_TREES} trees (docs/bdt.md: g++ time grows with the trees)."
                ),
            ]
        ),
    }


def hostile_check(config: ModelConfig, workspace: Any, workdir: Path) -> list[dict[str, Any]]:
    """The project's run-time C simulation (a copy in ``workdir``) against the quantized trees on
    every hostile family of the flat input layout (``InputLayout(0, (), n_inputs)``: the families
    that apply)."""
    from trigger_ml.firmware.hostile import InputLayout, agreement, hostile_vectors
    from trigger_ml.pipeline import ensure_trained

    project = workspace.hls_dir(config.name) / "tree_csim"
    if not (project / "tree_csim").is_file():
        raise TriggerMLError(
            f"no C simulation of {config.name} at {project}", f"run `trigger-ml hls '{config.name}'`"
        )
    copy = Path(workdir) / "hostile_tree_csim"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(project, copy)
    n_features = int((copy / "trees.txt").read_text(encoding="utf-8").split()[0])
    vectors = hostile_vectors(InputLayout(0, (), n_features), _fixed(config.quantization.input))
    got = csim.tree_csim_predict(copy, vectors.values, len(config.architecture.classes))
    run = ensure_trained(config, workspace)
    return agreement(vectors.families, got, hostile_expected(config, run.path, vectors.values))
