"""The fit: candidate expressions of the flat inputs, their scores, the Pareto front, the choice.

Candidates: the backend's front, one-input least-squares fits and, for D_b, the
hardware-aware sums and the backend's front with few-bit constants
(``trigger_ml.symbolic.sums``); each gets its estimated latency, the front is over
(complexity, latency, validation score: AUC or a light rejection, ``selection_metric``).
The validation split chooses among candidates, the test split measures them.
``run_fit`` returns the content of ``expressions.json``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import sympy

from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.logs import stage_logger, timed
from trigger_ml.physics import CLASS_NAMES, discriminant_from_logits
from trigger_ml.symbolic.backends import BackendChoice, Candidate, feature_symbols
from trigger_ml.symbolic.cost import firmware_cost
from trigger_ml.symbolic.firmware import evaluate, snap_constants, unsupported_reason
from trigger_ml.symbolic.inputs import DistillData
from trigger_ml.symbolic.metrics import STORED_REJECTIONS, discriminant_metrics
from trigger_ml.symbolic.selection import choose, ranking_key, validation_score
from trigger_ml.symbolic.settings import SymbolicConfig
from trigger_ml.symbolic.sums import snapped_candidates, sum_candidates

logger = stage_logger("distill")

FORMAT_VERSION = 2
"""Of the flat stage's ``expressions.json`` (and part of its cache key)."""
SINGLE_INPUT = "least squares on one input"


def select_features(x: np.ndarray, y: np.ndarray, k: int | None) -> np.ndarray:
    """Columns of the ``k`` inputs most rank-correlated with ``y`` (|Spearman rho|), in order."""
    from scipy.stats import spearmanr

    if k is None or k >= x.shape[1]:
        return np.arange(x.shape[1])
    rho = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        if np.ptp(x[:, j]) > 0:
            rho[j] = abs(spearmanr(x[:, j], y).statistic)
    return np.sort(np.argsort(-np.nan_to_num(rho), kind="stable")[:k])


def expression_complexity(expr: sympy.Expr) -> int:
    """Nodes of the expression as a binary tree: leaves, operators (an n-ary sum or product
    counts n - 1), functions. The same measure for every backend."""
    if not expr.args:
        return 1
    if expr.is_Add or expr.is_Mul:
        return len(expr.args) - 1 + sum(expression_complexity(arg) for arg in expr.args)
    return 1 + sum(expression_complexity(arg) for arg in expr.args)


def readable(expr: sympy.Expr, feature_names: list[str]) -> str:
    """The expression with ``x<i>`` replaced by the flat input names."""
    return str(expr.xreplace({s: sympy.Symbol(feature_names[int(s.name[1:])]) for s in expr.free_symbols}))


def fit_output(
    choice: BackendChoice, x: np.ndarray, y: np.ndarray, settings: SymbolicConfig, label: str
) -> tuple[list[Candidate], list[int], float]:
    """Run the backend on the selected columns; candidates over the global ``x<i>`` symbols."""
    columns = select_features(x, y, settings.select_features)
    logger.info(
        f"{label}: {choice.backend.name} on {len(y)} jets, {len(columns)} inputs, "
        f"complexity up to {max(settings.max_complexity)}"
    )
    with timed() as clock:
        found = choice.backend.fit(x[:, columns], y, settings)
    seconds = clock.seconds
    local, glob = feature_symbols(len(columns)), feature_symbols(x.shape[1])
    mapping = {local[i]: glob[c] for i, c in enumerate(columns)}
    candidates = [
        Candidate(c.expression.xreplace(mapping), c.loss, c.backend_complexity, choice.backend.name)
        for c in found
    ]
    return candidates, [int(c) for c in columns], seconds


def single_input_fits(x: np.ndarray, y: np.ndarray, columns: list[int]) -> list[Candidate]:
    """Least-squares ``a * x_j + b`` for each offered input: the front's cheapest members.

    The backends rank expressions by their error on the target, not by AUC; these anchor the
    low-complexity end of the AUC front (an input the search passed over may rank jets well).
    """
    symbols = feature_symbols(x.shape[1])
    out = []
    for j in columns:
        design = np.column_stack([x[:, j], np.ones(len(x))])
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        loss = float(np.mean((design @ np.array([a, b]) - y) ** 2))
        out.append(Candidate(sympy.Float(a, 17) * symbols[j] + sympy.Float(b, 17), loss, 3, SINGLE_INPUT))
    return out


def output_discriminant(outputs: np.ndarray, kind: str, f_c: float) -> np.ndarray:
    return outputs[:, 0] if kind == "discriminant" else discriminant_from_logits(outputs, f_c)


def pareto_indices(complexity: list[int], latency: list[int], auc: list[float]) -> list[int]:
    """Candidates no other beats in (complexity, latency, AUC): none has lower or equal
    complexity and latency and higher or equal AUC, one of them strictly. Ordered by input."""
    points = list(zip(complexity, latency, auc, strict=True))

    def beats(a: tuple[int, int, float], b: tuple[int, int, float]) -> bool:
        return a[0] <= b[0] and a[1] <= b[1] and a[2] >= b[2] and a != b

    return [i for i, p in enumerate(points) if not any(beats(q, p) for q in points)]


def _score(exprs: list[sympy.Expr], kind: str, data: DistillData, f_c: float) -> dict[str, Any]:
    """Complexity, MSE, AUC and light rejections at 70 % / 77 % (validation, test) of one
    model (one or three expressions); the metrics are ``tagging_metrics``'."""
    row: dict[str, Any] = {"complexity": sum(expression_complexity(e) for e in exprs)}
    reason = next((r for r in map(unsupported_reason, exprs) if r), None)
    row["firmware"] = reason is None
    if reason:
        row["unsupported"] = reason
    for split in ("val", "test"):
        outputs = evaluate(exprs, data.x[split])
        disc = output_discriminant(outputs, kind, f_c)
        target = (
            discriminant_from_logits(data.logits[split], f_c)[:, None]
            if kind == "discriminant"
            else data.logits[split]
        )
        finite = np.all(np.isfinite(outputs))
        row[f"mse_{split}"] = float(np.mean((outputs - target) ** 2)) if finite else None
        metrics = discriminant_metrics(disc, data.classes[split]) if finite else {}
        row[f"auc_{split}"] = metrics.get("auc_b_vs_light")
        for key in STORED_REJECTIONS:
            row[f"{key}_{split}"] = metrics.get(key)
    return row


def run_fit(
    teacher: ModelConfig,
    data: DistillData,
    settings: SymbolicConfig,
    choice: BackendChoice,
    teacher_cost: dict[str, Any] | None,
) -> dict[str, Any]:
    """All candidates, the Pareto front, the sweep and the choice (expressions.json content)."""
    f_c = teacher.physics.f_c
    kind = "discriminant" if "discriminant" in settings.targets else "logits"
    fits: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    seconds = cpu_seconds = 0.0
    for target in settings.targets:
        outputs = ["discriminant"] if target == "discriminant" else [f"logit_{c}" for c in CLASS_NAMES]
        per_output = {}
        for i, output in enumerate(outputs):
            y = (
                discriminant_from_logits(data.logits["fit"], f_c)
                if target == "discriminant"
                else data.logits["fit"][:, i]
            )
            cpu = time.process_time()
            candidates, columns, took = fit_output(choice, data.x["fit"], y, settings, output)
            cpu = time.process_time() - cpu
            candidates += single_input_fits(data.x["fit"], y, columns)
            sums_seconds = 0.0
            if target == "discriminant" and settings.sums.enabled:
                with timed() as clock:
                    candidates += snapped_candidates(
                        [c for c in candidates if c.source == choice.backend.name],
                        data.x["fit"],
                        y,
                        data.x["val"],
                        data.classes["val"],
                        settings,
                    )
                    candidates += sum_candidates(
                        data.x["fit"],
                        y,
                        data.x["val"],
                        data.classes["val"],
                        [int(c) for c in select_features(data.x["fit"], y, settings.sums.features)],
                        [int(c) for c in select_features(data.x["fit"], y, settings.sums.product_features)]
                        if settings.sums.product_features
                        else [],
                        settings,
                    )
                sums_seconds = clock.seconds
                logger.info(f"{output}: sums and snapped front in {sums_seconds:.0f} s")
            seconds += took + sums_seconds
            cpu_seconds += cpu
            per_output[output] = candidates
            fits[output] = {
                "inputs": [data.feature_names[c] for c in columns],
                "candidates": [
                    {
                        "complexity": expression_complexity(c.expression),
                        "backend_complexity": c.backend_complexity,
                        "train_mse": c.loss,
                        "expression": str(c.expression),
                        "source": c.source,
                    }
                    for c in candidates
                ],
                "seconds": took,
                "sums_seconds": sums_seconds,
                "cpu_seconds": cpu,
            }
        if target != kind:
            continue
        if kind == "discriminant":
            groups = [([c.expression], c.source) for c in per_output["discriminant"]]
        else:  # one logits model per sweep limit: the best fit of each class within it
            groups = []
            for limit in settings.max_complexity:
                best = [
                    min(
                        (c for c in per_output[o] if expression_complexity(c.expression) <= limit),
                        key=lambda c: c.loss,
                        default=None,
                    )
                    for o in outputs
                ]
                if all(best):
                    groups.append(([c.expression for c in best], choice.backend.name))
        for exprs, source in groups:
            models.append({"expressions": exprs, "source": source, **_score(exprs, kind, data, f_c)})
    result = _choose(teacher, data, settings, choice, teacher_cost, kind, models, fits)
    result.update(search_seconds=seconds, search_cpu_seconds=cpu_seconds)
    return result


def teacher_scores(disc: dict[str, np.ndarray], classes: dict[str, np.ndarray]) -> dict[str, Any]:
    """The teacher's AUC and light rejections (validation, test) as the candidates store them."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        metrics = discriminant_metrics(disc[split], classes[split])
        out[f"auc_{split}"] = float(metrics["auc_b_vs_light"])
        for key in STORED_REJECTIONS:
            out[f"{key}_{split}"] = metrics[key]
    return out


def _choose(
    teacher: ModelConfig,
    data: DistillData,
    settings: SymbolicConfig,
    choice: BackendChoice,
    teacher_cost: dict[str, Any] | None,
    kind: str,
    models: list[dict[str, Any]],
    fits: dict[str, Any],
) -> dict[str, Any]:
    """Front, latency of its members, the choice (docs/symbolic.md) and the sweep."""
    f_c = teacher.physics.f_c
    metric = settings.selection_metric
    n_light = int(np.count_nonzero(data.classes["val"] == CLASS_NAMES.index("light")))
    usable = [m for m in models if m["firmware"] and m["auc_val"] is not None]
    if not usable:
        raise TriggerMLError(
            "the search found no expression that can become firmware", "widen the search (generations)"
        )
    # Deduplicate (the same expression can come from several generations or limits).
    unique = {tuple(str(e) for e in m["expressions"]): m for m in usable}
    usable = sorted(unique.values(), key=ranking_key(metric, n_light))
    teacher_latency = teacher_cost["latency_cycles"]["max"] if teacher_cost else None
    budget = (
        settings.max_latency_fraction * teacher_latency
        if teacher_latency is not None and settings.max_latency_fraction is not None
        else None
    )
    hls = teacher.hls
    for m in usable:
        deployed = [snap_constants(e, settings.precision) for e in m["expressions"]]
        cost = firmware_cost(deployed, settings, hls)
        m["latency_cycles"] = cost["latency_cycles"]["max"]
        m["within_latency_budget"] = budget is None or m["latency_cycles"] <= budget + 1e-9
    front = [
        usable[i]
        for i in pareto_indices(
            [m["complexity"] for m in usable],
            [m["latency_cycles"] for m in usable],
            [validation_score(m, metric, n_light) for m in usable],
        )
    ]
    teacher_row = teacher_scores(
        {split: discriminant_from_logits(data.logits[split], f_c) for split in ("val", "test")}, data.classes
    )
    chosen, selection = choose(
        front, settings, validation_score(teacher_row, metric, n_light), n_light, budget
    )
    sweep = []
    for limit in settings.max_complexity:
        inside = [m for m in usable if m["complexity"] <= limit]
        best = max(inside, key=lambda m: validation_score(m, metric, n_light), default=None)
        sweep.append({"max_complexity": limit, "model": usable.index(best) if best else None})

    def public(m: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in m.items() if k != "expressions"}
        out["expressions"] = [str(e) for e in m["expressions"]]
        out["readable"] = [readable(e, data.feature_names) for e in m["expressions"]]
        return out

    return {
        "format_version": FORMAT_VERSION,
        "output": kind,
        "backend": choice.as_dict(),
        "feature_names": data.feature_names,
        "teacher": {**teacher_row, "latency_cycles": teacher_latency},
        "selection": selection,
        "models": [public(m) for m in usable],
        "front": [usable.index(m) for m in front],
        "sweep": sweep,
        "chosen": usable.index(chosen),
        "fits": fits,
        "_chosen_expressions": chosen["expressions"],
    }
