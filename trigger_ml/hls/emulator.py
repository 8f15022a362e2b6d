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
from trigger_ml.hls.program import PROGRAM_FILE, cast_values, element_types, mean_shift, program_steps

BATCH = 4096
# Largest number of bits a value may carry for float64 arithmetic to stay exact.
EXACT_BITS = 52


class _Range:
    """Bounds of the values of one jet's tensor at some step, element by element: each value
    lies in [low, high] on the grid 2^-f."""

    def __init__(self, low: np.ndarray, high: np.ndarray, f: np.ndarray) -> None:
        self.low, self.high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        self.f = np.broadcast_to(np.asarray(f, dtype=np.int64), self.low.shape)

    @classmethod
    def of_type(cls, t: dict[str, Any], shape: tuple[int, ...]) -> _Range:
        k, i, f = (np.broadcast_to(np.asarray(t[key]), shape) for key in ("k", "i", "f"))
        return cls(-k * 2.0**i, 2.0**i - 2.0**-f, f)

    def fits(self, t: dict[str, Any]) -> bool:
        """Is converting to ``t`` the identity on every value of this range?"""
        whole = _Range.of_type(t, self.low.shape)
        return bool(
            np.all(self.f <= whole.f) and np.all(self.low >= whole.low) and np.all(self.high <= whole.high)
        )

    def cast(self, t: dict[str, Any]) -> _Range:
        if self.fits(t):
            return self
        whole = _Range.of_type(t, self.low.shape)
        inside = (self.low >= whole.low) & (self.high <= whole.high)  # rounding moves one step at most
        step = 2.0**-whole.f
        low = np.where(inside, np.maximum(whole.low, self.low - step), whole.low)
        high = np.where(inside, np.minimum(whole.high, self.high + step), whole.high)
        return _Range(low, high, whole.f)


def _fraction_bits(values: np.ndarray) -> np.ndarray:
    """Per value, the fewest fractional bits that hold it exactly (values are dyadic)."""
    values = np.asarray(values, dtype=np.float64)
    f = np.zeros(values.shape, dtype=np.int64)
    for _ in range(64):
        inexact = np.mod(values * 2.0**f, 1.0) != 0
        if not inexact.any():
            break
        f += inexact
    return f


def _dense_range(step: dict[str, Any], r: _Range, skip: set[str]) -> _Range:
    """Bounds after a Dense (adds ``product_type`` to ``skip`` if no product conversion acts)."""
    kernel = np.asarray(step["kernel"], dtype=np.float64)
    n_in = kernel.shape[0]
    low = r.low.reshape(-1, n_in).min(axis=0)  # per input channel, over track slots
    high = r.high.reshape(-1, n_in).max(axis=0)
    f = r.f.reshape(-1, n_in).max(axis=0)
    weight_f = _fraction_bits(kernel)
    nonzero = kernel != 0
    product_f = np.where(nonzero, f[:, None] + weight_f, 0)
    out_shape = r.low.shape[:-1] + (kernel.shape[1],)
    if step["product_type"] is not None:
        acc = _Range.of_type(step["product_type"], kernel.shape)
        ends = np.stack([kernel * low[:, None], kernel * high[:, None]])
        exact = (
            np.all(product_f <= acc.f)
            and np.all(ends.min(axis=0) >= acc.low)
            and np.all(ends.max(axis=0) <= acc.high)
        )
        if not exact:  # every product converted: only the accumulator type bounds the sum
            return _Range.of_type(step["product_type"], out_shape)
        skip.add("product_type")
    out_low = low @ np.maximum(kernel, 0) + high @ np.minimum(kernel, 0)
    out_high = high @ np.maximum(kernel, 0) + low @ np.minimum(kernel, 0)
    out_f = product_f.max(axis=0)
    if step["bias"] is not None:
        bias = np.asarray(step["bias"], dtype=np.float64)
        out_low, out_high, out_f = out_low + bias, out_high + bias, np.maximum(out_f, _fraction_bits(bias))
    shape = (1,) * (len(out_shape) - 1) + (-1,)
    return _Range(
        np.broadcast_to(out_low.reshape(shape), out_shape),
        np.broadcast_to(out_high.reshape(shape), out_shape),
        np.broadcast_to(out_f.reshape(shape), out_shape),
    )


def _cast_range(r: _Range, t: dict[str, Any], name: str, skip: set[str]) -> _Range:
    if r.fits(t):
        skip.add(name)
    return r.cast(t)


def _plan(steps: list[dict[str, Any]]) -> list[set[str]]:
    """For every step, the conversions that are the identity on every value they can receive
    (the emulator skips them: the C simulation's conversions there change nothing)."""
    plan: list[set[str]] = [set()]
    shape = tuple(steps[0]["shape"])
    r = _Range.of_type(steps[0]["type"], shape)
    for step in steps[1:]:
        skip: set[str] = set()
        op = step["op"]
        if op == "dense":
            r = _dense_range(step, r, skip)
            for name in ("sum_type", "result_type"):
                if step[name] is not None:
                    r = _cast_range(r, step[name], name, skip)
        elif op in ("relu", "linear"):
            if op == "relu":
                r = _Range(np.maximum(r.low, 0.0), np.maximum(r.high, 0.0), r.f)
            r = _cast_range(r, step["result_type"], "result_type", skip)
        elif op == "reshape":
            shape = tuple(step["shape"])
            r = _Range(r.low.reshape(shape), r.high.reshape(shape), r.f.reshape(shape))
            r = _cast_range(r, step["result_type"], "result_type", skip)
        elif op == "mean":
            n = step["slots"]
            r = _cast_range(
                _Range(r.low.sum(axis=0), r.high.sum(axis=0), r.f.max(axis=0)), step["sum_type"], "sum", skip
            )
            r = _cast_range(
                _Range(r.low / n, r.high / n, r.f + mean_shift(n)), step["sum_type"], "mean", skip
            )
            r = _cast_range(r, step["result_type"], "result_type", skip)
        elif op == "quantize_each":
            t, alive = element_types(step)
            each = _Range.of_type(t, alive.shape)
            r = _Range(
                np.where(alive, each.low, 0.0), np.where(alive, each.high, 0.0), np.where(alive, each.f, 0)
            )
            r = _cast_range(r, step["result_type"], "result_type", skip)
        plan.append(skip)
    return plan


def _cast(values: np.ndarray, t: dict[str, Any], name: str, skip: set[str]) -> np.ndarray:
    return values if name in skip else cast_values(values, t)


def _dense(step: dict[str, Any], x: np.ndarray, skip: set[str]) -> np.ndarray:
    kernel = np.asarray(step["kernel"], dtype=np.float64)
    if step["product_type"] is not None and "product_type" not in skip:  # each product converted, then summed
        products = cast_values(x[..., :, None] * kernel, step["product_type"])
        y = products.sum(axis=-2)
    else:
        y = x @ kernel
    if step["bias"] is not None:
        y += np.asarray(step["bias"], dtype=np.float64)
    if step["sum_type"] is not None:
        y = _cast(y, step["sum_type"], "sum_type", skip)
    return _cast(y, step["result_type"], "result_type", skip)


def _quantize_each(step: dict[str, Any], x: np.ndarray, skip: set[str]) -> np.ndarray:
    """HGQ's heterogeneous quantizer: every element to its own ``ap_fixed<b, i>`` (b = 0: zero)."""
    t, alive = element_types(step)
    y = np.where(alive, cast_values(x, t), 0.0)
    return _cast(y, step["result_type"], "result_type", skip)


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
                y = _quantize_each(step, y, skip)
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
    from trigger_ml.hls.program import NotAProgram, extract_program
    from trigger_ml.logs import timed

    try:
        steps = extract_program(hls_model)
    except NotAProgram as error:
        return None, {"n_jets": 0, "emulator_vs_csim_exact_fraction": None, "reason": error.message}
    with timed() as clock:
        emulated = run_program(steps, x)
    seconds = clock.seconds
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
