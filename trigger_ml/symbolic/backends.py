"""Symbolic-regression backends behind one interface: PySR (Julia) and Operon (PyPI wheel).

``choose_backend`` returns PySR when ``import pysr`` works *and* its Julia runtime starts
(probed once per process in a subprocess with a time limit, so a missing or
undownloadable Julia costs seconds, not the run), else Operon, recording why. Every
backend returns its candidate expressions as sympy expressions over ``x0 .. x{n-1}``
(the columns of the matrix it was given) with their training loss: one search yields
the whole front, up to the largest complexity limit of the sweep.
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import sympy

from trigger_ml.errors import TriggerMLError
from trigger_ml.symbolic.settings import SymbolicConfig

# Probe run in a fresh interpreter: importing pysr installs/loads Julia through juliacall.
_PYSR_PROBE = "import pysr\nfrom pysr import jl\nassert int(jl.seval('1 + 1')) == 2\n"

_OPERON_SYMBOLS = {
    "+": "add",
    "-": "sub",
    "*": "mul",
    "square": "square",
    "exp": "exp",
    "sin": "sin",
    "cos": "cos",
}


@dataclass(frozen=True)
class Candidate:
    """One expression found by a search."""

    expression: sympy.Expr  # over x0 .. x{n-1}
    loss: float  # mean squared error on the training subsample, as the backend measured it
    backend_complexity: int  # the backend's own size measure
    source: str = ""  # what produced it (the backend's name once the stage has it)


def feature_symbols(n: int) -> list[sympy.Symbol]:
    """The symbols ``x0 .. x{n-1}`` every backend and hls4ml use for the input columns."""
    return list(sympy.symbols(f"x0:{n}", real=True)) if n else []


def parse_expression(text: str, n_features: int) -> sympy.Expr:
    """Parse a backend's infix text (``^`` for powers allowed) over ``x0 .. x{n-1}``."""
    names = {str(s): s for s in feature_symbols(n_features)}
    try:
        return sympy.parse_expr(text.replace("^", "**"), local_dict=names)
    except (SyntaxError, TypeError, ValueError, sympy.SympifyError) as error:
        raise TriggerMLError(f"cannot parse the backend's expression {text!r} ({error})") from None


class Backend(ABC):
    """A symbolic-regression engine."""

    name: ClassVar[str]
    package: ClassVar[str]

    def version(self) -> str:
        return importlib.metadata.version(self.package)

    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, settings: SymbolicConfig) -> list[Candidate]:
        """Search expressions of ``y`` in the columns of ``x`` up to ``max(settings.max_complexity)``."""


class OperonBackend(Backend):
    """Operon (pyoperon): NSGA-II on (R², length), so one run gives the complexity front."""

    name = "operon"
    package = "pyoperon"

    def fit(self, x: np.ndarray, y: np.ndarray, settings: SymbolicConfig) -> list[Candidate]:
        from pyoperon.sklearn import SymbolicRegressor

        operators = settings.binary_operators + settings.unary_operators
        symbols = ",".join([_OPERON_SYMBOLS[op] for op in operators] + ["constant", "variable"])
        regressor = SymbolicRegressor(
            allowed_symbols=symbols,
            objectives=["r2", "length"],
            max_length=max(settings.max_complexity),
            max_depth=12,
            initialization_max_length=min(10, max(settings.max_complexity)),
            population_size=settings.population_size,
            generations=settings.generations,
            max_evaluations=10**12,  # the generations bound the search
            optimizer_iterations=5,
            tournament_size=3,
            n_threads=settings.threads,
            random_state=settings.seed,
        )
        regressor.fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        names = [str(s) for s in feature_symbols(x.shape[1])]
        return [
            Candidate(
                expression=parse_expression(regressor.get_model_string(s["tree"], 17, names), x.shape[1]),
                loss=float(s["mean_squared_error"]),
                backend_complexity=int(s["tree"].Length),
            )
            for s in regressor.pareto_front_
        ]


class PySRBackend(Backend):
    """PySR: its hall of fame holds the best expression at every complexity up to ``maxsize``."""

    name = "pysr"
    package = "pysr"

    def fit(self, x: np.ndarray, y: np.ndarray, settings: SymbolicConfig) -> list[Candidate]:
        from pysr import PySRRegressor

        with tempfile.TemporaryDirectory(prefix="trigger-ml-pysr-") as tmp:
            regressor = PySRRegressor(
                binary_operators=list(settings.binary_operators),
                unary_operators=list(settings.unary_operators),
                maxsize=max(settings.max_complexity),
                niterations=settings.generations,
                populations=settings.populations,
                population_size=settings.population_size,
                random_state=settings.seed,
                deterministic=True,
                parallelism="serial",
                progress=False,
                verbosity=0,
                output_directory=tmp,
                temp_equation_file=True,
            )
            regressor.fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            table = regressor.equations_
        return [
            Candidate(
                expression=parse_expression(str(row.sympy_format), x.shape[1]),
                loss=float(row.loss),
                backend_complexity=int(row.complexity),
            )
            for row in table.itertuples()
        ]


BACKENDS: dict[str, type[Backend]] = {"operon": OperonBackend, "pysr": PySRBackend}


@functools.lru_cache(maxsize=4)
def pysr_status(timeout_s: float) -> tuple[bool, str]:
    """(usable, reason): does ``import pysr`` work and does its Julia runtime start?"""
    try:
        importlib.metadata.version("pysr")
    except importlib.metadata.PackageNotFoundError:
        return False, "pysr is not installed"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PYSR_PROBE], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False, f"pysr imports but Julia did not start within {timeout_s:g} s"
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        return False, f"pysr is installed but its Julia runtime failed: {detail}"
    return True, "pysr imports and Julia starts"


@dataclass(frozen=True)
class BackendChoice:
    """The backend a run uses and why."""

    backend: Backend
    requested: str
    reason: str  # why this backend (for auto: why PySR was or was not used)

    def as_dict(self) -> dict[str, str]:
        return {
            "used": self.backend.name,
            "version": self.backend.version(),
            "requested": self.requested,
            "reason": self.reason,
        }


def choose_backend(settings: SymbolicConfig) -> BackendChoice:
    """PySR when it is requested or ``auto`` and usable, else Operon (``auto`` falls back)."""
    if settings.backend == "operon":
        return BackendChoice(OperonBackend(), "operon", "requested")
    usable, why = pysr_status(settings.pysr_probe_timeout_s)
    if usable:
        return BackendChoice(PySRBackend(), settings.backend, why)
    if settings.backend == "pysr":
        raise TriggerMLError(f"backend pysr requested but unusable: {why}", "use backend=auto or operon")
    return BackendChoice(OperonBackend(), "auto", f"fell back to operon: {why}")
