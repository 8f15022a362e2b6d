"""Generation time of L1 samples at several pile-up levels.

``python -m trigger_ml.l1.timing [--jets N] [--mu 0 60 200] [--workers W] [--offline]``
generates N tt-bar jets with ``tracks: l1`` (``--offline``: the offline-like tracks) at each
mean pile-up into a temporary directory, in W processes (default 1), and prints the wall time,
the workers' CPU time and the jets per second. One shard per run (the pile-up pool of
``pileup_pool_events`` minimum-bias events is generated once per shard and is included).
"""

from __future__ import annotations

import argparse
import resource
import tempfile

from trigger_ml.data.generate import GeneratorSettings, generate_sample
from trigger_ml.logs import configure, stage_logger, timed

logger = stage_logger("data")


def time_generation(n_jets: int, mu: float, workers: int, tracks: str) -> dict[str, float]:
    """Wall and CPU seconds of generating ``n_jets`` jets at pile-up ``mu`` (one shard)."""
    settings = GeneratorSettings(tracks=tracks, pileup_mu=mu, n_jets=n_jets, jets_per_shard=n_jets)
    before = _cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp, timed() as clock:
        generate_sample(settings, tmp, n_workers=workers)
    cpu = _cpu_seconds() - before
    return {
        "mu": mu,
        "jets": n_jets,
        "wall_s": clock.seconds,
        "cpu_s": cpu,
        "jets_per_s": n_jets / clock.seconds,
    }


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=2000)
    parser.add_argument("--mu", type=float, nargs="+", default=[0.0, 60.0, 200.0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--offline", action="store_true", help="offline-like tracks instead of L1")
    args = parser.parse_args(argv)
    configure(0)
    for mu in args.mu:
        r = time_generation(args.jets, mu, args.workers, "offline" if args.offline else "l1")
        logger.info(
            f"mu {r['mu']:g}: {r['jets']} jets in {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU "
            f"({r['jets_per_s']:.1f} jets/s)"
        )


if __name__ == "__main__":
    main()
