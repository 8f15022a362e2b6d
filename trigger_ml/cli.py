"""``trigger-ml``: a thin command line over the stages. The Makefile calls it.

Progress lines (``[stage] message``) go to stdout through :mod:`trigger_ml.logs`: ``-v`` adds
debug lines (timings), ``-q`` keeps only the results. Every user-fixable problem ends in
one line on stderr naming the problem and the fix, with exit status 2 for bad input
(unknown model, malformed config) and 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from trigger_ml.artefacts import BDTFidelity, NetworkFidelity, PhysicsMetrics, SymbolicFidelity, read_report
from trigger_ml.compare import COST_SOURCES, DEFAULT_COST_SOURCE
from trigger_ml.config import ModelConfig, load_config_file, load_model_config, zoo_names
from trigger_ml.errors import TriggerMLError, UsageError, storage_error
from trigger_ml.logs import configure
from trigger_ml.workspace import Workspace


def _config(args: argparse.Namespace) -> ModelConfig:
    if getattr(args, "keras", None):
        from trigger_ml.kinds.user_keras import load_user_model

        return load_user_model(Path(args.keras), Path(args.meta) if args.meta else None)
    if getattr(args, "meta", None):
        raise UsageError("--meta describes a model given with --keras", "add --keras MODEL.h5")
    if getattr(args, "config", None):
        return load_config_file(Path(args.config))
    return load_model_config(args.model)


def cmd_models(args: argparse.Namespace) -> int:
    rows = [load_model_config(name) for name in zoo_names()]
    width = max(len(c.name) for c in rows)
    for c in rows:
        q = c.quantization
        bits = (
            "float"
            if not q.enabled
            else "HGQ"
            if q.is_hgq
            else "mixed"
            if q.layers
            else f"{q.weight.bits}-bit"
        )
        arch = c.architecture
        shape = f"phi {list(arch.phi_widths)} F {list(arch.f_widths)}" if arch.kind == "deepsets" else ""
        print(
            f"{c.name:<{width}}  {arch.kind:<8} {c.inputs.max_tracks:>2} tracks  {bits:<7} {shape}  {c.description}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    config = _config(args)
    print(json.dumps(config.model_dump(mode="json"), indent=2))
    print(f"# config sha256 {config.digest()}  training sha256 {config.training_digest()}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    config = _config(args)
    from trigger_ml.pipeline import ensure_data

    print(ensure_data(config, Workspace.default()))
    return 0


def cmd_convert_ftag(args: argparse.Namespace) -> int:
    from trigger_ml.data.own import ConvertOptions, convert_ftag_into, load_mapping_file

    options = load_mapping_file(Path(args.mapping)) if args.mapping else ConvertOptions()
    if args.max_tracks is not None:
        options = dataclasses.replace(options, max_tracks=args.max_tracks)
    path, summary, fresh = convert_ftag_into(Path(args.source), Workspace.default(), options)
    print(path)
    print(f"[convert-ftag] {'converted' if fresh else 'already converted'}: {summary}")
    print(f"[convert-ftag] train on it: sample: {{path: {_relative(path)}}}  (or MODEL@sample.path=...)")
    return 0


def _relative(path: Path) -> str:
    root = Workspace.default().root
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def cmd_data_plots(args: argparse.Namespace) -> int:
    config = _config(args)
    from trigger_ml.data.plots import write_validation_plots
    from trigger_ml.pipeline import ensure_data

    for path in write_validation_plots(ensure_data(config, Workspace.default())):
        print(path)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    config = _config(args)
    from trigger_ml.pipeline import ensure_trained

    run = ensure_trained(config, Workspace.default())
    print(f"[train] {config.name}: {run.path}")
    for kind, metrics in run.metrics["models"].items():
        print(f"  {kind:<7} " + "  ".join(f"{k}={v:.4g}" for k, v in metrics.items() if v is not None))
    return 0


def _rejection(metrics: PhysicsMetrics, key: str) -> str:
    value, stat = getattr(metrics, key), getattr(metrics, f"{key}_stat")
    text = "n/a" if value is None else f"{value:.1f}"
    return text if stat is None else f"{text} ± {stat:.1f}"


def cmd_hls(args: argparse.Namespace) -> int:
    config = _config(args)
    from trigger_ml.pipeline import ensure_hls

    ensure_hls(config, Workspace.default(), force=args.force)
    project = Workspace.default().hls_dir(config.name)
    report = read_report(project)
    fid, evaluation = report.fidelity, report.evaluation
    if not isinstance(fid, NetworkFidelity | BDTFidelity) or evaluation is None:
        raise TriggerMLError(
            f"{project}/report.json is not a network's report",
            f"rebuild with `trigger-ml hls --force {config.name}`",
        )
    print(f"[hls] {config.name}: {project}/report.md")
    print(
        f"  evaluation sample ({evaluation.n_jets} jets, {evaluation.origin or f'seed {evaluation.seed}'}; "
        f"firmware by the {evaluation.evaluated_by}):"
    )
    for kind, m in evaluation.metrics.items():
        print(
            f"  {kind:<8} AUC {m.auc_b_vs_light:.4f}  light rej @70% {_rejection(m, 'rej_light_at_70')}"
            f"  @77% {_rejection(m, 'rej_light_at_77')}"
        )
    test = report.metrics["csim"]
    print(
        f"  test split ({fid.n_jets} jets): C sim AUC {test.auc_b_vs_light:.4f}  "
        f"light rej @70% {_rejection(test, 'rej_light_at_70')}"
    )
    exact = fid.csim_vs_reference_exact_fraction
    line = f"  C sim == {fid.reference} on {exact:.4%} of {fid.n_jets} test jets"
    if isinstance(fid, NetworkFidelity) and fid.permutation_invariant_fraction is not None:
        line += f"; permutation invariant on {fid.permutation_invariant_fraction:.4%}"
    print(line)
    best = report.cost.best
    res = best.resources
    print(
        f"  latency {best.latency_cycles.max} cycles ({best.latency_ns.max:g} ns), "
        f"II {best.initiation_interval}, LUT {res.LUT}, FF {res.FF}, DSP {res.DSP}, "
        f"BRAM_18K {res.BRAM_18K} (source: {best.source}; `trigger-ml cost {project}`)"
    )
    if report.decision:
        decision = report.decision
        rows = decision["physics"]["evaluation"]["working_points"]
        block = decision["cost"]["decision"]
        print(
            f"  trigger_top == Python chain on {decision['fidelity']['test_exact_fraction']:.4%} of test jets; "
            f"score {decision['score']['score_type']['c_type']}; decision block +{block['latency_cycles']['max']} "
            f"cycle, LUT {block['resources']['LUT']}, FF {block['resources']['FF']} ({block['source']})"
        )
        front = decision["cost"]["front_end"]
        if front["resources"].get("LUT"):
            print(
                f"  front end {decision['front_end']}: +{front['latency_cycles']['max']} cycles, "
                f"LUT {front['resources']['LUT']}, DSP {front['resources']['DSP']} ({front['source']}, "
                f"{front['tool']}: {front['notes'][-1]})"
            )
        print(
            "  tag bits on the evaluation sample: "
            + "  ".join(
                f"@{row['b_efficiency']:.0%} b-eff {row['firmware']['b_efficiency']:.4f} light rej "
                f"{row['firmware']['rej_light']:.1f} (exact D_b {row['exact']['rej_light']:.1f})"
                for row in rows
                if row["firmware"]["rej_light"] is not None and row["exact"]["rej_light"] is not None
            )
        )
    if exact < 1.0 and args.require_exact:
        blame = getattr(fid, "first_divergent_layer", None) or {}
        raise TriggerMLError(
            f"C simulation differs from the {fid.reference} model on {1 - exact:.4%} of jets, "
            f"first at layer {blame.get('layer', '?')}",
            "see report.md (types per layer) and fix hls.precision_overrides",
        )
    return 0


def cmd_rtl(args: argparse.Namespace) -> int:
    config = _config(args)
    from trigger_ml.cost import format_cost_table
    from trigger_ml.pipeline import ensure_rtl

    section = ensure_rtl(config, Workspace.default(), verilate=args.verilate)
    print(format_cost_table(section))
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    from trigger_ml.cost import cost_for_project, format_cost_table

    project = Path(args.project)
    if not (project / "report.json").is_file():
        raise UsageError(
            f"{project} is not an HLS project (no report.json)", "run `trigger-ml hls MODEL` first"
        )
    cost = cost_for_project(project)
    print(json.dumps(cost, indent=2) if args.json else format_cost_table(cost["best"]))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from trigger_ml.seeds import check_seed_count
    from trigger_ml.symbolic import DEFAULT_COMPARE_MODELS, is_symbolic_name

    _positive(args, "workers")
    check_seed_count(args.seeds)

    specs = args.models or [*zoo_names(), *DEFAULT_COMPARE_MODELS]
    configs = [spec if is_symbolic_name(spec) else load_model_config(spec) for spec in specs]
    from trigger_ml.compare import compare

    out = compare(
        configs,
        Workspace.default(),
        cost_source=args.cost_source,
        seeds=args.seeds,
        scheduler=args.scheduler,
        n_workers=args.workers,
        reference=args.reference,
    )
    print((out / "table.md").read_text())
    print(
        f"[compare] written to {out}/ (table.md, table.csv, table.json, rej70_vs_latency.png, rej70_vs_lut.png, "
        "roc.png, roc_c.png)"
    )
    return 0


def _positive(args: argparse.Namespace, *names: str) -> None:
    """Count options checked before any work starts (a bad one must not cost a build first)."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be at least 1 (got {value})", f"give a positive {flag} or omit it")


def cmd_firmware(args: argparse.Namespace) -> int:
    _positive(args, "vectors")
    config = _config(args)
    from trigger_ml.firmware import build_bundle
    from trigger_ml.pipeline import ensure_hls

    ensure_hls(config, Workspace.default())
    bundle = build_bundle(config, Workspace.default(), n_vectors=args.vectors)
    print(f"[firmware] {config.name}: {bundle}/ and {bundle}.tar.gz (check anywhere: python3 verify.py)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from trigger_ml.fileio import write_text_atomic
    from trigger_ml.firmware import verifier, verify_bundle

    if args.out and not args.run_top:
        raise UsageError("--out needs --run-top", "give --run-top INPUTS.txt, or drop --out")
    rows_on_stdout = bool(args.run_top) and not args.out
    # With the rows on stdout, the log (written to whatever sys.stdout is) and the summary go to stderr.
    with contextlib.redirect_stdout(sys.stderr) if rows_on_stdout else contextlib.nullcontext():
        result = verify_bundle(Path(args.bundle), top_inputs=Path(args.run_top) if args.run_top else None)
        print(result.summary())
    if result.top_outputs is not None:
        rows = verifier.format_rows([list(row) for row in result.top_outputs])
        if args.out:
            write_text_atomic(args.out, rows)
            print(f"[verify] {verifier.TOP}: {len(result.top_outputs)} rows written to {args.out}")
        else:
            sys.stdout.write(rows)
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from trigger_ml.scan import load_scan_spec, run_scan

    _positive(args, "workers")

    spec = load_scan_spec(Path(args.spec))
    result = run_scan(
        spec,
        Workspace.default(),
        scheduler=args.scheduler,
        n_workers=args.workers,
        with_models=args.with_models,
    )
    print(result.summary_path.read_text())
    print(f"[scan] written to {result.scan_dir}/ (points/, comparison/, scan_summary.md, summary.json)")
    return 1 if result.failed else 0


def cmd_distill(args: argparse.Namespace) -> int:
    config = _config(args)
    from trigger_ml.pipeline import ensure_distilled
    from trigger_ml.symbolic import load_symbolic_config

    settings = load_symbolic_config(args.sr, Path(args.sr_config) if args.sr_config else None)
    content = ensure_distilled(config, settings, Workspace.default(), force=args.force)
    project = Workspace.default().hls_dir(content["model"])
    report = read_report(project)
    sym, fid, best, teacher = report.symbolic, report.fidelity, report.cost.best, report.teacher
    if sym is None or teacher is None or not isinstance(fid, SymbolicFidelity):
        raise TriggerMLError(
            f"{project}/report.json is not a symbolic model's report",
            f"rebuild with `trigger-ml distill --force {config.name}`",
        )
    print(f"[distill] {report.model}: {project}/report.md")
    print(
        f"  backend {sym.backend['used']} ({sym.backend['reason']}); chosen expression, "
        f"from {sym.produced_by}: {sym.readable[0]}"
    )
    for kind, m in report.metrics.items():
        rej = m.rej_light_at_70 or float("nan")
        print(f"  {kind:<16} AUC {m.auc_b_vs_light:.4f}  light rej @70% {rej:.1f}")
    print(
        f"  latency {best.latency_cycles.max} cycles (teacher {teacher.latency_cycles}); "
        f"C sim within one step of float on {fid.within_step_fraction:.4%} of {fid.n_jets} jets"
    )
    return 0


def _version() -> str:
    from trigger_ml import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trigger-ml", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="also print debug lines (timings)")
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines or bars: results only"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str, model: bool = True):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if model:
            p.add_argument(
                "model", nargs="?", default="dips-small", help="zoo name, optionally name@key=value,..."
            )
            p.add_argument("--config", help="a YAML configuration file instead of a zoo name")
            p.add_argument("--keras", help="your own QKeras model file (.h5) instead of a zoo model")
            p.add_argument("--meta", help="with --keras: its metadata YAML (default: MODEL.yaml beside it)")
        p.set_defaults(func=func)
        return p

    add("models", cmd_models, "list the model zoo", model=False)
    add("show", cmd_show, "print a model's resolved configuration and its hashes")
    add("data", cmd_data, "generate (or reuse) the model's physics sample")
    add(
        "data-plots",
        cmd_data_plots,
        "validation plots of the model's sample: sd0, sz0, multiplicity, pT, eta, flavours",
    )
    p = add(
        "convert-ftag",
        cmd_convert_ftag,
        "convert an ATLAS training-dataset-dumper file into data/ftag-<hash>/jets.h5",
        model=False,
    )
    p.add_argument("source", help="the dumper's HDF5 file (structured 'jets' and 'tracks' datasets)")
    p.add_argument("--mapping", help="YAML: our field -> the file's field (docs/data-formats.md)")
    p.add_argument("--max-tracks", type=int, help="keep at most N tracks per jet (by signed d0 significance)")
    add("train", cmd_train, "train the QKeras model and its float twin (cached)")
    p = add("hls", cmd_hls, "data, training, hls4ml conversion, C simulation, fidelity and report")
    p.add_argument("--force", action="store_true", help="rebuild the HLS project even if it is current")
    p.add_argument(
        "--require-exact", action="store_true", help="exit 1 unless C simulation == QKeras everywhere"
    )
    p = add(
        "compare",
        cmd_compare,
        "build what is missing and compare models: table and Pareto plots",
        model=False,
    )
    p.add_argument("models", nargs="*", help="models to compare (default: the whole zoo)")
    p.add_argument(
        "--cost-source",
        default=DEFAULT_COST_SOURCE,
        choices=COST_SOURCES,
        help="where every firmware row's latency and resources come from (default: da4ml; "
        "best = the most trustworthy each model has, mixing sources)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train every model with N training seeds (its own and the next N-1) as Dask tasks and "
        "report the mean and spread of its physics (default 1)",
    )
    p.add_argument("--scheduler", help="with --seeds: a Dask scheduler address (default: a local cluster)")
    p.add_argument("--workers", type=int, help="with --seeds: local Dask workers (default: one per core)")
    p.add_argument(
        "--reference",
        metavar="MODEL",
        help="the model the ROC plots' ratio panels divide by (default: the first model)",
    )
    p = add(
        "firmware",
        cmd_firmware,
        "hls if needed, then the hand-off bundle firmware/MODEL-<id>/ and its .tar.gz",
    )
    p.add_argument(
        "--vectors", type=int, default=1000, help="test-split jets written as test vectors (default 1000)"
    )
    p = add(
        "verify",
        cmd_verify,
        "verify a firmware bundle (directory or .tar.gz): hashes, g++ C simulation, working points",
        model=False,
    )
    p.add_argument("bundle", help="firmware/<model>-<id> or firmware/<model>-<id>.tar.gz")
    p.add_argument(
        "--run-top",
        metavar="INPUTS.txt",
        help="after every check passes, run these jets through trigger_top's C simulation: one jet per line, "
        "the front end's integer words (as in the bundle's vectors/top_inputs.txt); prints per line the "
        "logit codes, the score code and the tag word",
    )
    p.add_argument("--out", metavar="OUT.txt", help="with --run-top: write the rows here (default: stdout)")
    p = add(
        "scan",
        cmd_scan,
        "run a design-space scan (grid or list of overrides) on Dask, then compare its points",
        model=False,
    )
    p.add_argument("spec", help="scan spec (YAML), e.g. scans/example-bits-reuse.yaml")
    p.add_argument(
        "--scheduler",
        help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)",
    )
    p.add_argument(
        "--workers", type=int, help="worker processes of the local cluster (default: one per core)"
    )
    p.add_argument(
        "--with",
        dest="with_models",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="zoo models to run the same way and add to the comparison",
    )
    p = add(
        "rtl",
        cmd_rtl,
        "RTL of the quantized network (da4ml), bit-exact check vs the C simulation, Yosys cell counts",
    )
    p.add_argument("--verilate", action="store_true", help="also simulate the Verilog with Verilator")
    p = add("distill", cmd_distill, "distil a trained tagger into symbolic expressions and their firmware")
    p.add_argument("--sr", help="symbolic settings, e.g. 'backend=operon,max_complexity=[9,17,33]'")
    p.add_argument("--sr-config", help="a YAML file of symbolic settings (docs/symbolic.md)")
    p.add_argument("--force", action="store_true", help="rebuild the project even if it is current")
    p = add("cost", cmd_cost, "print the cost section (latency, resources) of an HLS project", model=False)
    p.add_argument("project", help="an HLS project directory, e.g. hls_projects/dips-small")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(1 if args.verbose else -1 if args.quiet else 0)
    try:
        return args.func(args)
    except TriggerMLError as error:
        print(error.one_line(), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; finished stages are kept, rerun to continue", file=sys.stderr)
        return 130
    except Exception as error:  # a full disk or a file size limit is one line too
        storage = storage_error(error)
        if storage is None:
            raise
        print(storage.one_line(), file=sys.stderr)
        if argv is None:
            _exit_now(storage.exit_code)
        return storage.exit_code


def _exit_now(code: int) -> None:
    """End the command at once, without the interpreter's cleanup: HDF5 cannot close a file
    whose last write failed, and trying to at exit prints tracebacks or crashes Python. The
    outputs are written atomically, so there is nothing to finish."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
