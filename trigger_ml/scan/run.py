"""Running the points of a scan on Dask: the worker-side task and the client that submits
the points, skips finished ones and writes each result file as its task finishes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trigger_ml.compare import DEFAULT_COST_SOURCE
from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import read_json, write_json_atomic, write_text_atomic
from trigger_ml.kinds import kind_of
from trigger_ml.logs import Stopwatch, progress_bar, shows_progress, stage_logger
from trigger_ml.runner import STAMP, read_stamp
from trigger_ml.scan.spec import ScanPoint, ScanSpec, Stages, expand_points
from trigger_ml.scan.summary import _curves, summary_markdown, write_comparison
from trigger_ml.workspace import Workspace

logger = stage_logger("scan")

NOT_BUILT = "not built (stages: train)"
"""Cost and fidelity cells of a point scanned with ``stages: train`` (no firmware built)."""


@dataclass(frozen=True)
class ScanResult:
    """What :func:`run_scan` did: one record per point (as in its result file) and the outputs."""

    scan_dir: Path
    records: list[dict[str, Any]]
    comparison_dir: Path | None

    @property
    def summary_path(self) -> Path:
        return self.scan_dir / "scan_summary.md"

    def count(self, status: str) -> int:
        return sum(record["status"] == status for record in self.records)

    @property
    def failed(self) -> int:
        return self.count("failed")


# --------------------------------------------------------------------------- worker side


def _single_threaded_tensorflow() -> None:
    """One TensorFlow thread per worker: the cluster already runs one worker per core."""
    import tensorflow as tf

    pools = tf.config.threading
    if pools.get_intra_op_parallelism_threads() == pools.get_inter_op_parallelism_threads() == 1:
        return
    with contextlib.suppress(RuntimeError):  # the runtime was initialised before: keep its pools
        pools.set_intra_op_parallelism_threads(1)
        pools.set_inter_op_parallelism_threads(1)


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.is_file() else None


def _train_row(config: ModelConfig, ws: Workspace) -> dict[str, Any]:
    """A comparison row from the training run alone (``stages: train``): physics, no cost."""
    from trigger_ml.compare import ant_factor
    from trigger_ml.physics import light_rejection_uncertainties
    from trigger_ml.pipeline import ensure_trained

    run = ensure_trained(config, ws)
    model_kind = kind_of(config)
    kind = model_kind.reference(config)
    metrics = run.metrics["models"][kind]
    row: dict[str, Any] = {
        "model": config.name,
        "kind": model_kind.label(config),
        "config_sha256": config.digest(),
        "n_params": run.metrics["n_params"][kind],
        "exact_fraction": NOT_BUILT,
        "cost_source": NOT_BUILT,
        **dict.fromkeys(
            ("latency_cycles", "latency_ns", "initiation_interval", "LUT", "FF", "DSP", "BRAM_18K"), NOT_BUILT
        ),
    }
    row.update({key: metrics.get(key) for key in ("auc_b_vs_light", "rej_light_at_70", "rej_light_at_77")})
    row.update({key: metrics.get(key) for key in ("rej_c_at_70", "rej_c_at_77")})
    predictions = run.test_predictions()
    row.update(
        light_rejection_uncertainties(
            predictions[f"logits_{kind}"], predictions["classes"], config.physics.f_c
        )
    )
    row["ant_factor"] = ant_factor(row["auc_b_vs_light"], row["n_params"])
    return row


def run_point(
    config: ModelConfig,
    ws: Workspace,
    stages: Stages,
    after: Any = None,
    cost_source: str = DEFAULT_COST_SOURCE,
) -> dict[str, Any]:
    """The Dask task: run the pipeline of one point and return its result record.

    Never raises for a failure of the point itself: the error is returned as a one-line
    ``error`` (and the ``traceback``), so it is recorded and the other points go on.
    ``after`` is the record of a point that must finish first (same training run directory).
    It runs in a worker process, whose logging nobody configures: its stages print nothing.
    """
    del after  # only orders the tasks
    clock = Stopwatch()
    run_dir = ws.run_dir(config.name, config.training_digest())
    marker = _output_dir(config, ws, stages) / STAMP  # rewritten only when the stage runs
    before = _mtime(marker)
    record: dict[str, Any] = {
        "status": "failed",
        "row": None,
        "curve": None,
        "error": None,
        "traceback": None,
    }
    try:
        _single_threaded_tensorflow()
        if stages == "train":
            record["row"] = _train_row(config, ws)
            curve = (run_dir / "predictions.h5", f"logits_{kind_of(config).reference(config)}")
        else:
            from trigger_ml.compare import model_row

            record["row"] = model_row(config, ws, cost_source=cost_source)[0]
            predictions = record["row"].pop("predictions")
            curve = (Path(predictions["path"]), predictions["logits"])
        record["curve"] = {"path": str(curve[0].relative_to(ws.root)), "logits": curve[1]}
        record["stamp_sha256"] = (read_stamp(marker.parent) or {}).get("sha256")
        record["status"] = "ok"
    except TriggerMLError as error:
        record["error"] = error.one_line().removeprefix("error: ")
        record["traceback"] = traceback.format_exc()
    except Exception as error:  # any failure of one point is recorded, not raised
        record["error"] = _one_line(error)
        record["traceback"] = traceback.format_exc()
    record["pipeline_cached"] = before is not None and before == _mtime(marker)
    record["duration_s"] = round(clock.seconds, 3)
    record["host"] = os.uname().nodename
    return record


# --------------------------------------------------------------------------- client side


def scan_dir(ws: Workspace, name: str) -> Path:
    """Where a scan writes its point results, comparison and summary."""
    return ws.root / "scans" / name


def _base_record(spec: ScanSpec, point: ScanPoint) -> dict[str, Any]:
    return {
        "scan": spec.name,
        "key": point.key,
        "source": point.source,
        "label": point.label,
        "overrides": point.overrides,
        "model": point.model_spec,
        "stages": spec.stages,
        "cost_source": spec.cost_source,
        "config_sha256": point.config.digest() if point.config else None,
        "training_sha256": point.config.training_digest() if point.config else None,
    }


def _output_dir(config: ModelConfig, ws: Workspace, stages: Stages) -> Path:
    """The directory of the last stage a point runs (its stamp tells whether it was rebuilt)."""
    if stages == "hls" and config.hls.enabled:
        return ws.hls_dir(config.name)
    return ws.run_dir(config.name, config.training_digest())


def _previous_ok(path: Path, point: ScanPoint, spec: ScanSpec, ws: Workspace) -> dict[str, Any] | None:
    """The result of an earlier run of this point if it is complete and what it measured is
    still on disk: the stamp of its last stage's output (trigger_ml.runner) is the one the
    point recorded."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    complete = (
        record.get("status") == "ok"
        and record.get("stages") == spec.stages
        and record.get("cost_source") == spec.cost_source
        and point.config is not None
        and record.get("config_sha256") == point.config.digest()
        and isinstance(record.get("curve"), dict)
        and (ws.root / record["curve"]["path"]).is_file()
        and record.get("stamp_sha256") is not None
        and record["stamp_sha256"]
        == (read_stamp(_output_dir(point.config, ws, spec.stages)) or {}).get("sha256")
    )
    return record if complete else None


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None) -> Iterator[Any]:
    """A ``dask.distributed.Client``: on ``scheduler`` if given, else on a new LocalCluster.

    The LocalCluster listens on 127.0.0.1 only and has one single-threaded worker process
    per core (``n_workers`` to change), because each task runs TensorFlow on one thread.
    """
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except (OSError, TimeoutError) as error:
            raise TriggerMLError(
                f"cannot reach the Dask scheduler at {scheduler} ({type(error).__name__})",
                "start it (dask scheduler / dask-jobqueue) or drop --scheduler for a local cluster",
            ) from None
        with client:
            yield client
        return
    if n_workers is not None and n_workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {n_workers})", "omit it for one worker per core")
    n_workers = n_workers or os.cpu_count() or 1
    with _sigint_ignored_by_children():  # only while the worker processes are started
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:8787",
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},  # TensorFlow's start-up notes would bury the progress bar
        )
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Start worker processes with Ctrl-C ignored (an ignored signal stays ignored in a child).

    Ctrl-C then reaches the client alone, which closes the cluster cleanly, instead of every
    worker printing its own traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _generate_samples(spec: ScanSpec, points: list[ScanPoint], ws: Workspace) -> None:
    """Generate every sample the points need here, in the client, before any task runs.

    The generator uses a multiprocessing pool, which a (daemonic) Dask worker cannot start,
    and two workers generating the same sample would do the work twice.
    """
    from trigger_ml.data.stage import evaluation_identity, sample_identity
    from trigger_ml.pipeline import (
        ensure_data,
        ensure_evaluation_data,
    )

    samples: dict[Any, ModelConfig] = {}
    evaluation_samples: dict[Any, ModelConfig] = {}
    for point in points:
        assert point.config is not None
        samples.setdefault(sample_identity(point.config), point.config)
        if spec.stages == "hls":
            evaluation_samples.setdefault(evaluation_identity(point.config), point.config)
    for config in samples.values():
        ensure_data(config, ws)
    for config in evaluation_samples.values():
        ensure_evaluation_data(config, ws)


def _run_points(
    spec: ScanSpec,
    todo: list[ScanPoint],
    ws: Workspace,
    points_dir: Path,
    scheduler: str | None,
    n_workers: int | None,
) -> dict[str, dict[str, Any]]:
    """Submit the points, write each result file the moment its task finishes."""
    from dask.distributed import as_completed

    done: dict[str, dict[str, Any]] = {}
    with dask_client(scheduler, n_workers) as client:
        if shows_progress(logger):
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            waiting = "" if workers else " (the tasks wait for workers to join)"
            logger.info(f"{spec.name}: {len(todo)} point(s) on {workers} worker(s){waiting}")
            logger.info(f"dashboard: {client.dashboard_link}")
        futures, owner, last_by_run = [], {}, {}
        for point in todo:
            assert point.config is not None
            # Points writing the same training run directory run one after the other.
            run_dir = ws.run_dir(point.config.name, point.config.training_digest())
            future = client.submit(
                run_point,
                point.config,
                ws,
                spec.stages,
                last_by_run.get(run_dir),
                spec.cost_source,
                key=f"point-{point.key}",
                pure=False,
            )
            last_by_run[run_dir] = future
            owner[future.key] = point
            futures.append(future)
        with progress_bar(logger, total=len(futures), desc=f"scan {spec.name}", unit="point") as bar:
            for future in as_completed(futures):
                point = owner[future.key]
                try:
                    outcome = future.result()
                except Exception as error:  # the task itself died (worker killed, lost): record it too
                    outcome = {"status": "failed", "error": _one_line(error), "row": None}
                record = {
                    **_base_record(spec, point),
                    **outcome,
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
                write_json_atomic(points_dir / f"{point.key}.json", record)
                done[point.key] = record
                bar.update()
                detail = record["error"] or ("cached" if record.get("pipeline_cached") else "")
                duration = record.get("duration_s")
                took = f"{duration:.1f} s" if duration is not None else "-"
                logger.info(f"{record['status']:<6} {took:>8}  {point.label}  {detail}".rstrip())
    return done


def run_scan(
    spec: ScanSpec,
    ws: Workspace,
    scheduler: str | None = None,
    n_workers: int | None = None,
    with_models: Sequence[str] = (),
) -> ScanResult:
    """Run every point of ``spec`` not yet done on Dask, then aggregate the scan.

    ``scheduler`` is the address of an existing Dask scheduler (``tcp://host:port``); by
    default a LocalCluster with ``n_workers`` (one per core) is started on 127.0.0.1. Its
    workers must see ``ws.root`` at the same path. ``with_models`` are extra models (zoo
    names with optional overrides) run the same way and added to the comparison.
    """
    clock = Stopwatch()
    out = scan_dir(ws, spec.name)
    points_dir = out / "points"
    points = expand_points(spec, with_models)
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for point in points:
        path = points_dir / f"{point.key}.json"
        if point.config is None:
            records[point.key] = {**_base_record(spec, point), "status": "failed", "error": point.error}
            write_json_atomic(path, records[point.key])
        elif previous := _previous_ok(path, point, spec, ws):
            records[point.key] = {**previous, **_base_record(spec, point), "status": "skipped"}
        else:
            todo.append(point)
    invalid = [point for point in points if point.config is None]
    skipped = len(points) - len(todo) - len(invalid)
    logger.info(
        f"{spec.name}: {len(points)} point(s): {len(todo)} to run, "
        f"{skipped} done before (skipped), {len(invalid)} invalid"
    )
    for point in invalid:
        logger.info(f"invalid: {point.label}: {point.error}")
    if todo:
        _generate_samples(spec, todo, ws)
        records.update(_run_points(spec, todo, ws, points_dir, scheduler, n_workers))
    ordered = [records[point.key] for point in points]
    finished = [r for r in ordered if r["status"] in ("ok", "skipped")]
    comparison_dir: Path | None = None
    fronts: dict[str, list[str]] = {}
    if finished:
        comparison_dir = out / "comparison"
        f_c = next(p.config for p in points if p.config is not None).physics.f_c
        rows = [r["row"] for r in finished]
        labels = {r["model"]: r["label"] for r in finished}
        fronts = write_comparison(rows, _curves(finished, ws), f_c, comparison_dir, labels, spec.cost_source)
    else:  # a comparison left by an earlier run would no longer describe this one
        shutil.rmtree(out / "comparison", ignore_errors=True)
    wall = clock.seconds
    result = ScanResult(out, ordered, comparison_dir)
    write_json_atomic(
        out / "summary.json",
        {
            "scan": spec.name,
            "spec": spec.model_dump(mode="json"),
            "wall_s": round(wall, 3),
            "counts": {status: result.count(status) for status in ("ok", "skipped", "failed")},
            "points": [{k: r.get(k) for k in ("key", "label", "model", "status", "error")} for r in ordered],
            "front": fronts,
        },
    )
    write_text_atomic(result.summary_path, summary_markdown(spec, ordered, fronts, wall))
    return result
