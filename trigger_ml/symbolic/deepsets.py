"""The symbolic Deep Set: Φ's latent components and F each an expression, the sum kept.

A Deep Set teacher computes ``F(mean_s Φ(track_s))``. Following Soybelman ("Accelerating
Graph-Based Tracking with Symbolic Regression", IML workshop, January 2024), each component
of the teacher's per-track latent vector, ``φ_k`` (the output of Φ's last ReLU), is replaced
by an expression of the track's features, and F by an expression of the pooled latents;
the pooling over the track slots is kept. This module fits them (``run_fit``) and composes
the deployed expression; ``trigger_ml.symbolic.deepsets_stage.build_deepsets`` is the
stage that caches the fit and builds the firmware.

**φ_k** (one per latent component; a component the teacher never fires is dropped): a sum
of terms of the track features with few-bit constants and *no constant term*, each term
zero for an all-zero track — a feature ``x_j``, ``Min(x_j, t)`` with ``t >= 0``,
``Max(x_j, t)`` with ``t <= 0``, products ``x_i x_j`` — plus the ``valid`` feature (1 on a
real track, 0 on padding), which plays the bias. So a padded slot contributes exactly zero
to the sum, by construction. Terms are chosen by forward selection on the squared error to
the teacher's latent (valid tracks of the training subsample), and the coefficients snapped
to ``sums.constant_set_bits`` set bits one at a time with least-squares refits.

**F**: expressions of the pooled latents ``p_k = 2^-m Σ_s φ_k(x_s)`` (``2^m`` slots) fitted
to the teacher's D_b: the backend's front (Operon or PySR), its copies with few-bit
constants, the sums generator (without saturations: a saturation of a pooled sum is not an
input compared with a constant) and single-latent least squares, fitted on the pooled
latents of the expressions and/or of the teacher (``deepsets.f_inputs``); every candidate
is scored on the expressions' latents, which is what the firmware computes.

**Deployment**: one sympy expression over the flat (slots × features) inputs with the sum
unrolled. Constants that multiply a pooled sum are written ``result_t(c)``
(``firmware.cast_constant``) so that hls4ml's re-parse does not distribute them over the
sum: the firmware computes each φ_k per slot, sums the slots, shifts, then F, as the cost
estimate assumes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from trigger_ml.config import FixedPoint, ModelConfig
from trigger_ml.data.dataset import model_inputs, prepare, quantize_to_fixed, read_sample
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.logs import Stopwatch, stage_logger
from trigger_ml.physics import LIGHT, discriminant_from_logits
from trigger_ml.symbolic.backends import BackendChoice, Candidate, feature_symbols
from trigger_ml.symbolic.cost import firmware_cost
from trigger_ml.symbolic.firmware import (
    cast_constant,
    evaluate,
    is_cast_constant,
    round_to_type,
    snap_constants,
    unsupported_reason,
)
from trigger_ml.symbolic.fit import (
    expression_complexity,
    fit_output,
    pareto_indices,
    select_features,
    single_input_fits,
    teacher_scores,
)
from trigger_ml.symbolic.inputs import check_precision_holds
from trigger_ml.symbolic.metrics import STORED_REJECTIONS, discriminant_metrics
from trigger_ml.symbolic.selection import choose, ranking_key, validation_score
from trigger_ml.symbolic.settings import LUT_UNARY, SymbolicConfig
from trigger_ml.symbolic.sums import (
    Term,
    constant,
    distinct_terms,
    few_bit_value,
    snapped_candidates,
    sum_candidates,
)

logger = stage_logger("distill")

DS_SUFFIX = "-srds"
FORMAT_VERSION = 1
PHI_SOURCE = "sums (zero-preserving terms, least squares, few-bit constants)"
MAX_F_POWER = 2
"""Highest integer power F may take of a pooled latent (a larger one made g++ spend more
than 10 minutes on dips-small's expression: hls4ml repeats the base, a sum over all slots)."""
PHI_MIN_GAIN = 1e-3
"""Forward selection of a φ_k's terms stops when a term removes less than this fraction of
the remaining squared error."""


# --- inputs and targets -------------------------------------------------------------------


def deepsets_name(teacher: ModelConfig) -> str:
    """Name of the symbolic Deep Set: ``<teacher>-srds``."""
    return teacher.name + DS_SUFFIX


def check_teacher(teacher: ModelConfig, settings: SymbolicConfig) -> None:
    """One-line errors for a teacher or settings the symbolic Deep Set cannot use."""
    if teacher.architecture.kind != "deepsets":
        raise UsageError(
            f"{teacher.name} is a {teacher.architecture.kind} model: structure 'deepsets' needs a Deep Set teacher",
            "use structure=flat (the default) for it",
        )
    slots = teacher.inputs.max_tracks
    if slots & (slots - 1):
        raise UsageError(
            f"{teacher.name}: {slots} track slots is not a power of two (the mean would not be a shift)",
            "use a power-of-two inputs.max_tracks",
        )
    if "discriminant" not in settings.targets:
        raise UsageError("structure 'deepsets' fits the discriminant only", "use targets=[discriminant]")
    check_precision_holds(settings.precision, teacher.quantization.input)


@dataclass(frozen=True)
class DeepSetData:
    """Track inputs (quantized onto the input type), teacher latents and logits per split."""

    tracks: dict[str, np.ndarray]  # "fit", "val", "test" -> (n, slots, features) float64
    latents: dict[str, np.ndarray]  # -> (n, slots, K) teacher Φ output (after its ReLU)
    logits: dict[str, np.ndarray]  # -> (n, 3) teacher logits
    classes: dict[str, np.ndarray]
    indices: dict[str, np.ndarray]  # row numbers in the sample file
    features: list[str]  # track feature names

    def flat(self, key: str) -> np.ndarray:
        """(n, slots * features): slot by slot, the columns ``x0 …`` of the firmware."""
        tracks = self.tracks[key]
        return tracks.reshape(len(tracks), -1)

    def target(self, key: str, f_c: float) -> np.ndarray:
        return discriminant_from_logits(self.logits[key], f_c)


def latent_model(model: Any, teacher: ModelConfig) -> Any:
    """Keras sub-model: the teacher's per-track latent vector (Φ's last ReLU)."""
    import tensorflow as tf

    layer = model.get_layer(f"phi_{len(teacher.architecture.phi_widths)}_relu")
    return tf.keras.Model(model.inputs, layer.output)


def load_deepset_data(
    teacher: ModelConfig, run: Any, data_path: Path, settings: SymbolicConfig
) -> DeepSetData:
    """Inputs, latents and logits of the teacher on the fit subsample, validation and test."""
    sample = read_sample(data_path)
    data = prepare(sample, teacher, scaling=run.scaling)
    model = run.load_reference(teacher)
    phi = latent_model(model, teacher)
    n_train = len(data.indices["train"])
    pick = np.sort(
        np.random.default_rng(settings.seed).choice(n_train, min(settings.subsample, n_train), replace=False)
    )
    tracks, latents, logits, classes, indices = {}, {}, {}, {}, {}
    for key, split, rows in (("fit", "train", pick), ("val", "val", None), ("test", "test", None)):
        rows = slice(None) if rows is None else rows
        x = model_inputs(data.inputs[split][rows], teacher)
        logits[key] = model.predict(x, batch_size=4096, verbose=0).astype(np.float64)
        latents[key] = phi.predict(x, batch_size=4096, verbose=0).astype(np.float64)
        # The firmware's input encoding, whether or not the teacher itself is quantized.
        tracks[key] = quantize_to_fixed(data.inputs[split][rows], teacher.quantization.input).astype(
            np.float64
        )
        classes[key] = data.classes[split][rows]
        indices[key] = data.indices[split][rows]
    return DeepSetData(tracks, latents, logits, classes, indices, list(teacher.inputs.track_features))


# --- φ_k ----------------------------------------------------------------------------------


def phi_term_library(tracks: np.ndarray, valid_index: int | None, settings: SymbolicConfig) -> list[Term]:
    """Terms of the track features that are exactly zero on an all-zero track (module doc)."""
    sums, fp = settings.sums, settings.precision
    columns = [i for i in range(tracks.shape[1]) if i != valid_index and np.ptp(tracks[:, i]) > 0]
    terms: list[Term] = []
    for i in columns:
        column = tracks[:, i]
        terms.append(Term("linear", i))
        for kind, quantiles in (("min", sums.upper_quantiles), ("max", sums.lower_quantiles)):
            limits = round_to_type(np.quantile(column, quantiles), fp) if quantiles else []
            for t in sorted(set(float(v) for v in limits)):
                if (kind == "min" and t >= 0) or (kind == "max" and t <= 0):
                    terms.append(Term(kind, i, t=t))
    if settings.deepsets.phi_products and "*" in settings.binary_operators:
        terms += [Term("product", i, j) for i, j in itertools.combinations_with_replacement(columns, 2)]
    return distinct_terms(terms, tracks)


def snap_and_refit_through_zero(
    columns: np.ndarray, y: np.ndarray, fp: FixedPoint, max_set_bits: int | None
) -> np.ndarray:
    """Coefficients (few set bits) of ``y ~ columns @ c``, no offset: one at a time, the
    largest contribution first, snapped; the others refitted with it fixed."""
    k = columns.shape[1]
    coef, fixed = np.zeros(k), np.zeros(k, dtype=bool)
    scale = np.sqrt(np.mean(columns**2, axis=0))
    for _ in range(k):
        free = np.flatnonzero(~fixed)
        w, *_ = np.linalg.lstsq(columns[:, free], y - columns[:, fixed] @ coef[fixed], rcond=None)
        j = int(np.argmax(np.abs(w) * scale[free]))
        coef[free[j]] = few_bit_value(float(w[j]), fp, max_set_bits)
        fixed[free[j]] = True
    return coef


def fit_phi(
    tracks: np.ndarray, y: np.ndarray, terms: list[Term], valid_index: int | None, settings: SymbolicConfig
) -> list[tuple[Term, float]]:
    """One latent component: forward selection of terms on the squared error (the ``valid``
    term, the bias, always first), then few-bit coefficients. Empty for a dead component."""
    if not np.any(y):
        return []
    base = [Term("linear", valid_index)] if valid_index is not None else []
    library = base + terms
    design = np.column_stack([t.values(tracks) for t in library])
    gram, moment, total = design.T @ design, design.T @ y, float(y @ y)
    selected = list(range(len(base)))

    def rss(index: list[int]) -> float:
        if not index:
            return total
        try:
            w = np.linalg.solve(gram[np.ix_(index, index)], moment[index])
        except np.linalg.LinAlgError:
            return np.inf
        return total - float(w @ moment[index])

    current = rss(selected)
    for _ in range(settings.deepsets.phi_terms):
        scores = [(rss([*selected, t]), t) for t in range(len(base), len(library)) if t not in selected]
        if not scores:
            break
        best, t = min(scores)
        if not np.isfinite(best) or current - best < PHI_MIN_GAIN * current:
            break
        selected.append(t)
        current = best
    coef = snap_and_refit_through_zero(
        design[:, selected], y, settings.precision, settings.sums.constant_set_bits
    )
    return [(library[t], float(c)) for t, c in zip(selected, coef, strict=True) if c]


def phi_values(phi: list[tuple[Term, float]], tracks: np.ndarray) -> np.ndarray:
    """φ on every row of ``tracks`` (..., features) -> (...)."""
    flat = tracks.reshape(-1, tracks.shape[-1])
    out = np.zeros(len(flat))
    for term, c in phi:
        out += c * term.values(flat)
    return out.reshape(tracks.shape[:-1])


def phi_expression(phi: list[tuple[Term, float]], symbols: list[sympy.Symbol]) -> sympy.Expr:
    """φ over the given feature symbols (no constant term)."""
    return sympy.Add(*[constant(c) * term.expression(symbols) for term, c in phi])


def pooled(phis: list[list[tuple[Term, float]]], tracks: np.ndarray) -> np.ndarray:
    """(n, K): mean over slots of each φ_k (padding included: it contributes zero)."""
    return np.stack([phi_values(phi, tracks).mean(axis=1) for phi in phis], axis=1)


# --- composition --------------------------------------------------------------------------


def _cast_numbers(expr: sympy.Expr) -> sympy.Expr:
    """Every constant of F (not ±1 signs, not exponents) as ``result_t(c)``."""
    if expr.is_Number:
        return expr if abs(float(expr)) == 1 else cast_constant(float(expr))
    if expr.is_Pow:
        return sympy.Pow(_cast_numbers(expr.base), expr.exp)
    if not expr.args:
        return expr
    return expr.func(*[_cast_numbers(arg) for arg in expr.args])


def pooled_expressions(
    phis: list[list[tuple[Term, float]]], n_slots: int, n_features: int
) -> list[sympy.Expr]:
    """``p_k = 2^-m Σ_s φ_k(x_s)`` over the flat inputs, the sum unrolled (0 for a dead φ_k)."""
    flat = feature_symbols(n_slots * n_features)
    shift = cast_constant(1.0 / n_slots)
    out: list[sympy.Expr] = []
    for phi in phis:
        slots = [phi_expression(phi, flat[s * n_features : (s + 1) * n_features]) for s in range(n_slots)]
        out.append(sympy.Mul(shift, sympy.Add(*slots)) if phi else sympy.Integer(0))
    return out


def compose(
    f_expr: sympy.Expr,
    phis: list[list[tuple[Term, float]]],
    n_slots: int,
    n_features: int,
    pooled_exprs: list[sympy.Expr] | None = None,
) -> sympy.Expr:
    """F(p) with ``p_k = 2^-m Σ_s φ_k(x_s)``, the sum unrolled over the flat inputs."""
    pooled_exprs = pooled_exprs or pooled_expressions(phis, n_slots, n_features)
    latent = feature_symbols(len(phis))
    return _cast_numbers(f_expr).xreplace(dict(zip(latent, pooled_exprs, strict=True)))


def cast_constants(expr: sympy.Expr) -> list[float]:
    """The values of the ``result_t(c)`` constants of a deployed expression."""
    return [float(node.args[0]) for node in sympy.preorder_traversal(expr) if is_cast_constant(node)]


def f_reason(expr: sympy.Expr) -> str | None:
    """Why F cannot be composed into firmware (saturations and tables of a pooled sum)."""
    reason = unsupported_reason(expr)
    if reason:
        return reason
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (sympy.Min, sympy.Max)):
            return f"{node}: a saturation of a pooled sum is not an input compared with a constant"
        if isinstance(node, sympy.Function) and node.func.__name__ in LUT_UNARY:
            return f"{node}: look-up tables are not offered to the symbolic Deep Set's F"
        if node.is_Pow and node.exp.is_Integer and int(node.exp) > MAX_F_POWER:
            return (
                f"{node}: hls4ml writes a power as that many copies of its base, here a sum over "
                f"every slot (powers up to {MAX_F_POWER} only)"
            )
    return None


# --- the fit ------------------------------------------------------------------------------


def _f_candidates(
    choice: BackendChoice,
    p_fit: np.ndarray,
    y: np.ndarray,
    p_val: np.ndarray,
    classes_val: np.ndarray,
    settings: SymbolicConfig,
    label: str,
) -> tuple[list[Candidate], dict[str, Any]]:
    """F candidates fitted on ``p_fit`` (pooled latents), the sums' choices made on ``p_val``."""
    clock = Stopwatch()
    found, columns, took = fit_output(choice, p_fit, y, settings, f"F on {label} latents")
    candidates = found + single_input_fits(p_fit, y, columns)
    if settings.sums.enabled:
        no_saturation = settings.model_copy(
            update={"sums": settings.sums.model_copy(update={"upper_quantiles": (), "lower_quantiles": ()})}
        )
        candidates += snapped_candidates(found, p_fit, y, p_val, classes_val, settings)
        candidates += sum_candidates(
            p_fit,
            y,
            p_val,
            classes_val,
            list(range(p_fit.shape[1])),
            [int(c) for c in select_features(p_fit, y, settings.sums.product_features)]
            if settings.sums.product_features
            else [],
            no_saturation,
        )
    candidates = [
        Candidate(c.expression, c.loss, c.backend_complexity, f"{c.source}; F on {label} latents")
        for c in candidates
    ]
    return candidates, {"backend_seconds": took, "seconds": clock.seconds}


def run_fit(
    teacher: ModelConfig,
    data: DeepSetData,
    settings: SymbolicConfig,
    choice: BackendChoice,
    teacher_cost: dict[str, Any] | None,
) -> dict[str, Any]:
    """The φ_k, every F candidate with its score, the front and the choice."""
    f_c, fp, hls = teacher.physics.f_c, settings.precision, teacher.hls
    n_slots, n_features = data.tracks["fit"].shape[1:]
    valid_index = data.features.index("valid") if "valid" in data.features else None
    clock = Stopwatch()
    fit_tracks, fit_latents = data.tracks["fit"], data.latents["fit"]
    real = np.any(fit_tracks != 0, axis=-1)
    tracks, latents = fit_tracks[real], fit_latents[real]
    if len(tracks) > settings.deepsets.phi_tracks:
        keep = np.sort(
            np.random.default_rng(settings.seed).choice(
                len(tracks), settings.deepsets.phi_tracks, replace=False
            )
        )
        tracks, latents = tracks[keep], latents[keep]
    terms = phi_term_library(tracks, valid_index, settings)
    phis = [fit_phi(tracks, latents[:, k], terms, valid_index, settings) for k in range(latents.shape[1])]
    val_real = np.any(data.tracks["val"] != 0, axis=-1)
    phi_rows = []
    for k, phi in enumerate(phis):
        target = data.latents["val"][..., k][val_real]
        value = phi_values(phi, data.tracks["val"])[val_real]
        var = float(np.var(target))
        phi_rows.append(
            {
                "component": k,
                "expression": str(phi_expression(phi, feature_symbols(n_features))),
                "readable": str(phi_expression(phi, [sympy.Symbol(n) for n in data.features])),
                "terms": len(phi),
                "r2_val": None if var == 0 else 1 - float(np.mean((value - target) ** 2)) / var,
                "source": PHI_SOURCE if phi else "dead component (teacher latent zero on every fit track)",
            }
        )
    phi_seconds = clock.seconds
    alive = sum(1 for phi in phis if phi)
    logger.info(f"φ: {alive}/{len(phis)} latent components fitted in {phi_seconds:.0f} s")

    p = {key: pooled(phis, data.tracks[key]) for key in ("fit", "val", "test")}
    teacher_p = data.latents["fit"].mean(axis=1)
    y = data.target("fit", f_c)
    candidates: list[Candidate] = []
    f_fits = {}
    for source in settings.deepsets.f_inputs:
        p_fit = p["fit"] if source == "expression" else teacher_p
        found, info = _f_candidates(choice, p_fit, y, p["val"], data.classes["val"], settings, source)
        candidates += found
        f_fits[source] = info
    models = []
    budget_latency = teacher_cost["latency_cycles"]["max"] if teacher_cost else None
    budget = (
        settings.deepsets.max_latency_fraction * budget_latency
        if budget_latency is not None and settings.deepsets.max_latency_fraction is not None
        else None
    )
    phi_complexity = {
        k: expression_complexity(phi_expression(phi, feature_symbols(n_features)))
        for k, phi in enumerate(phis)
    }
    pooled_exprs = pooled_expressions(phis, n_slots, n_features)
    seen = set()
    for c in candidates:
        f_expr = snap_constants(c.expression, fp)
        if str(f_expr) in seen or f_reason(f_expr):
            continue
        seen.add(str(f_expr))
        row: dict[str, Any] = {"f_expression": str(f_expr), "source": c.source}
        used = sorted(int(s.name[1:]) for s in f_expr.free_symbols)
        row["complexity"] = expression_complexity(f_expr) + sum(phi_complexity[k] for k in used if phis[k])
        finite = True
        for split in ("val", "test"):
            out = evaluate([f_expr], p[split])[:, 0]
            finite = finite and bool(np.all(np.isfinite(out)))
            if not finite:
                break
            row[f"mse_{split}"] = float(np.mean((out - data.target(split, f_c)) ** 2))
            metrics = discriminant_metrics(out, data.classes[split])
            row[f"auc_{split}"] = metrics["auc_b_vs_light"]
            for key in STORED_REJECTIONS:
                row[f"{key}_{split}"] = metrics[key]
        if not finite or row.get("auc_val") is None:
            continue
        cost = firmware_cost([compose(f_expr, phis, n_slots, n_features, pooled_exprs)], settings, hls)
        row["latency_cycles"] = cost["latency_cycles"]["max"]
        row["resources"] = cost["resources"]
        row["within_latency_budget"] = budget is None or row["latency_cycles"] <= budget + 1e-9
        models.append(row)
    if not models:
        raise TriggerMLError("no F expression can become firmware", "widen the search (generations)")
    metric = settings.selection_metric
    n_light = int(np.count_nonzero(data.classes["val"] == LIGHT))
    models.sort(key=ranking_key(metric, n_light))
    front_index = pareto_indices(
        [m["complexity"] for m in models],
        [m["latency_cycles"] for m in models],
        [validation_score(m, metric, n_light) for m in models],
    )
    front = [models[i] for i in front_index]
    teacher_row = teacher_scores({split: data.target(split, f_c) for split in ("val", "test")}, data.classes)
    chosen, selection = choose(
        front, settings, validation_score(teacher_row, metric, n_light), n_light, budget
    )
    names = [f"p{k}" for k in range(len(phis))]
    for m in models:
        m["expressions"] = [m["f_expression"]]
        m["readable"] = [
            str(
                sympy.sympify(m["f_expression"], locals=latent_locals(len(phis))).xreplace(
                    dict(zip(feature_symbols(len(phis)), map(sympy.Symbol, names), strict=True))
                )
            )
        ]
    return {
        "format_version": FORMAT_VERSION,
        "structure": "deepsets",
        "output": "discriminant",
        "backend": choice.as_dict(),
        "track_features": data.features,
        "n_slots": int(n_slots),
        "phi": phi_rows,
        "phi_terms": [
            [{"kind": t.kind, "i": t.i, "j": t.j, "t": t.t, "c": c} for t, c in phi] for phi in phis
        ],
        "teacher": {**teacher_row, "latency_cycles": budget_latency},
        "selection": selection,
        "models": models,
        "front": [models.index(m) for m in front],
        "chosen": models.index(chosen),
        "fits": {"phi_seconds": phi_seconds, "phi_tracks": int(len(tracks)), "f": f_fits},
    }


def phis_from_result(result: dict[str, Any]) -> list[list[tuple[Term, float]]]:
    return [
        [(Term(r["kind"], r["i"], r["j"], r["t"]), float(r["c"])) for r in phi] for phi in result["phi_terms"]
    ]


def latent_locals(n: int) -> dict[str, sympy.Symbol]:
    """``locals`` for sympify: ``x0 … x<n-1>`` as :func:`feature_symbols`' (real) symbols."""
    return {str(s): s for s in feature_symbols(n)}
