"""Generate the labelled jet sample: Pythia 8 events, anti-kt jets, truth labels, tracks.

``generate_sample(settings, data_root)`` writes ``<data_root>/<process>-<digest>/``::

    shards/shard-00000.h5 ...   one file per shard of ``jets_per_shard`` jets
    jets.h5                     all shards merged, in shard order
    sample.json                 settings, counts, versions and timing

The data are keyed by the settings and the seed: the same settings give a bit-identical
``jets.h5`` whatever the number of worker processes. Shards already on disk (with the
expected settings) are reused, so an interrupted run continues where it stopped.
The physics choices are documented in docs/detector-model.md.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from trigger_ml.data.detector import DetectorModel, lifetime_signs, straight_line_impact_parameters
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import (
    atomic_path,
    canonical_json,
    read_json,
    sha256_of_file,
    sha256_of_obj,
    write_json_atomic,
)

FORMAT_VERSION = 1
"""Version of the file layout and generation recipe; part of every digest."""

SUPPORTED_PROCESSES = ("ttbar",)
JET_INPUT_ETA_MAX = 4.9
"""Particles beyond this |eta| (outside the calorimeters) are not clustered."""
HADRON_PT_MIN = 5.0
HADRON_DR_MAX = 0.3
"""Weakly decaying b/c hadrons above HADRON_PT_MIN within HADRON_DR_MAX of a jet label it."""

JET_DTYPE = np.dtype(
    [
        ("pt", "<f4"),
        ("eta", "<f4"),
        ("phi", "<f4"),
        ("mass", "<f4"),
        ("flavour", "i1"),
        ("n_tracks", "<i2"),
        ("hadron_pt", "<f4"),
        ("hadron_lxy_mm", "<f4"),
        ("event_number", "<i8"),
    ]
)
TRACK_DTYPE = np.dtype(
    [
        ("valid", "?"),
        ("pt", "<f4"),
        ("eta", "<f4"),
        ("phi", "<f4"),
        ("charge", "i1"),
        ("d0_mm", "<f4"),
        ("z0sintheta_mm", "<f4"),
        ("d0_sigma_mm", "<f4"),
        ("z0sintheta_sigma_mm", "<f4"),
        ("dr", "<f4"),
        ("ptfrac", "<f4"),
        ("origin", "i1"),
    ]
)
ORIGIN_PRIMARY, ORIGIN_HEAVY_FLAVOUR, ORIGIN_OTHER_SECONDARY, ORIGIN_FAKE = 0, 1, 2, 3

_PYTHIA_SEED_MAX = 900_000_000  # Pythia accepts Random:seed in [1, 900 000 000]
_EVENT_NUMBER_STRIDE = 1_000_000_000  # event_number = shard index * stride + event in shard
_NEUTRINOS = (12, 14, 16)
_DISPLACED_MM = 1.0e-3  # a track produced this far from the PV is a secondary
_FAKE_PT_SLOPE_GEV = 1.0  # fake-track pT above threshold is exponential with this mean
_MAX_CONSECUTIVE_FAILURES = 100
_MAX_CHUNK_ROWS = 2048
_PROGRESS_EVERY_JETS = 200


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that determines the generated sample; ``digest()`` keys it on disk.

    Energies and momenta in GeV, lengths in mm. ``max_tracks`` tracks are stored per jet.
    ``pythia_tune_pp`` is Pythia's ``Tune:pp`` (21: ATLAS A14 with NNPDF2.3 LO).
    """

    process: str = "ttbar"
    sqrt_s_gev: float = 13600.0
    n_jets: int = 100_000
    seed: int = 1
    jets_per_shard: int = 5000
    jet_r: float = 0.4
    jet_pt_min: float = 20.0
    jet_eta_max: float = 2.5
    track_pt_min: float = 1.0
    track_eta_max: float = 2.5
    max_tracks: int = 32
    beamspot_sigma_z_mm: float = 35.0
    beamspot_sigma_xy_mm: float = 0.01
    pythia_tune_pp: int = 21
    detector: DetectorModel = field(default_factory=DetectorModel)

    def __post_init__(self) -> None:
        if self.process not in SUPPORTED_PROCESSES:
            raise UsageError(
                f"unknown process {self.process!r}", f"use one of: {', '.join(SUPPORTED_PROCESSES)}"
            )
        for name in ("n_jets", "jets_per_shard", "max_tracks", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"generator setting {name} must be an integer >= 1, got {value!r}")
        for name in (
            "sqrt_s_gev",
            "jet_r",
            "jet_pt_min",
            "jet_eta_max",
            "track_pt_min",
            "track_eta_max",
            "beamspot_sigma_z_mm",
            "beamspot_sigma_xy_mm",
        ):
            if not getattr(self, name) > 0:
                raise UsageError(f"generator setting {name} must be > 0, got {getattr(self, name)!r}")
        if self.max_tracks > np.iinfo(np.int16).max:
            raise UsageError(f"max_tracks must be <= 32767, got {self.max_tracks}")
        if not isinstance(self.detector, DetectorModel):
            raise UsageError("generator setting detector must be a DetectorModel", "use from_dict for dicts")

    def to_dict(self) -> dict[str, Any]:
        """All settings as plain JSON-able values (the detector as a nested dict)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorSettings:
        """Settings from a dict such as ``to_dict()`` or a config file; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        detector = dict(data.get("detector", {}))
        unknown += [
            f"detector.{k}"
            for k in sorted(set(detector) - {f.name for f in dataclasses.fields(DetectorModel)})
        ]
        if unknown:
            raise UsageError(f"unknown generator settings: {', '.join(unknown)}", "check the spelling")
        values = {k: v for k, v in data.items() if k != "detector"}
        return cls(**values, detector=DetectorModel(**detector))

    def digest(self) -> str:
        """12 hex characters identifying these settings and the format version."""
        return sha256_of_obj({"format_version": FORMAT_VERSION, "settings": self.to_dict()})[:12]

    def shard_sizes(self) -> list[int]:
        """Jets per shard: ``jets_per_shard`` each, the last one holds the remainder."""
        n_full, remainder = divmod(self.n_jets, self.jets_per_shard)
        return [self.jets_per_shard] * n_full + ([remainder] if remainder else [])


def sample_dir(settings: GeneratorSettings, data_root: Path) -> Path:
    """The directory holding the sample of these settings under ``data_root``."""
    return Path(data_root) / f"{settings.process}-{settings.digest()}"


def generate_sample(
    settings: GeneratorSettings,
    data_root: Path,
    n_workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate (or reuse) the sample of ``settings`` under ``data_root``; return its jets.h5.

    Shards are generated by ``n_workers`` processes (default: all CPUs). If jets.h5 already
    exists with these settings it is returned at once; existing valid shards are reused.
    """
    n_workers = (os.cpu_count() or 1) if n_workers is None else n_workers
    if not isinstance(n_workers, int) or n_workers < 1:
        raise UsageError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    out_dir = sample_dir(settings, data_root)
    jets_path = out_dir / "jets.h5"
    if _file_matches(jets_path, settings, n_rows=settings.n_jets):
        return jets_path

    sizes = settings.shard_sizes()
    tasks = [
        _ShardTask(settings, index, n_rows, _shard_path(out_dir, index))
        for index, n_rows in enumerate(sizes)
        if not _file_matches(_shard_path(out_dir, index), settings, n_rows=n_rows, shard_index=index)
    ]
    generated_jets = sum(task.n_jets for task in tasks)
    start = time.perf_counter()
    with tqdm(
        total=settings.n_jets,
        initial=settings.n_jets - generated_jets,
        unit="jet",
        desc=f"{settings.process} jets",
        disable=not progress,
        smoothing=0.05,
    ) as bar:
        _run_shards(tasks, min(n_workers, max(len(tasks), 1)), bar.update)
    wall = time.perf_counter() - start

    shard_attrs = _merge_shards(out_dir, settings, jets_path)
    _write_sample_info(
        out_dir,
        settings,
        jets_path,
        shard_attrs,
        timing={
            "wall_seconds": round(wall, 3),
            "generated_jets": generated_jets,
            "reused_shards": len(sizes) - len(tasks),
            "n_workers": n_workers,
            "jets_per_second": round(generated_jets / wall, 2) if generated_jets and wall > 0 else None,
        },
    )
    return jets_path


def load_sample_info(path: Path) -> dict[str, Any]:
    """The sample.json of a sample, given its directory or its jets.h5."""
    path = Path(path)
    info_path = (path if path.is_dir() else path.parent) / "sample.json"
    if not info_path.is_file():
        raise TriggerMLError(
            f"no sample.json at {info_path}",
            "generate the sample with generate_sample (or point to its directory)",
        )
    return read_json(info_path)


# --- shard generation --------------------------------------------------------------------


@dataclass(frozen=True)
class _ShardTask:
    settings: GeneratorSettings
    index: int
    n_jets: int
    path: Path


def _shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / "shards" / f"shard-{index:05d}.h5"


def _pythia_seed(seed: int, shard_index: int) -> int:
    """Pythia's Random:seed for a shard, derived from the sample seed and the shard index."""
    digest = sha256_of_obj({"seed": seed, "shard": shard_index})
    return 1 + int(digest[:15], 16) % _PYTHIA_SEED_MAX


def _pythia_package_version() -> str:
    return importlib.metadata.version("pythia8mc")


def _make_pythia(settings: GeneratorSettings, seed: int) -> Any:
    try:
        import pythia8mc as pythia8
    except ImportError as exc:
        raise TriggerMLError(
            "the Pythia 8 Python module pythia8mc is not installed", "pip install pythia8mc==8.317.2"
        ) from exc
    pythia = pythia8.Pythia("", False)
    lines = [
        "Print:quiet = on",
        "Next:numberCount = 0",
        f"Tune:pp = {settings.pythia_tune_pp}",
        f"Beams:eCM = {settings.sqrt_s_gev}",
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
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


def _make_jet_definition(jet_r: float) -> Any:
    # The SWIG classes of the fastjet package: they take lists of PseudoJets directly and
    # let the banner be silenced (one per worker process otherwise).
    from fastjet import _swig as fj

    fj.ClusterSequence.set_fastjet_banner_stream(None)
    return fj.JetDefinition(fj.antikt_algorithm, jet_r)


def _generate_shard(task: _ShardTask, report: Callable[[int], object]) -> None:
    """Generate the events of one shard until it holds exactly ``task.n_jets`` jets; write it."""
    settings = task.settings
    pythia = _make_pythia(settings, _pythia_seed(settings.seed, task.index))
    rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(task.index,)))
    jet_def = _make_jet_definition(settings.jet_r)

    jets_parts: list[np.ndarray] = []
    tracks_parts: list[np.ndarray] = []
    n_collected = n_events = failures = unreported = 0
    while n_collected < task.n_jets:
        if not pythia.next():
            failures += 1
            if failures > _MAX_CONSECUTIVE_FAILURES:
                raise TriggerMLError(
                    f"Pythia failed {failures} events in a row in shard {task.index}",
                    "check the generator settings",
                )
            continue
        failures = 0
        event_number = task.index * _EVENT_NUMBER_STRIDE + n_events
        n_events += 1
        jets, tracks = _process_event(pythia.event, settings, rng, jet_def, event_number)
        take = min(len(jets), task.n_jets - n_collected)
        if take:
            # Jets are in decreasing pT: the last event gives its leading jets.
            jets_parts.append(jets[:take])
            tracks_parts.append(tracks[:take])
            n_collected += take
            unreported += take
        if unreported >= _PROGRESS_EVERY_JETS:
            report(unreported)
            unreported = 0

    attrs = {
        "settings": canonical_json(settings.to_dict()),
        "format_version": FORMAT_VERSION,
        "shard_index": task.index,
        "n_events": n_events,
        "pythia_version": _pythia_package_version(),
    }
    with atomic_path(task.path) as tmp:
        _write_jets_file(tmp, np.concatenate(jets_parts), np.concatenate(tracks_parts), settings, attrs)
    report(unreported)


# --- one event ---------------------------------------------------------------------------


def _heavy_flavour(ids: np.ndarray) -> np.ndarray:
    """5 for hadrons with a b quark, 4 for hadrons with a c quark (and no b), else 0.

    Uses the PDG numbering (quark digits nq1 nq2 nq3 of |id| mod 10000). Diquarks
    (nq3 = 0) and quarkonia (mesons q qbar of one flavour) are not heavy-flavour hadrons.
    """
    absid = np.abs(ids)
    digits = absid % 10000
    nq3, nq2, nq1 = (digits // 10) % 10, (digits // 100) % 10, (digits // 1000) % 10
    hadron = (absid >= 100) & (nq3 > 0) & (nq2 > 0) & ~((nq1 == 0) & (nq2 == nq3))
    has_b = (nq1 == 5) | (nq2 == 5) | (nq3 == 5)
    has_c = (nq1 == 4) | (nq2 == 4) | (nq3 == 4)
    return np.where(hadron & has_b, 5, np.where(hadron & has_c, 4, 0)).astype(np.int8)


def _eta(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore"):
        return np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.copysign(np.inf, pz))


def _f32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(np.float32)


def _delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def _delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Pairwise Delta R, shape (len(eta1), len(eta2))."""
    deta = eta1[:, None] - eta2[None, :]
    dphi = _delta_phi(phi1[:, None], phi2[None, :])
    return np.hypot(deta, dphi)


def _nearest(dr: np.ndarray, dr_max: float) -> np.ndarray:
    """Index of the nearest jet per row of a Delta-R matrix, -1 if none is within dr_max."""
    if dr.shape[1] == 0:
        return np.full(dr.shape[0], -1)
    best = np.argmin(dr, axis=1)
    return np.where(dr[np.arange(len(best)), best] < dr_max, best, -1)


def _process_event(
    event: Any,
    settings: GeneratorSettings,
    rng: np.random.Generator,
    jet_def: Any,
    event_number: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Jets (pT-ordered) and their tracks for one Pythia event."""
    from fastjet import _swig as fj

    particles = event.particles()
    table = np.array(
        [(p.id(), p.status(), p.mother1(), p.px(), p.py(), p.pz(), p.e()) for p in particles],
        dtype=np.float64,
    )
    ids = table[:, 0].astype(np.int64)
    status = table[:, 1].astype(np.int64)
    mother1 = table[:, 2].astype(np.int64)
    px, py, pz = table[:, 3], table[:, 4], table[:, 5]
    pt = np.hypot(px, py)
    eta = _eta(px, py, pz)
    phi = np.arctan2(py, px)
    system = particles[0]  # event[0] carries the (spread) primary-vertex position
    pv = np.array([system.xProd(), system.yProd(), system.zProd()])

    # Jets from visible final-state particles.
    final = status > 0
    visible = final & ~np.isin(np.abs(ids), _NEUTRINOS) & (np.abs(eta) < JET_INPUT_ETA_MAX)
    inputs = [fj.PseudoJet(*row) for row in table[visible][:, 3:7].tolist()]
    cluster_sequence = fj.ClusterSequence(inputs, jet_def)
    all_jets = fj.sorted_by_pt(cluster_sequence.inclusive_jets(settings.jet_pt_min))
    jet_kin = np.array([(j.pt(), j.eta(), j.phi_std(), j.m2()) for j in all_jets], dtype=np.float64).reshape(
        -1, 4
    )
    jet_pt, jet_eta, jet_phi = jet_kin[:, 0], jet_kin[:, 1], jet_kin[:, 2]
    # Cuts on stored quantities are applied to their float32 values, so the file obeys them.
    stored = np.flatnonzero(
        (_f32(jet_pt) > settings.jet_pt_min) & (np.abs(_f32(jet_eta)) < settings.jet_eta_max)
    )
    if len(stored) == 0:
        return np.zeros(0, JET_DTYPE), np.zeros((0, settings.max_tracks), TRACK_DTYPE)

    jets = np.zeros(len(stored), JET_DTYPE)
    jets["pt"], jets["eta"], jets["phi"] = jet_pt[stored], jet_eta[stored], jet_phi[stored]
    jets["mass"] = np.sqrt(np.clip(jet_kin[stored, 3], 0.0, None))
    jets["event_number"] = event_number
    _label_jets(jets, stored, particles, ids, status, pt, eta, phi, pv, jet_eta, jet_phi)

    track_table = _reconstruct_tracks(
        settings, rng, particles, ids, status, mother1, pt, eta, phi, px, py, pz, pv, stored, jet_eta, jet_phi
    )
    tracks = _fill_tracks(settings, jets, track_table)
    return jets, tracks


def _label_jets(
    jets: np.ndarray,
    stored: np.ndarray,
    particles: list[Any],
    ids: np.ndarray,
    status: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    pv: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
) -> None:
    """Set flavour, hadron_pt and hadron_lxy_mm of the stored jets (exclusive cone labelling).

    Each weakly decaying b (c) hadron with pT > HADRON_PT_MIN labels only the nearest jet
    (among all jets above the pT threshold) within HADRON_DR_MAX. A jet with a b hadron
    is a b jet (5); else with a c hadron a c jet (4); else light (0). The hardest matched
    hadron of the label flavour gives hadron_pt and its transverse decay length.
    """
    flavour = _heavy_flavour(ids)
    candidates = np.flatnonzero((flavour > 0) & (status < 0) & (pt > HADRON_PT_MIN))
    weak: list[int] = []
    for index in candidates:
        daughters = particles[index].daughterList()
        if daughters and not any(flavour[d] == flavour[index] for d in daughters):
            weak.append(int(index))
    if not weak:
        return
    hadrons = np.array(weak)
    nearest = _nearest(_delta_r(eta[hadrons], phi[hadrons], jet_eta, jet_phi), HADRON_DR_MAX)
    position = {int(jet): i for i, jet in enumerate(stored)}
    for hadron, jet in zip(hadrons, nearest, strict=True):
        row = position.get(int(jet))
        if row is None:
            continue
        hadron_flavour = flavour[hadron]
        current = jets["flavour"][row]
        if hadron_flavour < current or (hadron_flavour == current and pt[hadron] <= jets["hadron_pt"][row]):
            continue
        first_daughter = particles[particles[hadron].daughter1()]
        jets["flavour"][row] = hadron_flavour
        jets["hadron_pt"][row] = pt[hadron]
        jets["hadron_lxy_mm"][row] = math.hypot(
            first_daughter.xProd() - pv[0], first_daughter.yProd() - pv[1]
        )


def _track_origin(index: int, status: np.ndarray, mother1: np.ndarray, flavour: np.ndarray) -> int:
    """1 if a b/c hadron is among the decay ancestors of particle ``index``, else 0 (for now)."""
    current = index
    while 91 <= abs(status[current]) <= 99:  # produced in a particle decay
        current = mother1[current]
        if flavour[current]:
            return ORIGIN_HEAVY_FLAVOUR
    return ORIGIN_PRIMARY


def _reconstruct_tracks(
    settings: GeneratorSettings,
    rng: np.random.Generator,
    particles: list[Any],
    ids: np.ndarray,
    status: np.ndarray,
    mother1: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    pv: np.ndarray,
    stored: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
) -> dict[str, np.ndarray]:
    """Selected tracks (real and fake) of the stored jets, as column arrays with a jet row."""
    detector = settings.detector
    charged = np.flatnonzero(
        (status > 0) & (_f32(pt) > settings.track_pt_min) & (np.abs(_f32(eta)) < settings.track_eta_max)
    )
    charge = np.array([particles[i].charge() for i in charged], dtype=np.float64)
    charged = charged[charge != 0]
    charge = charge[charge != 0]
    # Each track belongs to the nearest jet within the cone (all jets above threshold).
    nearest = _nearest(_delta_r(eta[charged], phi[charged], jet_eta, jet_phi), settings.jet_r)
    row_of_jet = np.full(len(jet_eta), -1)
    row_of_jet[stored] = np.arange(len(stored))
    in_stored = (nearest >= 0) & (row_of_jet[np.maximum(nearest, 0)] >= 0)
    charged, charge, jet_index = charged[in_stored], charge[in_stored], nearest[in_stored]

    vertex = np.array([[particles[i].xProd(), particles[i].yProd(), particles[i].zProd()] for i in charged])
    vertex = vertex.reshape(-1, 3)
    found = detector.in_acceptance(np.hypot(vertex[:, 0], vertex[:, 1]))
    found &= rng.random(len(charged)) < detector.efficiency(eta[charged])
    charged, charge, jet_index, vertex = charged[found], charge[found], jet_index[found], vertex[found]

    d0_true, z0_true = straight_line_impact_parameters(
        vertex[:, 0], vertex[:, 1], vertex[:, 2], px[charged], py[charged], pz[charged], pv[2]
    )
    d0, z0, sigma_d0, sigma_z0 = detector.smear(rng, d0_true, z0_true, pt[charged], eta[charged])
    selected = detector.passes_selection(d0, z0)

    flavour = _heavy_flavour(ids)
    displaced = np.linalg.norm(vertex - pv, axis=1) > _DISPLACED_MM
    origin = np.array(
        [_track_origin(i, status, mother1, flavour) for i in charged[selected]], dtype=np.int8
    ).reshape(-1)
    origin[(origin == ORIGIN_PRIMARY) & displaced[selected]] = ORIGIN_OTHER_SECONDARY

    real = {
        "jet_row": row_of_jet[jet_index[selected]],
        "pt": pt[charged][selected],
        "eta": eta[charged][selected],
        "phi": phi[charged][selected],
        "charge": charge[selected],
        "d0": d0[selected],
        "z0": z0[selected],
        "sigma_d0": sigma_d0[selected],
        "sigma_z0": sigma_z0[selected],
        "origin": origin,
    }
    fakes = _fake_tracks(
        settings, rng, np.bincount(real["jet_row"], minlength=len(stored)), stored, jet_eta, jet_phi
    )
    table = {key: np.concatenate([real[key], fakes[key]]) for key in real}
    rows = table["jet_row"]
    table["d0"], table["z0"] = lifetime_signs(
        table["d0"], table["z0"], table["phi"], table["eta"], jet_phi[stored][rows], jet_eta[stored][rows]
    )
    return table


def _fake_tracks(
    settings: GeneratorSettings,
    rng: np.random.Generator,
    n_real: np.ndarray,
    stored: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
) -> dict[str, np.ndarray]:
    """Fake tracks: Poisson(fake_rate x real tracks) per jet, uniform in the jet cone.

    Their pT is the threshold plus an exponential; their impact parameters are Gaussian
    with ``fake_ip_scale`` times the resolution; the quoted sigma is the resolution.
    """
    detector = settings.detector
    n_fake = rng.poisson(detector.fake_rate * n_real)
    rows = np.repeat(np.arange(len(stored)), n_fake)
    n = len(rows)
    pt = settings.track_pt_min + rng.exponential(_FAKE_PT_SLOPE_GEV, n)
    radius = settings.jet_r * np.sqrt(rng.random(n))
    angle = 2 * np.pi * rng.random(n)
    eta = jet_eta[stored][rows] + radius * np.cos(angle)
    phi = _delta_phi(jet_phi[stored][rows] + radius * np.sin(angle), 0.0)
    charge = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    sigma_d0 = detector.sigma_d0_mm(pt, eta)
    sigma_z0 = detector.sigma_z0sintheta_mm(pt, eta)
    d0 = rng.standard_normal(n) * sigma_d0 * detector.fake_ip_scale
    z0 = rng.standard_normal(n) * sigma_z0 * detector.fake_ip_scale
    keep = (
        (_f32(pt) > settings.track_pt_min)
        & (np.abs(_f32(eta)) < settings.track_eta_max)
        & detector.passes_selection(d0, z0)
    )
    return {
        "jet_row": rows[keep],
        "pt": pt[keep],
        "eta": eta[keep],
        "phi": phi[keep],
        "charge": charge[keep],
        "d0": d0[keep],
        "z0": z0[keep],
        "sigma_d0": sigma_d0[keep],
        "sigma_z0": sigma_z0[keep],
        "origin": np.full(int(keep.sum()), ORIGIN_FAKE, dtype=np.int8),
    }


def _fill_tracks(settings: GeneratorSettings, jets: np.ndarray, table: dict[str, np.ndarray]) -> np.ndarray:
    """Per jet, the max_tracks tracks of highest signed d0 significance; sets jets n_tracks."""
    rows = table["jet_row"]
    # Ordered by the significance of the stored (float32) values, so readers see it sorted.
    significance = table["d0"].astype(np.float32) / table["sigma_d0"].astype(np.float32)
    order = np.lexsort((-significance, rows))  # by jet, then significance descending (stable)
    rows = rows[order]
    counts = np.bincount(rows, minlength=len(jets))
    jets["n_tracks"] = np.minimum(counts, np.iinfo(np.int16).max)
    first_of_jet = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(rows)) - first_of_jet[rows]
    keep = slot < settings.max_tracks
    rows, slot, order = rows[keep], slot[keep], order[keep]

    tracks = np.zeros((len(jets), settings.max_tracks), TRACK_DTYPE)
    target = tracks[rows, slot]
    target["valid"] = True
    target["pt"] = table["pt"][order]
    target["eta"] = table["eta"][order]
    target["phi"] = table["phi"][order]
    target["charge"] = table["charge"][order]
    target["d0_mm"] = table["d0"][order]
    target["z0sintheta_mm"] = table["z0"][order]
    target["d0_sigma_mm"] = table["sigma_d0"][order]
    target["z0sintheta_sigma_mm"] = table["sigma_z0"][order]
    jet_eta = jets["eta"][rows].astype(np.float64)
    jet_phi = jets["phi"][rows].astype(np.float64)
    # Tracks were assigned with Delta R < jet_r in double precision; keep that true after
    # rounding to float32 (changes a value by at most one unit in the last place).
    dr = np.hypot(table["eta"][order] - jet_eta, _delta_phi(table["phi"][order], jet_phi))
    target["dr"] = np.minimum(_f32(dr), np.nextafter(np.float32(settings.jet_r), np.float32(0)))
    target["ptfrac"] = table["pt"][order] / jets["pt"][rows]
    target["origin"] = table["origin"][order]
    tracks[rows, slot] = target
    return tracks


# --- files -------------------------------------------------------------------------------


def _chunk_rows(settings: GeneratorSettings) -> int:
    """Rows per HDF5 chunk: the largest divisor of jets_per_shard up to _MAX_CHUNK_ROWS.

    Shard boundaries then fall on chunk boundaries in the merged file, so every chunk is
    written once.
    """
    return max(
        d
        for d in range(1, min(settings.jets_per_shard, _MAX_CHUNK_ROWS) + 1)
        if settings.jets_per_shard % d == 0
    )


def _create_datasets(
    handle: h5py.File, n_rows: int, settings: GeneratorSettings
) -> tuple[h5py.Dataset, h5py.Dataset]:
    rows = min(_chunk_rows(settings), n_rows)
    options = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "track_times": False}
    jets = handle.create_dataset("jets", shape=(n_rows,), dtype=JET_DTYPE, chunks=(rows,), **options)
    tracks = handle.create_dataset(
        "tracks",
        shape=(n_rows, settings.max_tracks),
        dtype=TRACK_DTYPE,
        chunks=(rows, settings.max_tracks),
        **options,
    )
    return jets, tracks


def _write_jets_file(
    path: Path, jets: np.ndarray, tracks: np.ndarray, settings: GeneratorSettings, attrs: dict[str, Any]
) -> None:
    with h5py.File(path, "w") as handle:
        jets_ds, tracks_ds = _create_datasets(handle, len(jets), settings)
        jets_ds[...] = jets
        tracks_ds[...] = tracks
        handle.attrs.update(attrs)


def _file_matches(
    path: Path, settings: GeneratorSettings, n_rows: int, shard_index: int | None = None
) -> bool:
    """True if ``path`` is a readable jets file written with ``settings`` and ``n_rows`` jets."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as handle:
            ok = (
                handle.attrs.get("settings") == canonical_json(settings.to_dict())
                and handle.attrs.get("format_version") == FORMAT_VERSION
                and handle["jets"].shape == (n_rows,)
                and handle["tracks"].shape == (n_rows, settings.max_tracks)
            )
            if shard_index is not None:
                ok = ok and handle.attrs.get("shard_index") == shard_index
            return bool(ok)
    except (OSError, KeyError, ValueError):
        return False


def _merge_shards(out_dir: Path, settings: GeneratorSettings, jets_path: Path) -> list[dict[str, Any]]:
    """Concatenate the shards into jets.h5 (atomically); return the shards' attributes."""
    shard_attrs = []
    with atomic_path(jets_path) as tmp, h5py.File(tmp, "w") as merged:
        jets_ds, tracks_ds = _create_datasets(merged, settings.n_jets, settings)
        start = 0
        for index, n_rows in enumerate(settings.shard_sizes()):
            with h5py.File(_shard_path(out_dir, index), "r") as shard:
                jets_ds[start : start + n_rows] = shard["jets"][...]
                tracks_ds[start : start + n_rows] = shard["tracks"][...]
                shard_attrs.append({key: shard.attrs[key] for key in ("n_events", "pythia_version")})
            start += n_rows
        merged.attrs["settings"] = canonical_json(settings.to_dict())
        merged.attrs["format_version"] = FORMAT_VERSION
    return shard_attrs


def _write_sample_info(
    out_dir: Path,
    settings: GeneratorSettings,
    jets_path: Path,
    shard_attrs: list[dict[str, Any]],
    timing: dict[str, Any],
) -> None:
    with h5py.File(jets_path, "r") as handle:
        jets = handle["jets"][...]
    counts = {name: int(np.sum(jets["flavour"] == code)) for name, code in (("b", 5), ("c", 4), ("light", 0))}
    n_tracks = jets["n_tracks"].astype(np.int64)
    info = {
        "format_version": FORMAT_VERSION,
        "digest": settings.digest(),
        "process": settings.process,
        "settings": settings.to_dict(),
        "n_jets": int(len(jets)),
        "n_events": int(sum(int(a["n_events"]) for a in shard_attrs)),
        "n_shards": len(shard_attrs),
        "flavour_counts": counts,
        "flavour_fractions": {name: round(count / len(jets), 5) for name, count in counts.items()},
        "n_tracks_selected": int(n_tracks.sum()),
        "n_tracks_dropped": int(np.clip(n_tracks - settings.max_tracks, 0, None).sum()),
        "pythia_version": ",".join(sorted({str(a["pythia_version"]) for a in shard_attrs})),
        "fastjet_version": importlib.metadata.version("fastjet"),
        "jets_file": jets_path.name,
        "jets_sha256": sha256_of_file(jets_path),
        "timing": timing,
    }
    write_json_atomic(out_dir / "sample.json", info)


# --- parallel execution ------------------------------------------------------------------

_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _worker_generate_shard(task: _ShardTask) -> None:
    _generate_shard(task, _progress_queue.put)


def _run_shards(tasks: list[_ShardTask], n_workers: int, report: Callable[[int], object]) -> None:
    """Generate the shards of ``tasks``, in this process or in n_workers worker processes.

    Workers are forked where the platform allows it (no re-import of the caller's main
    script), spawned elsewhere. A worker that dies raises BrokenProcessPool here.
    """
    if n_workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            _generate_shard(task, report)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    progress_queue = context.Queue()
    expected = sum(task.n_jets for task in tasks)
    reported = 0
    with ProcessPoolExecutor(
        n_workers, context, initializer=_init_worker, initargs=(progress_queue,)
    ) as pool:
        pending = {pool.submit(_worker_generate_shard, task) for task in tasks}
        while pending:
            reported += _drain(progress_queue, report, timeout=0.2)
            done, pending = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # re-raises a worker's exception
    while reported < expected:  # progress messages still in flight after the results
        n = _drain(progress_queue, report, timeout=1.0)
        if n == 0:
            break
        reported += n


def _drain(progress_queue: Any, report: Callable[[int], object], timeout: float) -> int:
    """Pass on all queued progress counts (waiting up to ``timeout`` for the first)."""
    total = 0
    try:
        item = progress_queue.get(timeout=timeout)
        while True:
            report(item)
            total += item
            item = progress_queue.get_nowait()
    except queue.Empty:
        return total
