"""Benchmark of the sample generator: jets per second with all cores.

``python -m trigger_ml.data.bench [--jets N] [--workers W] [--profile-jets M]`` generates
N default-settings tt-bar jets (default 4000) into a temporary directory, in W worker
processes (default: all CPUs) with one shard per worker, and prints the wall time, the
rate, the CPU time the workers used, and the load average of the machine (the rate is a
wall-clock figure: other jobs on the machine lower it). It then generates one shard of M
jets (default 500; 0 skips it) in this process and prints where its time went: Pythia
initialisation, Pythia event generation (including the conversion of the event record to
arrays), FastJet clustering, and the rest (Python: labels, detector model, file writing).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path

from trigger_ml.data.generate import GeneratorSettings, generate_sample, time_shard
from trigger_ml.logs import timed


@dataclass(frozen=True)
class BenchResult:
    """What one benchmark run measured."""

    n_jets: int
    n_workers: int
    n_cpus: int
    wall_seconds: float
    cpu_seconds: float
    load_before: float
    load_after: float

    @property
    def jets_per_second(self) -> float:
        return self.n_jets / self.wall_seconds

    @property
    def jets_per_cpu_second(self) -> float:
        return self.n_jets / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")


def run_benchmark(n_jets: int, n_workers: int, seed: int = 1) -> BenchResult:
    """Generate ``n_jets`` default-settings jets in ``n_workers`` processes (one shard each)
    into a temporary directory; measure wall and worker CPU time."""
    settings = GeneratorSettings(n_jets=n_jets, jets_per_shard=math.ceil(n_jets / n_workers), seed=seed)
    load_before = os.getloadavg()[0]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory(prefix="trigger-ml-bench-") as tmp:
        with timed() as clock:
            generate_sample(settings, Path(tmp), n_workers=n_workers)
        wall = clock.seconds
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = sum(
        getattr(after, k) - getattr(before, k)
        for before, after in ((children, children_after), (own, own_after))
        for k in ("ru_utime", "ru_stime")
    )
    return BenchResult(n_jets, n_workers, os.cpu_count() or 1, wall, cpu, load_before, os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        prog="python -m trigger_ml.data.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--jets", type=int, default=4000, help="jets to generate (default 4000)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all CPUs)"
    )
    parser.add_argument(
        "--profile-jets", type=int, default=500, help="jets of the in-process time split (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.jets < 1 or args.workers < 1 or args.profile_jets < 0:
        parser.error("--jets and --workers must be >= 1, --profile-jets >= 0")

    result = run_benchmark(args.jets, args.workers, args.seed)
    print(f"CPUs: {result.n_cpus}, workers: {result.n_workers}, jets: {result.n_jets}")
    print(f"wall time: {result.wall_seconds:.1f} s")
    print(f"rate: {result.jets_per_second:.0f} jets/s")
    print(
        f"CPU time of the workers: {result.cpu_seconds:.1f} s "
        f"({result.jets_per_cpu_second:.0f} jets per CPU-second, "
        f"{result.cpu_seconds / result.wall_seconds:.2f} cores busy on average)"
    )
    print(
        f"CPU-limited rate on {result.n_workers} free cores: {result.jets_per_cpu_second * result.n_workers:.0f} "
        "jets/s (jets per CPU-second x workers: the wall rate when nothing else runs)"
    )
    print(f"load average (1 min) before / after: {result.load_before:.2f} / {result.load_after:.2f}")
    if args.profile_jets:
        settings = GeneratorSettings(
            n_jets=args.profile_jets, jets_per_shard=args.profile_jets, seed=args.seed
        )
        with tempfile.TemporaryDirectory(prefix="trigger-ml-bench-") as tmp:
            timer = time_shard(settings, args.profile_jets, Path(tmp))
        rest = timer.total - timer.init - timer.pythia - timer.fastjet
        shares = {
            "Pythia init": timer.init,
            "Pythia events": timer.pythia,
            "FastJet": timer.fastjet,
            "Python (labels, detector, files)": rest,
        }
        split = ", ".join(f"{name} {100 * seconds / timer.total:.0f} %" for name, seconds in shares.items())
        print(
            f"time split of one {args.profile_jets}-jet shard in one process ({timer.total:.1f} s): {split}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
