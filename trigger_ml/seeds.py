"""Training spread: every model of a comparison trained with N training seeds.

``trigger-ml compare --seeds N`` runs, through the scan machinery (one Dask task per training,
cached like every scan point under ``scans/compare-seeds/``), each model with its own
``training.seed`` s and with s+1 … s+N-1. Every seed is evaluated on the same evaluation
sample, so the spread across seeds is the training's alone; the binomial uncertainty of the
evaluation sample (``± stat``) is reported beside it.

The comparison row of a model keeps the cost of its own seed (the firmware of record) and
replaces each physics figure by its mean over the seeds, with the sample standard deviation
in ``<key>_seed_std`` and every seed's value in ``seed_values``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trigger_ml.config import ModelConfig, canonical_spec, split_model_spec
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.workspace import Workspace

SCAN_NAME = "compare-seeds"
SPREAD_KEYS = ("auc_b_vs_light", "rej_light_at_70", "rej_light_at_77", "rej_c_at_70", "rej_c_at_77")
STAT_KEYS = ("rej_light_at_70_stat", "rej_light_at_77_stat")
COST_KEYS = ("latency_cycles", "LUT", "FF")
"""Cost figures listed per seed in ``seed_values`` (the row keeps its own seed's)."""
MAX_SEEDS = 20


def seed_specs(config: ModelConfig, n_seeds: int) -> list[str]:
    """Model specs of ``config`` trained with its own seed and the next ``n_seeds - 1``."""
    name, overrides = split_model_spec(config.name)
    first = config.training.seed
    specs = [config.name]
    for seed in range(first + 1, first + n_seeds):
        specs.append(canonical_spec(name, {**overrides, "training.seed": seed}))
    return specs


def check_seed_count(n_seeds: int) -> None:
    if not 1 <= n_seeds <= MAX_SEEDS:
        raise UsageError(f"--seeds must be between 1 and {MAX_SEEDS} (got {n_seeds})", "use --seeds 3")


def train_seeds(
    configs: list[ModelConfig],
    n_seeds: int,
    ws: Workspace,
    cost_source: str,
    scheduler: str | None = None,
    n_workers: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Build every model with ``n_seeds`` training seeds as one scan on Dask; returns, per
    model name, the comparison rows of its seeds (its own seed first)."""
    from trigger_ml.scan import ScanSpec, run_scan

    check_seed_count(n_seeds)
    specs = {config.name: seed_specs(config, n_seeds) for config in configs}
    every = [spec for group in specs.values() for spec in group]
    scan = ScanSpec(
        name=SCAN_NAME,
        description=f"compare --seeds {n_seeds}",
        base=configs[0].name,
        points=[{}],  # the first model itself; the rest join as `with` models
        cost_source=cost_source,
    )
    result = run_scan(scan, ws, scheduler, n_workers, with_models=every[1:])
    by_model = {record["model"]: record for record in result.records}
    failed = [r for r in result.records if r["status"] not in ("ok", "skipped")]
    if failed:
        raise TriggerMLError(
            f"{len(failed)} seed training(s) failed, first {failed[0]['model']}: {failed[0]['error']}",
            f"see {result.summary_path}",
        )
    return {name: [by_model[spec]["row"] for spec in group] for name, group in specs.items()}


def spread(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of each physics figure, the standard deviation across seeds and every value."""
    out: dict[str, Any] = {"n_seeds": len(rows), "seed_values": {}}
    for key in COST_KEYS:
        out["seed_values"][key] = [row.get(key) for row in rows]
    for key in (*SPREAD_KEYS, *STAT_KEYS):
        values = [row.get(key) for row in rows]
        out["seed_values"][key] = values
        if any(v is None for v in values):
            out[key] = None
            out[f"{key}_seed_std"] = None
            continue
        out[key] = float(np.mean(values))
        out[f"{key}_seed_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return out


def rejection_uncertainty(row: dict[str, Any], key: str = "rej_light_at_70") -> float | None:
    """Uncertainty of a row's (mean) rejection as a measure of the model: the standard error of
    the mean over seeds and the evaluation sample's binomial uncertainty, in quadrature."""
    stat = row.get(f"{key}_stat")
    if stat is None:
        return None
    std, n = row.get(f"{key}_seed_std"), row.get("n_seeds") or 1
    return math.sqrt(stat**2 + (std**2 / n if std is not None else 0.0))


def significance_lines(rows: list[dict[str, Any]], key: str = "rej_light_at_70", z: float = 2.0) -> list[str]:
    """The models ranked by ``key``; each is compared with every model below it. A difference
    is significant when it exceeds ``z`` times the two models' uncertainties
    (``rejection_uncertainty``) in quadrature."""
    ranked = sorted(
        (r for r in rows if isinstance(r.get(key), float) and rejection_uncertainty(r, key) is not None),
        key=lambda r: -r[key],
    )
    if len(ranked) < 2:
        return []
    seeds = {r.get("n_seeds") or 1 for r in ranked}
    lines = [
        "",
        f"Ranking by {key.replace('_', ' ')} ({'/'.join(map(str, sorted(seeds)))} training seed(s); "
        f"a difference is significant above {z:g} σ, σ = the two models' uncertainties in quadrature, "
        "each √(stat² + seed std² / seeds)); each model against every model below it:",
        "",
    ]
    for i, upper in enumerate(ranked):
        sigma_upper = rejection_uncertainty(upper, key)
        head = f"- {upper['model']} {upper[key]:.1f} ± {sigma_upper:.1f}"
        below = ranked[i + 1 :]
        if not below:
            lines.append(head)
            continue
        close = []
        for lower in below:
            sigma = math.hypot(sigma_upper, rejection_uncertainty(lower, key))
            pulls = (upper[key] - lower[key]) / sigma if sigma > 0 else math.inf
            if pulls < z:
                close.append(f"{lower['model']} ({pulls:.1f} σ)")
        if not close:
            lines.append(f"{head}: significantly above every model below it")
        elif len(close) == len(below):
            lines.append(f"{head}: not separable from any model below it: {', '.join(close)}")
        else:
            lines.append(
                f"{head}: not separable from {', '.join(close)}; significantly above the other "
                f"{len(below) - len(close)} below it"
            )
    return lines
