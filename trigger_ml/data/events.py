"""Pythia 8 set-up and event streams: seeds, process settings, events read in batches.

Events are read from Pythia in batches as numpy columns (``Pythia.nextBatch``); an
``EventBatch`` slices them into per-event ``Event`` records on demand.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger_ml.data.settings import PILEUP_PROCESSES, GeneratorSettings
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import sha256_of_obj

_PYTHIA_SEED_MAX = 900_000_000  # Pythia accepts Random:seed in [1, 900 000 000]
_MAX_FAILURES_PER_BATCH = 100  # Pythia events that may fail within one batch before we give up
MAX_BATCH_EVENTS = 64
"""Most events asked of Pythia in one batch."""


def pythia_seed(seed: int, shard_index: int, stream: str = "ttbar") -> int:
    """Pythia's Random:seed for one stream of a shard (the hard process or the pile-up).

    The tt-bar stream keeps the first release's formula; every other stream mixes its name in.
    """
    key: dict[str, Any] = {"seed": seed, "shard": shard_index}
    if stream != "ttbar":
        key["stream"] = stream
    return 1 + int(sha256_of_obj(key)[:15], 16) % _PYTHIA_SEED_MAX


def pythia_package_version() -> str:
    """Version of the installed pythia8mc package (recorded in every shard)."""
    return importlib.metadata.version("pythia8mc")


def _process_lines(settings: GeneratorSettings, stream: str) -> list[str]:
    """Pythia settings that choose the physics of a stream (everything else is shared)."""
    if stream == "ttbar":
        return [f"Tune:pp = {settings.pythia_tune_pp}", "Top:gg2ttbar = on", "Top:qqbar2ttbar = on"]
    if stream == "dijet":
        # Light-enriched QCD 2 -> 2: only the processes with light quarks and gluons in the
        # final state (HardQCD:nQuarkNew = 3, Pythia's default: u, d, s). Heavy flavour
        # comes only from the parton shower, MPI and heavy quarks in the PDFs.
        maximum = settings.dijet_pthat_max_gev
        return [
            f"Tune:pp = {settings.pythia_tune_pp}",
            "HardQCD:gg2gg = on",
            "HardQCD:gg2qqbar = on",
            "HardQCD:qg2qg = on",
            "HardQCD:qq2qq = on",
            "HardQCD:qqbar2gg = on",
            "HardQCD:qqbar2qqbarNew = on",
            "HardQCD:nQuarkNew = 3",
            f"PhaseSpace:pTHatMin = {settings.dijet_pthat_min_gev}",
            f"PhaseSpace:pTHatMax = {-1.0 if maximum is None else maximum}",
        ]
    if stream == "pileup":
        return [f"Tune:pp = {settings.pileup_tune_pp}", f"{PILEUP_PROCESSES[settings.pileup_process]} = on"]
    raise AssertionError(stream)


def make_pythia(settings: GeneratorSettings, seed: int, stream: str = "ttbar") -> Any:
    """An initialised Pythia instance for one stream (ttbar, dijet or pileup) and seed."""
    try:
        import pythia8mc as pythia8
    except ImportError as exc:
        raise TriggerMLError(
            "the Pythia 8 Python module pythia8mc is not installed", "pip install pythia8mc==8.317.2"
        ) from exc
    pythia = pythia8.Pythia("", False)
    tune, *process = _process_lines(settings, stream)
    lines = [
        "Print:quiet = on",
        "Next:numberCount = 0",
        tune,
        f"Beams:eCM = {settings.sqrt_s_gev}",
        *process,
        "PartonLevel:MPI = on",
        "HadronLevel:all = on",
        # Decay every particle Pythia may decay (K0S, Lambda, hyperons, b/c hadrons, taus)
        # wherever it decays, so displaced secondaries appear.
        "ParticleDecays:limitTau0 = off",
        "Beams:allowVertexSpread = on",
        f"Beams:sigmaVertexX = {settings.beamspot_sigma_xy_mm}",
        f"Beams:sigmaVertexY = {settings.beamspot_sigma_xy_mm}",
        f"Beams:sigmaVertexZ = {settings.beamspot_sigma_z_mm}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
    ]
    for line in lines:
        if not pythia.readString(line):
            raise TriggerMLError(
                f"Pythia rejected the setting {line!r}", "check the pythia8mc version (8.317)"
            )
    if not pythia.init():
        raise TriggerMLError("Pythia failed to initialise", "check the generator settings (sqrt_s_gev, tune)")
    return pythia


@dataclass
class GenerationTimer:
    """Seconds spent initialising Pythia, generating events, clustering, and in total."""

    init: float = 0.0
    pythia: float = 0.0
    fastjet: float = 0.0
    total: float = 0.0


class EventBatch:
    """A batch of Pythia events as flat numpy columns, sliced per event on demand.

    ``table`` has the columns (id, status, mother1, px, py, pz, e) as float64, the layout
    the per-event code has always read its momenta from.
    """

    def __init__(self, events: Any, charge_of: Callable[[np.ndarray], np.ndarray]) -> None:
        import awkward as ak

        prt = events["prt"]
        counts = np.asarray(ak.num(prt, axis=1), dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        flat = ak.flatten(prt, axis=1)
        column = {
            name: np.asarray(flat[name]) for name in ("id", "status", "mother1", "daughter1", "daughter2")
        }
        momentum = [np.asarray(flat["p"][name], dtype=np.float64) for name in ("px", "py", "pz", "e")]
        vertex = flat["vProd"]
        self.x, self.y, self.z = (
            np.asarray(ak.fill_none(vertex[name], 0.0), dtype=np.float64) for name in ("px", "py", "pz")
        )
        self.table = np.stack(
            [column["id"], column["status"], column["mother1"], *momentum], axis=1, dtype=np.float64
        )
        self.ids = column["id"].astype(np.int64)
        self.daughter1 = column["daughter1"].astype(np.int64)
        self.daughter2 = column["daughter2"].astype(np.int64)
        self.charge_of = charge_of

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def event(self, i: int) -> Event:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return Event(
            table=self.table[lo:hi],
            daughter1=self.daughter1[lo:hi],
            daughter2=self.daughter2[lo:hi],
            x=self.x[lo:hi],
            y=self.y[lo:hi],
            z=self.z[lo:hi],
            charge_of=self.charge_of,
        )


@dataclass(frozen=True)
class Event:
    """One event record (index 0 is the event as a whole, as in Pythia's ``event``)."""

    table: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    charge_of: Callable[[np.ndarray], np.ndarray]


class EventStream:
    """Successful events of one Pythia instance, generated and converted in batches."""

    def __init__(self, settings: GeneratorSettings, seed: int, stream: str, timer: GenerationTimer) -> None:
        start = time.perf_counter()
        self.pythia = make_pythia(settings, seed, stream)
        timer.init += time.perf_counter() - start
        self.stream = stream
        self.timer = timer
        self._charges: dict[int, float] = {}

    def charge_of(self, ids: np.ndarray) -> np.ndarray:
        """Electric charges (units of e) of particles with PDG codes ``ids``, from Pythia's table."""
        unique, inverse = np.unique(ids, return_inverse=True)
        data = self.pythia.particleData
        for pdg in unique.tolist():
            if pdg not in self._charges:
                self._charges[pdg] = data.charge(pdg)
        return np.array([self._charges[pdg] for pdg in unique.tolist()], dtype=np.float64)[inverse]

    def next_batch(self, n_events: int) -> EventBatch:
        """Exactly ``n_events`` successful events (failed ones are skipped, as next() does)."""
        start = time.perf_counter()
        try:
            # errorMode = a factor: retry failed events, give up after factor x n attempts.
            events = self.pythia.nextBatch(n_events, 1.0 + _MAX_FAILURES_PER_BATCH / n_events)
        except RuntimeError as error:
            raise TriggerMLError(
                f"Pythia ({self.stream}) failed more than {_MAX_FAILURES_PER_BATCH} events in a batch of "
                f"{n_events} ({error})",
                "check the generator settings",
            ) from None
        self.timer.pythia += time.perf_counter() - start
        return EventBatch(events, self.charge_of)
