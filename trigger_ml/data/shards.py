"""Generating the shards of a sample: one shard's events to jets in one process, and the
runner that generates many shards in worker processes.

A shard depends only on the settings, the seed and the shard index, so the sample is the
same whatever the number of workers.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.data.events import (
    MAX_BATCH_EVENTS,
    EventStream,
    GenerationTimer,
    pythia_package_version,
    pythia_seed,
)
from trigger_ml.data.jets import cluster_batch, make_jet_definition, particle_kinematics, process_event
from trigger_ml.data.layout import FORMAT_VERSION, JET_DTYPE, PROCESS_CODES
from trigger_ml.data.pileup import PileupOverlay
from trigger_ml.data.sample_io import shard_path, write_jets_file
from trigger_ml.data.settings import GeneratorSettings
from trigger_ml.fileio import atomic_path, canonical_json

_EVENT_NUMBER_STRIDE = 1_000_000_000  # event_number = shard index * stride + event in shard
_FIRST_BATCH_EVENTS = 8
_PROGRESS_EVERY_JETS = 200


@dataclass(frozen=True)
class ShardTask:
    """One shard to generate: shard ``index`` of ``n_jets`` jets, written to ``path``."""

    settings: GeneratorSettings
    index: int
    n_jets: int
    path: Path


def generate_shard(
    task: ShardTask, report: Callable[[int], object], timer: GenerationTimer | None = None
) -> None:
    """Generate the events of one shard until it holds exactly ``task.n_jets`` jets; write it.

    A shard is one block of jets per process of ``settings.shard_plan`` (tt-bar first). One
    numpy generator draws the detector response of all blocks in event order, so a shard
    depends only on the settings, the seed and the shard index.
    """
    settings = task.settings
    timer = timer if timer is not None else GenerationTimer()
    start = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(task.index,)))
    jet_def = make_jet_definition(settings.jet_r)
    pileup = PileupOverlay(settings, task.index, timer) if settings.pileup_mu > 0 else None

    jets_parts: list[np.ndarray] = []
    tracks_parts: list[np.ndarray] = []
    n_events = unreported = 0
    for process, n_target in settings.shard_plan(task.n_jets):
        stream = EventStream(settings, pythia_seed(settings.seed, task.index, process), process, timer)
        n_collected = events_done = 0
        while n_collected < n_target:
            # Ask for about as many events as the jets still needed take; the events of
            # the last batch that are not needed are dropped unprocessed.
            need = n_target - n_collected
            per_event = n_collected / events_done if events_done else 0.0
            size = math.ceil(need / per_event) if per_event > 0 else _FIRST_BATCH_EVENTS
            batch = stream.next_batch(max(1, min(size, MAX_BATCH_EVENTS)))
            kinematics = [particle_kinematics(batch.event(i)) for i in range(len(batch))]
            all_jets = cluster_batch(batch, [k["visible"] for k in kinematics], settings, jet_def, timer)
            for i in range(len(batch)):
                event_number = task.index * _EVENT_NUMBER_STRIDE + n_events
                n_events += 1
                events_done += 1
                overlay = pileup.overlay() if pileup is not None else None
                jets, tracks = process_event(
                    batch.event(i), kinematics[i], all_jets[i], settings, rng, event_number, overlay
                )
                if jets.dtype != JET_DTYPE:
                    jets["process"] = PROCESS_CODES[process]
                take = min(len(jets), n_target - n_collected)
                if take:
                    # Jets are in decreasing pT: the last event gives its leading jets.
                    jets_parts.append(jets[:take])
                    tracks_parts.append(tracks[:take])
                    n_collected += take
                    unreported += take
                if unreported >= _PROGRESS_EVERY_JETS:
                    report(unreported)
                    unreported = 0
                if n_collected == n_target:
                    break

    attrs = {
        "settings": canonical_json(settings.canonical_dict()),
        "format_version": FORMAT_VERSION,
        "shard_index": task.index,
        "n_events": n_events,
        "pythia_version": pythia_package_version(),
    }
    with atomic_path(task.path) as tmp:
        write_jets_file(tmp, np.concatenate(jets_parts), np.concatenate(tracks_parts), settings, attrs)
    timer.total += time.perf_counter() - start
    report(unreported)


def time_shard(settings: GeneratorSettings, n_jets: int, out_dir: Path) -> GenerationTimer:
    """Generate one shard of ``n_jets`` (shard index 0) into ``out_dir`` in this process and
    return where its time went; for benchmarks."""
    timer = GenerationTimer()
    task = ShardTask(settings, 0, n_jets, shard_path(Path(out_dir), 0))
    generate_shard(task, lambda n: None, timer)
    return timer


# --- parallel execution ------------------------------------------------------------------

_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _worker_generate_shard(task: ShardTask) -> None:
    generate_shard(task, _progress_queue.put)


def run_shards(tasks: list[ShardTask], n_workers: int, report: Callable[[int], object]) -> None:
    """Generate the shards of ``tasks``, in this process or in n_workers worker processes.

    Workers are forked where the platform allows it (no re-import of the caller's main
    script), spawned elsewhere. A worker that dies raises BrokenProcessPool here.
    """
    if n_workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            generate_shard(task, report)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        # Import the generator's extension modules once, so forked workers inherit them.
        import awkward  # noqa: F401
        import fastjet._ext  # noqa: F401
        import pythia8mc  # noqa: F401
    context = multiprocessing.get_context(method)
    progress_queue = context.Queue()
    expected = sum(task.n_jets for task in tasks)
    reported = 0
    with ProcessPoolExecutor(
        n_workers, context, initializer=_init_worker, initargs=(progress_queue,)
    ) as pool:
        pending = {pool.submit(_worker_generate_shard, task) for task in tasks}
        while pending:
            reported += _drain(progress_queue, report, timeout=0.2)
            done, pending = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # re-raises a worker's exception
    while reported < expected:  # progress messages still in flight after the results
        n = _drain(progress_queue, report, timeout=1.0)
        if n == 0:
            break
        reported += n


def _drain(progress_queue: Any, report: Callable[[int], object], timeout: float) -> int:
    """Pass on all queued progress counts (waiting up to ``timeout`` for the first)."""
    total = 0
    try:
        item = progress_queue.get(timeout=timeout)
        while True:
            report(item)
            total += item
            item = progress_queue.get_nowait()
    except queue.Empty:
        return total
