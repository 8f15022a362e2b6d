"""The decision block and the end-to-end top in C++: ``decision.h`` (a function templated on
the logits' type and a configuration struct), ``decision_config.h`` (types, constants and
thresholds of one model), ``trigger_top.cpp`` (FRONT -> ``myproject`` -> decision) and its
testbench, compiled once with g++ and fed every jet in one process.

The network is not recompiled: the testbench links the shared library hls4ml's own build left
in the project (``firmware/myproject-<stamp>.so``, the distributed-arithmetic code compiled once
with hls4ml's flags). ``firmware/myproject.cpp`` is compiled here only when that library is
missing, or when the network reads its weights from text files at run time (hls4ml's
Latency/Resource templates: the library names the directory it was built in).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from trigger_ml.decision.frontend import FrontEnd
from trigger_ml.decision.score import ScoreSpec
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.interface import Interface
from trigger_ml.firmware.verifier import exact_decimal
from trigger_ml.logs import stage_logger
from trigger_ml.tools import run_tool, timeout_variable, tool_timeout

logger = stage_logger("decision")

TOP = "trigger_top"
TESTBENCH = f"{TOP}_test.cpp"
BINARY = f"{TOP}_csim"
SOURCES = ("decision.h", "decision_config.h", f"{TOP}.h", f"{TOP}.cpp")
GXX_TIMEOUT_S = 1800.0

DECISION_H = """\
// trigger-ml: the b-tag decision in firmware (trigger_ml/decision, docs/decision.md).
// score = z_b - max(z_c + ln f_c, z_l + ln(1 - f_c)): the max form of
// D_b = z_b - logsumexp(z_c + ln f_c, z_l + ln(1 - f_c)), exact in CONFIG_T::accum_t for any
// logits of data_T; tag bit k = (score >= CONFIG_T::threshold(k)).
#ifndef TRIGGER_ML_DECISION_H_
#define TRIGGER_ML_DECISION_H_

#include "ap_fixed.h"
#include "ap_int.h"

template <class data_T, typename CONFIG_T>
void b_tag_decision(const data_T logits[3], typename CONFIG_T::score_t &score, typename CONFIG_T::tags_t &tags) {
    #pragma HLS INLINE
    typedef typename CONFIG_T::accum_t accum_t;
    const accum_t b = logits[CONFIG_T::index_b];
    const accum_t c = accum_t(logits[CONFIG_T::index_c]) + CONFIG_T::offset_c();
    const accum_t l = accum_t(logits[CONFIG_T::index_l]) + CONFIG_T::offset_l();
    accum_t biggest;
    if (CONFIG_T::has_c && CONFIG_T::has_l) {
        biggest = c > l ? c : l;
    } else {
        biggest = CONFIG_T::has_c ? c : l;
    }
    const accum_t s = b - biggest;
    score = s;  // exact, or AP_TRN onto fewer fractional bits
    typename CONFIG_T::tags_t bits = 0;
    for (unsigned k = 0; k < CONFIG_T::n_wp; k++) {
        #pragma HLS UNROLL
        bits[k] = score >= CONFIG_T::threshold(k) ? 1 : 0;
    }
    tags = bits;
}

#endif
"""


def _value(code: int, fractional_bits: int) -> str:
    return exact_decimal(Fraction(code, 2**fractional_bits))


def decision_config_h(spec: ScoreSpec, thresholds: list[int], efficiencies: tuple[float, ...]) -> str:
    """decision_config.h: the types, constants and thresholds of one model."""
    frac, score_frac = spec.accum.fractional_bits, spec.score.fractional_bits
    n = len(thresholds)
    items = ", ".join(f"btag_score_t({_value(t, score_frac)})" for t in thresholds)
    wps = ", ".join(f"bit {k}: {eff:.0%}" for k, eff in enumerate(efficiencies))
    return f"""\
// trigger-ml: decision of one model (generated; docs/decision.md).
#ifndef TRIGGER_ML_DECISION_CONFIG_H_
#define TRIGGER_ML_DECISION_CONFIG_H_

#include "ap_fixed.h"
#include "ap_int.h"

// Exact for every logit of the result type: codes in [{spec.accum_bounds[0]}, {spec.accum_bounds[1]}].
typedef ap_fixed<{spec.accum.width},{spec.accum.integer}> btag_accum_t;
typedef ap_fixed<{spec.score.width},{spec.score.integer},AP_TRN,AP_WRAP> btag_score_t;
typedef ap_uint<{n}> btag_tags_t;  // {wps}

struct btag_decision_config {{
    typedef btag_accum_t accum_t;
    typedef btag_score_t score_t;
    typedef btag_tags_t tags_t;
    static const unsigned n_wp = {n};
    static const unsigned index_b = 0, index_c = 1, index_l = 2;
    static const bool has_c = {str(spec.offset_c is not None).lower()}, has_l = {str(spec.offset_l is not None).lower()};
    // ln f_c and ln(1 - f_c) (f_c = {spec.f_c!r}) rounded half to even onto 2^-{frac}.
    static accum_t offset_c() {{ return accum_t({_value(spec.offset_c or 0, frac)}); }}
    static accum_t offset_l() {{ return accum_t({_value(spec.offset_l or 0, frac)}); }}
    // Working points: the jet is tagged when score >= threshold (score codes {thresholds}).
    static score_t threshold(unsigned k) {{
        const score_t t[n_wp] = {{{items}}};
        return t[k];
    }}
}};

#endif
"""


def _argument(declaration: str) -> str:
    match = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", declaration)
    if not match:
        raise TriggerMLError(f"front-end parameter {declaration!r} has no name", "report this as a bug")
    return match.group(1)


def top_sources(front: FrontEnd, interface: Interface) -> dict[str, str]:
    """trigger_top.h and trigger_top.cpp."""
    out = interface.output
    params = [
        *front.parameters,
        f"{out.type_name} logits[{out.size_expr}]",
        "btag_score_t &score",
        "btag_tags_t &tags",
    ]
    includes = "".join(f'#include "{name}"\n' for name in front.includes)
    header = f"""\
// trigger-ml: the end-to-end top: front end ({front.name}) -> {interface.project} -> b-tag decision.
#ifndef TRIGGER_TOP_H_
#define TRIGGER_TOP_H_

#include "{interface.project}.h"
#include "decision_config.h"
{includes}
void {TOP}(
    {("," + chr(10) + "    ").join(params)}
);

#endif
"""
    source = f"""\
#include "{TOP}.h"
#include "decision.h"

void {TOP}(
    {("," + chr(10) + "    ").join(params)}
) {{
    #pragma HLS PIPELINE II=1
    #pragma HLS ARRAY_PARTITION variable=logits complete
    {interface.input.type_name} x[{interface.input.size_expr}];
    #pragma HLS ARRAY_PARTITION variable=x complete
{front.fill_network_input}    {interface.project}(x, logits);
    b_tag_decision<{out.type_name}, btag_decision_config>(logits, score, tags);
}}
"""
    return {f"{TOP}.h": header, f"{TOP}.cpp": source}


def testbench(front: FrontEnd, interface: Interface, spec: ScoreSpec) -> str:
    """trigger_top_test.cpp: reads one jet's integer words per line, writes the logit codes,
    the score code and the tag word per line."""
    out = interface.output
    args = ", ".join([*(_argument(p) for p in front.parameters), "logits", "score", "tags"])
    return f"""\
// trigger-ml: C simulation of {TOP}: `{BINARY} INPUT_WORDS OUTPUT` (one jet per line).
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "{TOP}.h"

template <class T> T from_code(long long code, int frac) {{ return T(std::ldexp((double)code, -frac)); }}
template <class T> long long to_code(const T &value, int frac) {{ return std::llround(std::ldexp(value.to_double(), frac)); }}

int main(int argc, char **argv) {{
    if (argc != 3) {{ std::cerr << "usage: {BINARY} INPUT_WORDS OUTPUT" << std::endl; return 2; }}
    std::ifstream in(argv[1]);
    std::ofstream out(argv[2]);
    if (!in || !out) {{ std::cerr << "cannot open the input or the output file" << std::endl; return 2; }}
    long long words[{front.n_words}];
{front.testbench_declarations}    {out.type_name} logits[{out.size_expr}];
    btag_score_t score;
    btag_tags_t tags;
    std::string line;
    long long n = 0;
    while (std::getline(in, line)) {{
        std::istringstream row(line);
        for (int i = 0; i < {front.n_words}; i++) {{
            if (!(row >> words[i])) {{ std::cerr << "line " << n + 1 << ": expected {front.n_words} integers" << std::endl; return 3; }}
        }}
{front.testbench_load}        {TOP}({args});
        for (int i = 0; i < {out.elements}; i++) out << to_code(logits[i], {out.fixed.fractional_bits}) << " ";
        out << to_code(score, {spec.score.fractional_bits}) << " " << tags.to_uint64() << "\\n";
        n++;
    }}
    return 0;
}}
"""


def write_sources(
    directory: Path,
    front: FrontEnd,
    interface: Interface,
    spec: ScoreSpec,
    thresholds: list[int],
    efficiencies: tuple[float, ...],
) -> None:
    """Write ``firmware/`` (the block, its configuration, the top, the front end's files) and the
    testbench into ``directory``."""
    firmware = directory / "firmware"
    firmware.mkdir(parents=True, exist_ok=True)
    files = {
        "decision.h": DECISION_H,
        "decision_config.h": decision_config_h(spec, thresholds, efficiencies),
        **top_sources(front, interface),
        **front.files,
    }
    for name, text in files.items():
        (firmware / name).write_text(text, encoding="utf-8")
    (directory / TESTBENCH).write_text(testbench(front, interface, spec), encoding="utf-8")


def gxx_flags() -> list[str]:
    """hls4ml's build_lib.sh flags: -O3 -fPIC, C++23 when g++ has it (else C++11), -fno-gnu-unique."""
    flags = ["-O3", "-fPIC"]

    def accepts(flag: str) -> bool:
        probe = subprocess.run(
            ["g++", "-Werror", "-fsyntax-only", flag, "-xc++", "-", "-o", os.devnull],
            input="",
            capture_output=True,
            text=True,
            check=False,
        )
        return probe.returncode == 0

    flags.append("-std=c++23" if accepts("-std=c++23") else "-std=c++11")
    if accepts("-fno-gnu-unique"):
        flags.append("-fno-gnu-unique")
    return flags


@dataclass(frozen=True)
class Build:
    binary: Path
    network_object: str
    """How the network came in: the project's shared library, or compiled here."""


def compile_top(directory: Path, project_dir: Path, project: str, log_dir: Path) -> Build:
    """Compile the testbench of ``trigger_top`` in ``directory`` once, against the hls4ml
    project at ``project_dir`` (its shared library when present)."""
    if shutil.which("g++") is None:
        raise TriggerMLError("g++ not found: it compiles the C simulation of trigger_top", "install g++")
    firmware = project_dir / "firmware"
    includes = [f"-I{directory / 'firmware'}", f"-I{firmware}", f"-I{firmware / 'ap_types'}"]
    flags = gxx_flags()
    libraries = sorted(firmware.glob(f"{project}-*.so"))
    sources = [str(directory / TESTBENCH), str(directory / "firmware" / f"{TOP}.cpp")]
    # A network that reads its weights from text files at run time (hls4ml's Latency/Resource
    # templates) has the directory of its build baked into the library: recompile it here.
    reads_weights = "load_weights_from_txt" in (firmware / f"{project}.cpp").read_text(encoding="utf-8")
    if libraries and not reads_weights:
        network = [str(libraries[-1]), f"-Wl,-rpath,{firmware}"]
        how = f"linked against hls4ml's build {libraries[-1].name}"
    else:
        network = [str(firmware / f"{project}.cpp"), f'-DWEIGHTS_DIR="{firmware / "weights"}"']
        why = "its weights are read from firmware/weights at run time" if libraries else "no hls4ml library"
        how = f"compiled from firmware/{project}.cpp ({why})"
    binary = directory / BINARY
    run_tool(
        ["g++", *flags, *includes, *sources, *network, "-o", str(binary)],
        name=f"g++ ({TOP})",
        log_path=log_dir / "trigger_top_gxx.log",
        timeout_s=tool_timeout("gxx", GXX_TIMEOUT_S),
        timeout_variable=timeout_variable("gxx"),
        logger=logger,
        cwd=directory,
    )
    return Build(binary, how)


def run_top(build: Build, words: np.ndarray, workdir: Path, n_outputs: int) -> np.ndarray:
    """Feed every row of ``words`` through the compiled top in one process; int64 rows of
    ``n_outputs`` logit codes, the score code and the tag word."""
    inputs, outputs = workdir / "top_inputs.txt", workdir / "top_outputs.txt"
    with open(inputs, "w", encoding="utf-8") as handle:
        for row in np.asarray(words, dtype=np.int64):
            handle.write(" ".join(map(str, row.tolist())) + "\n")
    ran = subprocess.run(
        [str(build.binary), str(inputs), str(outputs)], capture_output=True, text=True, check=False
    )
    if ran.returncode != 0:
        raise TriggerMLError(
            f"the C simulation of {TOP} exited with status {ran.returncode} ({ran.stderr.strip()[-200:]})",
            "report this as a bug",
        )
    got = np.loadtxt(outputs, dtype=np.int64, ndmin=2)
    inputs.unlink()
    outputs.unlink()
    if got.shape != (len(words), n_outputs + 2):
        raise TriggerMLError(f"the C simulation of {TOP} wrote {got.shape} outputs for {len(words)} jets")
    return got
