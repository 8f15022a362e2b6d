"""In-time pile-up: minimum-bias interactions from a per-shard pool, overlaid on events."""

from __future__ import annotations

import numpy as np

from trigger_ml.data.events import MAX_BATCH_EVENTS, EventBatch, EventStream, GenerationTimer, pythia_seed
from trigger_ml.data.kinematics import as_float32, pseudorapidity
from trigger_ml.data.settings import GeneratorSettings

_PILEUP_SEED_KEY = 1  # numpy spawn key of the pile-up multiplicity stream: (shard, 1)


class PileupOverlay:
    """In-time pile-up: a Poisson number of minimum-bias interactions per event.

    Each shard generates a pool of ``pileup_pool_events`` minimum-bias events once and
    overlays interactions drawn from it with replacement, each rotated by a random azimuth
    and moved to a new vertex drawn from the luminous region (Gaussian, the beam-spot
    widths). Only the charged final-state particles in the track acceptance are kept.
    """

    _COLUMNS = ("px", "py", "pz", "x", "y", "z", "charge")

    def __init__(self, settings: GeneratorSettings, shard_index: int, timer: GenerationTimer) -> None:
        self.settings = settings
        self.rng = np.random.default_rng(
            np.random.SeedSequence(settings.seed, spawn_key=(shard_index, _PILEUP_SEED_KEY))
        )
        stream = EventStream(settings, pythia_seed(settings.seed, shard_index, "pileup"), "pileup", timer)
        parts: list[dict[str, np.ndarray]] = []
        counts: list[np.ndarray] = []
        left = settings.pileup_pool_events
        while left:
            batch = stream.next_batch(min(left, MAX_BATCH_EVENTS))
            part, count = self._charged_particles(batch)
            parts.append(part)
            counts.append(count)
            left -= len(batch)
        self.pool = {key: np.concatenate([part[key] for part in parts]) for key in self._COLUMNS}
        self.offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))])

    def _charged_particles(self, batch: EventBatch) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Charged final-state particles in the acceptance, positions relative to their
        event's vertex, and their number per event."""
        table = batch.table
        px, py, pz = table[:, 3], table[:, 4], table[:, 5]
        event_of = np.repeat(np.arange(len(batch)), np.diff(batch.offsets))
        first = batch.offsets[:-1][event_of]  # the event's row 0 holds its vertex
        rows = np.flatnonzero(
            (table[:, 1] > 0)
            & (as_float32(np.hypot(px, py)) > self.settings.track_pt_min)
            & (np.abs(as_float32(pseudorapidity(px, py, pz))) < self.settings.track_eta_max)
        )
        charge = batch.charge_of(batch.ids[rows])
        rows, charge = rows[charge != 0], charge[charge != 0]
        part = {
            "px": px[rows],
            "py": py[rows],
            "pz": pz[rows],
            "x": batch.x[rows] - batch.x[first[rows]],
            "y": batch.y[rows] - batch.y[first[rows]],
            "z": batch.z[rows] - batch.z[first[rows]],
            "charge": charge,
        }
        return part, np.bincount(event_of[rows], minlength=len(batch))

    def overlay(self) -> tuple[int, dict[str, np.ndarray]]:
        """(number of interactions, their particles: px, py, pz, x, y, z, charge)."""
        settings = self.settings
        n = int(self.rng.poisson(settings.pileup_mu))
        picks = self.rng.integers(len(self.offsets) - 1, size=n)
        angle = self.rng.uniform(0.0, 2 * np.pi, n)
        vertex = self.rng.normal(
            0.0,
            [settings.beamspot_sigma_xy_mm, settings.beamspot_sigma_xy_mm, settings.beamspot_sigma_z_mm],
            (n, 3),
        )
        sizes = self.offsets[picks + 1] - self.offsets[picks]
        rows = np.concatenate([np.arange(self.offsets[p], self.offsets[p + 1]) for p in picks] or [[]])
        rows = rows.astype(np.int64)
        which = np.repeat(np.arange(n), sizes)
        cos, sin = np.cos(angle[which]), np.sin(angle[which])
        pool = self.pool
        return n, {
            "px": cos * pool["px"][rows] - sin * pool["py"][rows],
            "py": sin * pool["px"][rows] + cos * pool["py"][rows],
            "pz": pool["pz"][rows],
            "x": cos * pool["x"][rows] - sin * pool["y"][rows] + vertex[which, 0],
            "y": sin * pool["x"][rows] + cos * pool["y"][rows] + vertex[which, 1],
            "z": pool["z"][rows] + vertex[which, 2],
            "charge": pool["charge"][rows],
        }
