"""The conifer HLS project of an ensemble, and its g++ C simulation.

``write_conifer_project`` writes conifer's Xilinx HLS project (``hls_projects/<model>/conifer_prj``:
``firmware/BDT.h``, ``parameters.h`` with every tree, ``build_hls.tcl`` …) from the run's
``trees.json``, with conifer's Python API, then makes it byte-reproducible (conifer stamps its
JSON with the time and host).

Compiling conifer's unrolled HLS code with g++ grows with the number of trees: every tree is
its own template instance with one-hot weight matrices (measured in docs/bdt.md: 30 trees of
depth 3 on 43 inputs took 43 s of CPU at -O1). So the trees are simulated two ways:

* ``tree_csim`` — one g++ program per project, compiled once whatever the number of trees:
  it reads the trees (the same decimal literals conifer writes into ``parameters.h``) at run
  time into the project's own ``ap_fixed`` types and evaluates them with conifer's arithmetic
  (``x <= threshold`` in ap_fixed, score sum in ``score_t``); every jet goes through one run.
* ``hls_csim`` — conifer's HLS sources themselves (``firmware/BDT.cpp`` and the top function)
  with a small testbench, for ensembles up to ``HLS_CSIM_MAX_TREES`` trees (tests, small models):
  checks that the run-time program and the HLS code agree bit for bit.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.bdt.ensemble import hls_type
from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import dump_json, write_text_atomic
from trigger_ml.logs import stage_logger
from trigger_ml.tools import run_tool, timeout_variable, tool_timeout

logger = stage_logger("hls")

CONIFER_SUBDIR = "conifer_prj"
PROJECT_NAME = "bdt_tagger"
HLS_CSIM_MAX_TREES = 24
"""Ensembles with at most this many trees also get conifer's HLS code compiled and simulated."""
GXX_TIMEOUT_S = 1800.0


def ap_types_include() -> Path:
    """hls4ml's copy of Xilinx's ap_types headers (conifer's wheel does not ship them)."""
    import hls4ml

    path = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_fixed.h").is_file():
        raise TriggerMLError(f"no ap_fixed.h under {path}", "reinstall hls4ml (`make setup`)")
    return path


def hls_stream_include() -> Path:
    import conifer

    return Path(conifer.__path__[0]) / "external" / "hls"


def conifer_config(config: ModelConfig, out_dir: Path) -> dict[str, Any]:
    settings = config.bdt
    assert settings is not None
    return {
        "Backend": "xilinxhls",
        "ProjectName": PROJECT_NAME,
        "OutputDir": str(out_dir),
        "XilinxPart": config.hls.part,
        "ClockPeriod": config.hls.clock_period_ns,
        "Unroll": True,
        "InputPrecision": hls_type(config.quantization.input),
        "ThresholdPrecision": hls_type(settings.threshold),
        "ScorePrecision": hls_type(settings.score),
        "WeightPrecision": "ap_int<2>",
    }


def write_conifer_project(config: ModelConfig, document: dict[str, Any], out_dir: Path) -> None:
    """conifer's HLS project of the ensemble ``document`` (trees.json) in ``out_dir``."""
    import conifer

    model = conifer.model.make_model(dict(document), conifer_config(config, out_dir))
    model.write()
    # Reproducible bytes: conifer's JSON carries the time and host, its bridge a time stamp.
    saved = out_dir / f"{PROJECT_NAME}.json"
    content = {**document, "config": model.config._to_dict()}
    content["config"]["output_dir"] = "."
    write_text_atomic(saved, dump_json(content))
    bridge = out_dir / "bridge.cpp"
    if bridge.is_file():
        write_text_atomic(
            bridge, bridge.read_text().replace(f"conifer_bridge_{model._stamp}", "conifer_bridge")
        )


def trees_text(document: dict[str, Any]) -> str:
    """The trees for the run-time program, numbers as conifer writes them into parameters.h
    (Python's ``str`` of each float: the shortest decimal that reads back the same double)."""
    rounds = document["trees"]
    n_classes = len(document["init_predict"])
    lines = [f"{document['n_features']} {n_classes} {sum(len(r) for r in rounds)}"]
    lines.append(" ".join(str(float(v)) for v in document["init_predict"]))
    for rnd in rounds:
        for ic, tree in enumerate(rnd):
            lines.append(f"{ic} {len(tree['feature'])}")
            for node in zip(
                tree["feature"],
                tree["threshold"],
                tree["value"],
                tree["children_left"],
                tree["children_right"],
                strict=True,
            ):
                lines.append(f"{node[0]} {float(node[1])!s} {float(node[2])!s} {node[3]} {node[4]}")
    return "\n".join(lines) + "\n"


TYPES_H = """#pragma once
#include "ap_fixed.h"
typedef {input} input_t;
typedef {threshold} threshold_t;
typedef {score} score_t;
"""

TREE_CSIM_CPP = r"""// Conifer's BDT arithmetic (BDT_unrolled.h) over trees read at run time: compiled once.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "types.h"

struct Node { int feature, left, right; threshold_t threshold; score_t value; };
struct Tree { int cls; std::vector<Node> nodes; };

int main(int argc, char** argv) {
  if (argc != 4) { std::fprintf(stderr, "usage: tree_csim TREES IN OUT\n"); return 2; }
  FILE* ft = std::fopen(argv[1], "r");
  int n_features, n_classes, n_trees;
  if (!ft || std::fscanf(ft, "%d %d %d", &n_features, &n_classes, &n_trees) != 3) return 3;
  char buf[128];
  std::vector<score_t> init(n_classes);
  for (int c = 0; c < n_classes; c++) { if (std::fscanf(ft, "%127s", buf) != 1) return 3; init[c] = std::strtod(buf, nullptr); }
  std::vector<Tree> trees(n_trees);
  for (auto& t : trees) {
    int n;
    if (std::fscanf(ft, "%d %d", &t.cls, &n) != 2) return 3;
    t.nodes.resize(n);
    for (auto& node : t.nodes) {
      char thr[128], val[128];
      if (std::fscanf(ft, "%d %127s %127s %d %d", &node.feature, thr, val, &node.left, &node.right) != 5) return 3;
      node.threshold = std::strtod(thr, nullptr);  // as the literal in parameters.h: AP_TRN, AP_WRAP
      node.value = std::strtod(val, nullptr);
    }
  }
  std::fclose(ft);
  FILE* fi = std::fopen(argv[2], "rb");
  FILE* fo = std::fopen(argv[3], "wb");
  if (!fi || !fo) return 4;
  std::vector<double> row(n_features);
  std::vector<input_t> x(n_features);
  while (std::fread(row.data(), sizeof(double), n_features, fi) == (size_t)n_features) {
    for (int i = 0; i < n_features; i++) x[i] = row[i];
    std::vector<score_t> score(init);
    for (const auto& t : trees) {
      int n = 0;
      while (t.nodes[n].left != -1) n = (x[t.nodes[n].feature] <= t.nodes[n].threshold) ? t.nodes[n].left : t.nodes[n].right;
      score[t.cls] += t.nodes[n].value;
    }
    for (int c = 0; c < n_classes; c++) { double v = score[c].to_double(); std::fwrite(&v, sizeof(double), 1, fo); }
  }
  std::fclose(fi);
  std::fclose(fo);
  return 0;
}
"""

HLS_TB_CPP = r"""// Testbench: conifer's HLS top function on every jet of a binary file.
#include <cstdio>
#include <vector>
#include "firmware/BDT.h"
#include "firmware/parameters.h"
void {project}(input_arr_t x, score_arr_t score);
int main(int argc, char** argv) {
  FILE* fi = std::fopen(argv[1], "rb");
  FILE* fo = std::fopen(argv[2], "wb");
  if (!fi || !fo) return 4;
  std::vector<double> row(n_features);
  while (std::fread(row.data(), sizeof(double), n_features, fi) == (size_t)n_features) {
    input_arr_t x;
    for (int i = 0; i < n_features; i++) x[i] = row[i];
    score_arr_t score;
    {project}(x, score);
    for (int c = 0; c < BDT::fn_classes(n_classes); c++) { double v = score[c].to_double(); std::fwrite(&v, sizeof(double), 1, fo); }
  }
  std::fclose(fi);
  std::fclose(fo);
  return 0;
}
"""


def _gxx(args: list[str], name: str, cwd: Path) -> None:
    variable = timeout_variable("gxx")
    run_tool(
        ["g++", *args],
        name=name,
        log_path=cwd / f"{name.split()[0]}_build.log",
        timeout_s=tool_timeout("gxx", GXX_TIMEOUT_S),
        timeout_variable=variable,
        logger=logger,
        cwd=cwd,
    )


def write_tree_csim(config: ModelConfig, document: dict[str, Any], directory: Path) -> None:
    """The run-time program's sources and the trees (``tree_csim/``)."""
    settings = config.bdt
    assert settings is not None
    directory.mkdir(parents=True, exist_ok=True)
    types = TYPES_H.format(
        input=hls_type(config.quantization.input),
        threshold=hls_type(settings.threshold),
        score=hls_type(settings.score),
    )
    write_text_atomic(directory / "types.h", types)
    write_text_atomic(directory / "tree_csim.cpp", TREE_CSIM_CPP)
    write_text_atomic(directory / "trees.txt", trees_text(document))


def compile_tree_csim(directory: Path) -> Path:
    """Compile the run-time program in ``directory`` (once per project); returns the binary."""
    _gxx(
        ["-O2", "-std=c++14", f"-I{ap_types_include()}", "-I.", "tree_csim.cpp", "-o", "tree_csim"],
        "tree_csim g++",
        directory,
    )
    return directory / "tree_csim"


def compile_hls_csim(project: Path) -> Path:
    """Compile conifer's HLS sources of ``project`` with a testbench; returns the binary."""
    write_text_atomic(project / "csim_tb.cpp", HLS_TB_CPP.replace("{project}", PROJECT_NAME))
    _gxx(
        [
            "-O1",
            "-std=c++14",
            f"-I{ap_types_include()}",
            f"-I{hls_stream_include()}",
            "-I.",
            "-Ifirmware",
            "csim_tb.cpp",
            "firmware/BDT.cpp",
            f"firmware/{PROJECT_NAME}.cpp",
            "-o",
            "csim_tb",
        ],
        "hls_csim g++",
        project,
    )
    return project / "csim_tb"


def run_binary(binary: Path, x: np.ndarray, n_classes: int, *before: str) -> np.ndarray:
    """Feed every row of ``x`` through ``binary`` (a C simulation) at once; its logits."""
    work = binary.parent
    inputs, outputs = work / f".{binary.name}.in", work / f".{binary.name}.out"
    try:
        inputs.write_bytes(np.ascontiguousarray(x, dtype="<f8").tobytes())
        run_tool(
            [str(binary), *before, str(inputs), str(outputs)],
            name=f"{binary.name} (C simulation)",
            log_path=work / f"{binary.name}_run.log",
            timeout_s=tool_timeout("csim", GXX_TIMEOUT_S),
            timeout_variable=timeout_variable("csim"),
            logger=logger,
            cwd=work,
        )
        data = outputs.read_bytes()
    finally:
        for path in (inputs, outputs):
            if path.exists():
                os.remove(path)
    n = len(data) // (8 * n_classes)
    if n != len(x):
        raise TriggerMLError(f"{binary}: {n} outputs for {len(x)} jets", "see its log beside it")
    return np.array(struct.unpack(f"<{n * n_classes}d", data)).reshape(n, n_classes)


def tree_csim_predict(directory: Path, x: np.ndarray, n_classes: int) -> np.ndarray:
    return run_binary(directory / "tree_csim", x, n_classes, str(directory / "trees.txt"))
