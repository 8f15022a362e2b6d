"""A fast bit-exact emulator of the firmware: the project's ``firmware_program.json`` run
with vectorised numpy arithmetic on whole batches of jets.

Every value is a fixed-point number held exactly in float64 (the programs' types are far
below 53 bits), so a Dense layer is one BLAS matrix product whose sums are exact whatever
their order, and every cast is the ``ap_fixed`` conversion of its type
(:func:`trigger_ml.hls.program.cast_values`). The HLS stage checks the emulator against the
C simulation on every test jet of every build; the C simulation stays the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import read_json
from trigger_ml.hls.program import PROGRAM_FILE, cast_values, mean_shift, program_steps

BATCH = 4096
# Largest number of bits a value may carry for float64 arithmetic to stay exact.
EXACT_BITS = 52


class _Range:
    """Bounds of the values a step produces: [low, high] on the grid 2^-f (f may be large)."""

    def __init__(self, low: float, high: float, f: int) -> None:
        self.low, self.high, self.f = float(low), float(high), int(f)

    @classmethod
    def of_type(cls, t: dict[str, Any]) -> _Range:
        return cls(-t["k"] * 2.0 ** t["i"], 2.0 ** t["i"] - 2.0 ** -t["f"], t["f"])

    def fits(self, t: dict[str, Any]) -> bool:
        """Is converting to ``t`` the identity on every value of this range?"""
        whole = _Range.of_type(t)
        return self.f <= t["f"] and self.low >= whole.low and self.high <= whole.high

    def cast(self, t: dict[str, Any]) -> _Range:
        if self.fits(t):
            return self
        whole = _Range.of_type(t)
        if self.low >= whole.low and self.high <= whole.high:  # rounds, cannot overflow far
            step = 2.0 ** -t["f"]
            return _Range(max(whole.low, self.low - step), min(whole.high, self.high + step), t["f"])
        return whole


def _fraction_bits(values: np.ndarray) -> int:
    """The fewest fractional bits that hold every value exactly (values are dyadic)."""
    f = 0
    while f < 60 and np.any(np.mod(values * 2.0**f, 1.0)):
        f += 1
    return f


def _plan(steps: list[dict[str, Any]]) -> list[set[str]]:
    """For every step, the casts that are the identity on every value they can receive (the
    emulator skips them; the C simulation's conversions there change nothing)."""
    plan: list[set[str]] = [set()]
    r = _Range.of_type(steps[0]["type"])
    for step in steps[1:]:
        skip: set[str] = set()
        op = step["op"]
        if op == "dense" and step["product_type"] is None:
            kernel = np.asarray(step["kernel"], dtype=np.float64)
            low = np.minimum(kernel * r.low, kernel * r.high).sum(axis=0)
            high = np.maximum(kernel * r.low, kernel * r.high).sum(axis=0)
            f = r.f + _fraction_bits(kernel)
            if step["bias"] is not None:
                bias = np.asarray(step["bias"], dtype=np.float64)
                low, high, f = low + bias, high + bias, max(f, _fraction_bits(bias))
            r = _Range(low.min(), high.max(), f)
            for name in ("sum_type", "result_type"):
                if step[name] is not None:
                    if r.fits(step[name]):
                        skip.add(name)
                    r = r.cast(step[name])
        elif op in ("relu", "linear", "reshape"):
            if op == "relu":
                r = _Range(max(r.low, 0.0), max(r.high, 0.0), r.f)
            if r.fits(step["result_type"]):
                skip.add("result_type")
            r = r.cast(step["result_type"])
        elif op == "mean":
            n = step["slots"]
            r = _Range(r.low * n, r.high * n, r.f)
            if r.fits(step["sum_type"]):
                skip.add("sum")
            r = r.cast(step["sum_type"])
            r = _Range(r.low / n, r.high / n, r.f + mean_shift(n))
            if r.fits(step["sum_type"]):
                skip.add("mean")
            r = r.cast(step["sum_type"])
            if r.fits(step["result_type"]):
                skip.add("result_type")
            r = r.cast(step["result_type"])
        else:  # product-by-product Dense, HGQ's quantizer: every cast is done
            r = _Range.of_type(step["result_type"])
        plan.append(skip)
    return plan


def _cast(values: np.ndarray, t: dict[str, Any], name: str, skip: set[str]) -> np.ndarray:
    return values if name in skip else cast_values(values, t)


def _dense(step: dict[str, Any], x: np.ndarray, skip: set[str]) -> np.ndarray:
    kernel = np.asarray(step["kernel"], dtype=np.float64)
    if step["product_type"] is not None:  # each product converted on its own, then summed
        products = cast_values(x[..., :, None] * kernel, step["product_type"])
        y = products.sum(axis=-2)
    else:
        y = x @ kernel
    if step["bias"] is not None:
        y += np.asarray(step["bias"], dtype=np.float64)
    if step["sum_type"] is not None:
        y = _cast(y, step["sum_type"], "sum_type", skip)
    return _cast(y, step["result_type"], "result_type", skip)


def _quantize_each(step: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """HGQ's heterogeneous quantizer: every element to its own ``ap_fixed<b, i>`` (b = 0: zero)."""
    k, b, i = (np.asarray(step[key], dtype=np.int64) for key in ("k", "b", "i"))
    t = {"k": k, "i": i - k, "f": b - i, "rounding": step["rounding"], "overflow": step["overflow"]}
    y = np.where(b > 0, cast_values(x, t), 0.0)
    return cast_values(y, step["result_type"])


def run_program(steps: list[dict[str, Any]], x: np.ndarray) -> np.ndarray:
    """The outputs of the firmware program on inputs ``x`` (batch first), bit for bit."""
    x = np.asarray(x, dtype=np.float64)
    first = steps[0]
    if list(x.shape[1:]) != list(first["shape"]):
        raise TriggerMLError(
            f"inputs of shape {x.shape[1:]} do not fit the firmware's input {tuple(first['shape'])}",
            "pass one row of model inputs per jet",
        )
    if first["type"]["i"] + first["type"]["f"] + first["type"]["k"] > EXACT_BITS:
        raise TriggerMLError("the input type is too wide for the emulator", "use the C simulation")
    plan = _plan(steps)
    outputs = []
    for start in range(0, len(x), BATCH):
        y = cast_values(x[start : start + BATCH], first["type"])
        for step, skip in zip(steps[1:], plan[1:], strict=True):
            op = step["op"]
            if op == "dense":
                y = _dense(step, y, skip)
            elif op == "relu":
                if "result_type" in skip:
                    y = np.maximum(y, 0.0)
                else:
                    y = cast_values(y, step["result_type"], relu=True)
            elif op == "linear":
                y = _cast(y, step["result_type"], "result_type", skip)
            elif op == "mean":
                total = _cast(y.sum(axis=1), step["sum_type"], "sum", skip)
                mean = _cast(total * 2.0 ** -mean_shift(step["slots"]), step["sum_type"], "mean", skip)
                y = _cast(mean, step["result_type"], "result_type", skip)
            elif op == "quantize_each":
                y = _quantize_each(step, y)
            elif op == "reshape":
                y = _cast(y.reshape((len(y), *step["shape"])), step["result_type"], "result_type", skip)
            else:
                raise TriggerMLError(
                    f"unknown firmware program step '{op}'", "rerun `trigger-ml hls --force`"
                )
        outputs.append(y.reshape(len(y), -1))
    return np.concatenate(outputs) if outputs else np.empty((0, 0))


def load_program(project_dir: Path) -> list[dict[str, Any]]:
    """The steps stored in ``<project_dir>/firmware_program.json``."""
    path = Path(project_dir) / PROGRAM_FILE
    if not path.is_file():
        raise TriggerMLError(f"{path} is missing", "rerun `trigger-ml hls MODEL --force`")
    return program_steps(read_json(path), str(path))


def emulate(project_dir: Path, x: np.ndarray) -> np.ndarray:
    """Run the stored firmware program of an HLS project on ``x``."""
    return run_program(load_program(project_dir), x)


def check_program(
    hls_model: Any, x: np.ndarray, logits_csim: np.ndarray
) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """The firmware program of a freshly converted model if the emulator reproduces the C
    simulation on every jet of ``x`` (else None), and the ``fidelity.emulator`` record:
    exact fraction, jets per second, or why there is no program."""
    import time

    from trigger_ml.hls.program import NotAProgram, extract_program

    try:
        steps = extract_program(hls_model)
    except NotAProgram as error:
        return None, {"n_jets": 0, "emulator_vs_csim_exact_fraction": None, "reason": error.message}
    start = time.perf_counter()
    emulated = run_program(steps, x)
    seconds = time.perf_counter() - start
    same = np.all(emulated == np.asarray(logits_csim, dtype=np.float64).reshape(len(x), -1), axis=1)
    record = {
        "n_jets": int(len(same)),
        "emulator_vs_csim_exact_fraction": float(same.mean()) if len(same) else None,
        "jets_per_s": float(len(x) / seconds) if seconds > 0 else None,
        "reason": None,
    }
    if not same.all():
        record["reason"] = f"the firmware program differs from the C simulation on {int((~same).sum())} jets"
        return None, record
    return steps, record
