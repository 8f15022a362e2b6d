"""Generate the labelled jet sample: Pythia 8 events, anti-kt jets, truth labels, tracks.

``generate_sample(settings, data_root)`` writes ``<data_root>/<process>-<digest>/``::

    shards/shard-00000.h5 ...   one file per shard of ``jets_per_shard`` jets
    jets.h5                     all shards merged, in shard order
    sample.json                 settings, counts, versions and timing

The data are keyed by the settings and the seed: the same settings give a bit-identical
``jets.h5`` whatever the number of worker processes. Shards already on disk (with the
expected settings) are reused, so an interrupted run continues where it stopped.

Samples: tt-bar (the default), light-enriched QCD dijets, or a mixture of the two in a
fixed proportion per shard; optionally with in-time pile-up (a Poisson number of
minimum-bias interactions per event, each at its own vertex in the luminous region).
Settings added after the first release enter the digest only when they differ from
their defaults, so the default sample keeps its digest and its bytes.

Events are read from Pythia in batches as numpy columns (``Pythia.nextBatch``) and
clustered in batches in C++ (``fastjet._ext``); the per-event Python work is vectorised.
The physics choices are documented in docs/detector-model.md, the file layout in
docs/data-formats.md.
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

SUPPORTED_PROCESSES = ("ttbar", "dijet", "mixed")
"""ttbar; dijet (light-enriched QCD 2 -> 2); mixed (both, ``dijet_fraction`` of the jets dijet)."""
PROCESS_CODES = {"ttbar": 0, "dijet": 1}
"""Values of the jets' ``process`` field (present in extended-layout files only)."""
JET_INPUT_ETA_MAX = 4.9
"""Particles beyond this |eta| (outside the calorimeters) are not clustered."""
HADRON_PT_MIN = 5.0
HADRON_DR_MAX = 0.3
"""Weakly decaying b/c hadrons above HADRON_PT_MIN within HADRON_DR_MAX of a jet label it."""
TAU_LABEL = 15
"""Flavour of a jet labelled by a tau lepton (``label_taus``), as HadronConeExclTruthLabelID."""
_LABEL_PRIORITY = {5: 3, 4: 2, TAU_LABEL: 1, 0: 0}
"""b before c before tau before light, as in the ATLAS exclusive cone labelling."""

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
JET_DTYPE_EXTENDED = np.dtype(JET_DTYPE.descr + [("process", "i1"), ("n_pileup", "<i2")])
"""Jet layout of samples with dijets or pile-up: adds the process code and the number of
pile-up interactions overlaid on the jet's event. Pure tt-bar without pile-up keeps
JET_DTYPE, the layout of the first release."""
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
ORIGIN_PRIMARY, ORIGIN_HEAVY_FLAVOUR, ORIGIN_OTHER_SECONDARY, ORIGIN_FAKE, ORIGIN_PILEUP = 0, 1, 2, 3, 4
ORIGIN_MATERIAL = 5
"""Secondary of a photon conversion or hadronic interaction in the detector material."""
_PHOTON = 22
_MATERIAL_INPUT_ETA_MARGIN = 0.5  # photons/hadrons up to track_eta_max + this may interact

_PYTHIA_SEED_MAX = 900_000_000  # Pythia accepts Random:seed in [1, 900 000 000]
_EVENT_NUMBER_STRIDE = 1_000_000_000  # event_number = shard index * stride + event in shard
_NEUTRINOS = (12, 14, 16)
_DISPLACED_MM = 1.0e-3  # a track produced this far from the PV is a secondary
_FAKE_PT_SLOPE_GEV = 1.0  # fake-track pT above threshold is exponential with this mean
_MAX_FAILURES_PER_BATCH = 100  # Pythia events that may fail within one batch before we give up
_FIRST_BATCH_EVENTS = 8
_MAX_BATCH_EVENTS = 64
_MAX_CHUNK_ROWS = 2048
_PROGRESS_EVERY_JETS = 200
_PILEUP_SEED_KEY = 1  # numpy spawn key of the pile-up multiplicity stream: (shard, 1)

# Settings added after the first release, with their defaults. They are left out of the
# digest and of the files' ``settings`` attribute while they hold these values, so samples
# made before they existed keep their names and bytes. Never change these defaults: add a
# new field instead (a changed default would silently rename nothing and mean something else).
_LATER_SETTINGS: dict[str, Any] = {
    "dijet_fraction": None,
    "dijet_pthat_min_gev": 20.0,
    "dijet_pthat_max_gev": None,
    "pileup_mu": 0.0,
    "pileup_tune_pp": 8,
    "pileup_pool_events": 1000,
    "pileup_process": "inelastic",
    "label_taus": False,
}
# The same for fields of the nested DetectorModel.
_LATER_DETECTOR_SETTINGS: dict[str, Any] = {"material_layers": ()}
PILEUP_PROCESSES = {"inelastic": "SoftQCD:inelastic", "nondiffractive": "SoftQCD:nonDiffractive"}
"""Minimum-bias processes for pile-up and the Pythia switch of each."""


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that determines the generated sample; ``digest()`` keys it on disk.

    Energies and momenta in GeV, lengths in mm. ``max_tracks`` tracks are stored per jet.
    ``pythia_tune_pp`` is Pythia's ``Tune:pp`` of the hard scatter (21: ATLAS A14 with
    NNPDF2.3 LO). ``process`` is ``ttbar``, ``dijet`` or ``mixed``; a mixed sample takes
    ``round(dijet_fraction x shard size)`` jets of every shard from dijet events, the rest
    from tt-bar. Dijet events have pT-hat in [dijet_pthat_min_gev, dijet_pthat_max_gev]
    (None: no upper limit). ``pileup_mu`` is the mean of the Poisson number of
    minimum-bias interactions (``pileup_process``: all inelastic or non-diffractive only;
    ``Tune:pp = pileup_tune_pp``, 8 is the ATLAS A2 minimum-bias tune) overlaid on every
    event, drawn from a pool of ``pileup_pool_events`` minimum-bias events per shard.
    ``label_taus`` gives jets labelled by a tau lepton (and no b or c hadron) flavour 15
    instead of 0 (light); training counts them as light either way.
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
    dijet_fraction: float | None = None
    dijet_pthat_min_gev: float = 20.0
    dijet_pthat_max_gev: float | None = None
    pileup_mu: float = 0.0
    pileup_tune_pp: int = 8
    pileup_pool_events: int = 1000
    pileup_process: str = "inelastic"
    label_taus: bool = False

    def __post_init__(self) -> None:
        if self.process not in SUPPORTED_PROCESSES:
            raise UsageError(
                f"unknown process {self.process!r}", f"use one of: {', '.join(SUPPORTED_PROCESSES)}"
            )
        for name in (
            "n_jets",
            "jets_per_shard",
            "max_tracks",
            "seed",
            "pythia_tune_pp",
            "pileup_tune_pp",
            "pileup_pool_events",
        ):
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
            "dijet_pthat_min_gev",
        ):
            if not getattr(self, name) > 0:
                raise UsageError(f"generator setting {name} must be > 0, got {getattr(self, name)!r}")
        if not isinstance(self.label_taus, bool):
            raise UsageError(f"label_taus must be true or false, got {self.label_taus!r}")
        if self.max_tracks > np.iinfo(np.int16).max:
            raise UsageError(f"max_tracks must be <= 32767, got {self.max_tracks}")
        if not isinstance(self.detector, DetectorModel):
            raise UsageError("generator setting detector must be a DetectorModel", "use from_dict for dicts")
        self._check_sample_mixture()
        if not (isinstance(self.pileup_mu, int | float) and 0 <= self.pileup_mu <= 1000):
            raise UsageError(f"pileup_mu must be a number in [0, 1000], got {self.pileup_mu!r}")
        if self.pileup_process not in PILEUP_PROCESSES:
            raise UsageError(
                f"unknown pileup_process {self.pileup_process!r}",
                f"use one of: {', '.join(PILEUP_PROCESSES)}",
            )
        pileup_fields = ("pileup_tune_pp", "pileup_pool_events", "pileup_process")
        if self.pileup_mu == 0 and any(getattr(self, k) != _LATER_SETTINGS[k] for k in pileup_fields):
            raise UsageError(
                f"{' / '.join(pileup_fields)} are set but pileup_mu is 0", "set pileup_mu > 0 or drop them"
            )

    def _check_sample_mixture(self) -> None:
        fraction = self.dijet_fraction
        if self.process == "mixed":
            if fraction is None or not 0 < fraction < 1:
                raise UsageError(
                    f"process 'mixed' needs dijet_fraction strictly between 0 and 1, got {fraction!r}",
                    "set dijet_fraction (e.g. 0.5), or use process ttbar or dijet",
                )
        elif fraction is not None:
            raise UsageError(
                f"dijet_fraction applies to process 'mixed' only (process is {self.process!r})",
                "drop dijet_fraction or set process to mixed",
            )
        if self.process == "ttbar" and (
            self.dijet_pthat_min_gev != _LATER_SETTINGS["dijet_pthat_min_gev"]
            or self.dijet_pthat_max_gev is not None
        ):
            raise UsageError(
                "dijet_pthat_min_gev / dijet_pthat_max_gev apply to samples with dijet events only",
                "drop them or set process to dijet or mixed",
            )
        if self.dijet_pthat_max_gev is not None and not self.dijet_pthat_max_gev > self.dijet_pthat_min_gev:
            raise UsageError(
                f"dijet_pthat_max_gev ({self.dijet_pthat_max_gev}) must exceed dijet_pthat_min_gev "
                f"({self.dijet_pthat_min_gev})",
                "widen the pT-hat range or set dijet_pthat_max_gev to None",
            )

    def to_dict(self) -> dict[str, Any]:
        """All settings as plain JSON-able values (the detector as a nested dict)."""
        return dataclasses.asdict(self)

    def canonical_dict(self) -> dict[str, Any]:
        """``to_dict()`` without the later settings that hold their defaults.

        This is what the digest hashes and what the files record, so adding a setting
        never renames or changes a sample that does not use it.
        """
        data = self.to_dict()
        for name, default in _LATER_SETTINGS.items():
            if data[name] == default:
                del data[name]
        for name, default in _LATER_DETECTOR_SETTINGS.items():
            if data["detector"][name] == default:
                del data["detector"][name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorSettings:
        """Settings from a dict such as ``to_dict()`` or a config file; unknown keys are an error.

        Missing keys take their defaults, so ``canonical_dict()`` round-trips too.
        """
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
        return sha256_of_obj({"format_version": FORMAT_VERSION, "settings": self.canonical_dict()})[:12]

    def shard_sizes(self) -> list[int]:
        """Jets per shard: ``jets_per_shard`` each, the last one holds the remainder."""
        n_full, remainder = divmod(self.n_jets, self.jets_per_shard)
        return [self.jets_per_shard] * n_full + ([remainder] if remainder else [])

    def jet_dtype(self) -> np.dtype:
        """JET_DTYPE for pure tt-bar without pile-up, else JET_DTYPE_EXTENDED."""
        return JET_DTYPE if self.process == "ttbar" and self.pileup_mu == 0 else JET_DTYPE_EXTENDED

    def shard_plan(self, n_rows: int) -> list[tuple[str, int]]:
        """(process, number of jets) blocks of a shard of ``n_rows`` jets, in file order."""
        if self.process != "mixed":
            return [(self.process, n_rows)]
        assert self.dijet_fraction is not None
        n_dijet = round(n_rows * self.dijet_fraction)
        return [(name, n) for name, n in (("ttbar", n_rows - n_dijet), ("dijet", n_dijet)) if n]


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


def time_shard(settings: GeneratorSettings, n_jets: int, out_dir: Path) -> GenerationTimer:
    """Generate one shard of ``n_jets`` (shard index 0) into ``out_dir`` in this process and
    return where its time went; for benchmarks."""
    timer = GenerationTimer()
    task = _ShardTask(settings, 0, n_jets, _shard_path(Path(out_dir), 0))
    _generate_shard(task, lambda n: None, timer)
    return timer


# --- shard generation --------------------------------------------------------------------


@dataclass(frozen=True)
class _ShardTask:
    settings: GeneratorSettings
    index: int
    n_jets: int
    path: Path


def _shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / "shards" / f"shard-{index:05d}.h5"


def _pythia_seed(seed: int, shard_index: int, stream: str = "ttbar") -> int:
    """Pythia's Random:seed for one stream of a shard (the hard process or the pile-up).

    The tt-bar stream keeps the first release's formula; every other stream mixes its name in.
    """
    key: dict[str, Any] = {"seed": seed, "shard": shard_index}
    if stream != "ttbar":
        key["stream"] = stream
    return 1 + int(sha256_of_obj(key)[:15], 16) % _PYTHIA_SEED_MAX


def _pythia_package_version() -> str:
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


def _make_pythia(settings: GeneratorSettings, seed: int, stream: str = "ttbar") -> Any:
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


def _make_jet_definition(jet_r: float) -> Any:
    # The SWIG classes of the fastjet package: they let the banner be silenced (one per
    # worker process otherwise); the batch clustering in fastjet._ext shares the library.
    from fastjet import _swig as fj

    fj.ClusterSequence.set_fastjet_banner_stream(None)
    return fj.JetDefinition(fj.antikt_algorithm, jet_r)


@dataclass
class GenerationTimer:
    """Seconds spent initialising Pythia, generating events, clustering, and in total."""

    init: float = 0.0
    pythia: float = 0.0
    fastjet: float = 0.0
    total: float = 0.0


class _EventBatch:
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

    def event(self, i: int) -> _Event:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return _Event(
            table=self.table[lo:hi],
            daughter1=self.daughter1[lo:hi],
            daughter2=self.daughter2[lo:hi],
            x=self.x[lo:hi],
            y=self.y[lo:hi],
            z=self.z[lo:hi],
            charge_of=self.charge_of,
        )


@dataclass(frozen=True)
class _Event:
    """One event record (index 0 is the event as a whole, as in Pythia's ``event``)."""

    table: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    charge_of: Callable[[np.ndarray], np.ndarray]


class _EventStream:
    """Successful events of one Pythia instance, generated and converted in batches."""

    def __init__(self, settings: GeneratorSettings, seed: int, stream: str, timer: GenerationTimer) -> None:
        start = time.perf_counter()
        self.pythia = _make_pythia(settings, seed, stream)
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

    def next_batch(self, n_events: int) -> _EventBatch:
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
        return _EventBatch(events, self.charge_of)


def _cluster_batch(
    batch: _EventBatch,
    visible: list[np.ndarray],
    settings: GeneratorSettings,
    jet_def: Any,
    timer: GenerationTimer,
) -> list[np.ndarray]:
    """Anti-kt jets above jet_pt_min of every event of a batch, each as an (n, 4) array of
    (pt, eta, phi_std, m2) in decreasing pT.

    All events are clustered in one C++ call; the jets' kinematics come from FastJet
    PseudoJets built from the clustered four-momenta, ordered by ``sorted_by_pt``, so they
    are the numbers a per-event ``ClusterSequence`` gives.
    """
    import fastjet._ext
    from fastjet import _swig as fj

    start = time.perf_counter()
    inputs = [batch.event(i).table[mask][:, 3:7] for i, mask in enumerate(visible)]
    counts = np.array([len(rows) for rows in inputs], dtype=np.int64)
    stops = np.cumsum(counts)
    stacked = np.concatenate(inputs) if inputs else np.zeros((0, 4))
    columns = [np.ascontiguousarray(stacked[:, k]) for k in range(4)]
    result = fastjet._ext.interfacemulti(*columns, stops - counts, stops, jet_def)
    px, py, pz, e, offsets = (np.asarray(a) for a in result.to_numpy(settings.jet_pt_min))
    out = []
    for i in range(len(inputs)):
        lo, hi = offsets[i], offsets[i + 1]
        jets = fj.sorted_by_pt(
            [fj.PseudoJet(*row) for row in zip(px[lo:hi], py[lo:hi], pz[lo:hi], e[lo:hi], strict=True)]
        )
        out.append(
            np.array([(j.pt(), j.eta(), j.phi_std(), j.m2()) for j in jets], dtype=np.float64).reshape(-1, 4)
        )
    timer.fastjet += time.perf_counter() - start
    return out


class _PileupOverlay:
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
        stream = _EventStream(settings, _pythia_seed(settings.seed, shard_index, "pileup"), "pileup", timer)
        parts: list[dict[str, np.ndarray]] = []
        counts: list[np.ndarray] = []
        left = settings.pileup_pool_events
        while left:
            batch = stream.next_batch(min(left, _MAX_BATCH_EVENTS))
            part, count = self._charged_particles(batch)
            parts.append(part)
            counts.append(count)
            left -= len(batch)
        self.pool = {key: np.concatenate([part[key] for part in parts]) for key in self._COLUMNS}
        self.offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))])

    def _charged_particles(self, batch: _EventBatch) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Charged final-state particles in the acceptance, positions relative to their
        event's vertex, and their number per event."""
        table = batch.table
        px, py, pz = table[:, 3], table[:, 4], table[:, 5]
        event_of = np.repeat(np.arange(len(batch)), np.diff(batch.offsets))
        first = batch.offsets[:-1][event_of]  # the event's row 0 holds its vertex
        rows = np.flatnonzero(
            (table[:, 1] > 0)
            & (_f32(np.hypot(px, py)) > self.settings.track_pt_min)
            & (np.abs(_f32(_eta(px, py, pz))) < self.settings.track_eta_max)
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


def _generate_shard(
    task: _ShardTask, report: Callable[[int], object], timer: GenerationTimer | None = None
) -> None:
    """Generate the events of one shard until it holds exactly ``task.n_jets`` jets; write it.

    A shard is one block of jets per process of ``settings.shard_plan`` (tt-bar first). One
    numpy generator draws the detector response of all blocks in event order, so a shard
    depends only on the settings, the seed and the shard index.
    """
    settings = task.settings
    timer = timer if timer is not None else GenerationTimer()
    start = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(task.index,)))
    jet_def = _make_jet_definition(settings.jet_r)
    pileup = _PileupOverlay(settings, task.index, timer) if settings.pileup_mu > 0 else None

    jets_parts: list[np.ndarray] = []
    tracks_parts: list[np.ndarray] = []
    n_events = unreported = 0
    for process, n_target in settings.shard_plan(task.n_jets):
        stream = _EventStream(settings, _pythia_seed(settings.seed, task.index, process), process, timer)
        n_collected = events_done = 0
        while n_collected < n_target:
            # Ask for about as many events as the jets still needed take; the events of
            # the last batch that are not needed are dropped unprocessed.
            need = n_target - n_collected
            per_event = n_collected / events_done if events_done else 0.0
            size = math.ceil(need / per_event) if per_event > 0 else _FIRST_BATCH_EVENTS
            batch = stream.next_batch(max(1, min(size, _MAX_BATCH_EVENTS)))
            kinematics = [_particle_kinematics(batch.event(i)) for i in range(len(batch))]
            all_jets = _cluster_batch(batch, [k["visible"] for k in kinematics], settings, jet_def, timer)
            for i in range(len(batch)):
                event_number = task.index * _EVENT_NUMBER_STRIDE + n_events
                n_events += 1
                events_done += 1
                overlay = pileup.overlay() if pileup is not None else None
                jets, tracks = _process_event(
                    batch.event(i), kinematics[i], all_jets[i], settings, rng, event_number, overlay
                )
                if jets.dtype != JET_DTYPE:
                    jets["process"] = PROCESS_CODES[process]
                take = min(len(jets), n_target - n_collected)
                if take:
                    # Jets are in decreasing pT: the last event gives its leading jets.
                    jets_parts.append(jets[:take])
                    tracks_parts.append(tracks[:take])
                    n_collected += take
                    unreported += take
                if unreported >= _PROGRESS_EVERY_JETS:
                    report(unreported)
                    unreported = 0
                if n_collected == n_target:
                    break

    attrs = {
        "settings": canonical_json(settings.canonical_dict()),
        "format_version": FORMAT_VERSION,
        "shard_index": task.index,
        "n_events": n_events,
        "pythia_version": _pythia_package_version(),
    }
    with atomic_path(task.path) as tmp:
        _write_jets_file(tmp, np.concatenate(jets_parts), np.concatenate(tracks_parts), settings, attrs)
    timer.total += time.perf_counter() - start
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


def _particle_kinematics(event: _Event) -> dict[str, np.ndarray]:
    """Integer columns, pT, eta, phi, the jet-input mask and the heavy-flavour code
    (_heavy_flavour) of an event's particles."""
    table = event.table
    ids = table[:, 0].astype(np.int64)
    status = table[:, 1].astype(np.int64)
    px, py, pz = table[:, 3], table[:, 4], table[:, 5]
    eta = _eta(px, py, pz)
    final = status > 0
    visible = final & ~np.isin(np.abs(ids), _NEUTRINOS) & (np.abs(eta) < JET_INPUT_ETA_MAX)
    return {
        "ids": ids,
        "status": status,
        "mother1": table[:, 2].astype(np.int64),
        "pt": np.hypot(px, py),
        "eta": eta,
        "phi": np.arctan2(py, px),
        "visible": visible,
        "flavour": _heavy_flavour(ids),
    }


def _process_event(
    event: _Event,
    kinematics: dict[str, np.ndarray],
    jet_kin: np.ndarray,
    settings: GeneratorSettings,
    rng: np.random.Generator,
    event_number: int,
    pileup: tuple[int, dict[str, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stored jets (pT-ordered) and their tracks for one event, given its clustered jets."""
    flavour, status, pt, eta, phi = (kinematics[k] for k in ("flavour", "status", "pt", "eta", "phi"))
    pv = np.array([event.x[0], event.y[0], event.z[0]])  # event[0]: the (spread) primary vertex
    jet_pt, jet_eta, jet_phi = jet_kin[:, 0], jet_kin[:, 1], jet_kin[:, 2]
    # Cuts on stored quantities are applied to their float32 values, so the file obeys them.
    stored = np.flatnonzero(
        (_f32(jet_pt) > settings.jet_pt_min) & (np.abs(_f32(jet_eta)) < settings.jet_eta_max)
    )
    if len(stored) == 0:
        return np.zeros(0, settings.jet_dtype()), np.zeros((0, settings.max_tracks), TRACK_DTYPE)

    jets = np.zeros(len(stored), settings.jet_dtype())
    jets["pt"], jets["eta"], jets["phi"] = jet_pt[stored], jet_eta[stored], jet_phi[stored]
    jets["mass"] = np.sqrt(np.clip(jet_kin[stored, 3], 0.0, None))
    jets["event_number"] = event_number
    if pileup is not None:
        jets["n_pileup"] = min(pileup[0], np.iinfo(np.int16).max)
    if settings.label_taus:  # tau leptons label like hadrons, after b and c
        flavour = np.where(np.abs(kinematics["ids"]) == 15, TAU_LABEL, flavour).astype(np.int8)
    _label_jets(jets, stored, event, flavour, status, pt, eta, phi, pv, jet_eta, jet_phi)

    track_table = _reconstruct_tracks(
        settings, rng, event, kinematics, pv, stored, jet_eta, jet_phi, pileup[1] if pileup else None
    )
    tracks = _fill_tracks(settings, jets, track_table)
    return jets, tracks


def _daughters(event: _Event, index: int) -> list[int]:
    """Pythia's ``Particle::daughterList()`` for a particle that is not a beam."""
    first, last = int(event.daughter1[index]), int(event.daughter2[index])
    if first == 0 and last == 0:
        return []
    if last == 0 or last == first:
        return [first]
    if last > first:
        return list(range(first, last + 1))
    return [last, first]


def _label_jets(
    jets: np.ndarray,
    stored: np.ndarray,
    event: _Event,
    flavour: np.ndarray,
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
    is a b jet (5); else with a c hadron a c jet (4); else, if ``flavour`` marks tau leptons
    (TAU_LABEL, ``label_taus``), with a decaying tau a tau jet (15); else light (0). The
    hardest matched particle of the label flavour gives hadron_pt and its transverse decay
    length.
    """
    candidates = np.flatnonzero((flavour > 0) & (status < 0) & (pt > HADRON_PT_MIN))
    weak: list[int] = []
    for index in candidates:
        daughters = _daughters(event, index)
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
        hadron_flavour = int(flavour[hadron])
        current = int(jets["flavour"][row])
        rank, current_rank = _LABEL_PRIORITY[hadron_flavour], _LABEL_PRIORITY[current]
        if rank < current_rank or (rank == current_rank and pt[hadron] <= jets["hadron_pt"][row]):
            continue
        first_daughter = event.daughter1[hadron]
        jets["flavour"][row] = hadron_flavour
        jets["hadron_pt"][row] = pt[hadron]
        jets["hadron_lxy_mm"][row] = math.hypot(
            float(event.x[first_daughter]) - pv[0], float(event.y[first_daughter]) - pv[1]
        )


def _track_origins(
    indices: np.ndarray, status: np.ndarray, mother1: np.ndarray, flavour: np.ndarray
) -> np.ndarray:
    """1 where a b/c hadron is among the decay ancestors of each particle, else 0 (for now).

    Walks all the particles' decay chains at once: from a particle produced in a decay
    (|status| 91-99) to its first mother, until a heavy-flavour hadron or a particle not
    produced in a decay is reached.
    """
    from_decay = (np.abs(status) >= 91) & (np.abs(status) <= 99)
    current = np.asarray(indices, dtype=np.int64).copy()
    heavy = np.zeros(len(current), dtype=bool)
    active = from_decay[current]
    while active.any():
        current[active] = mother1[current[active]]
        hit = active & (flavour[current] != 0)
        heavy |= hit
        active &= ~hit & from_decay[current]
    return np.where(heavy, ORIGIN_HEAVY_FLAVOUR, ORIGIN_PRIMARY).astype(np.int8)


def _reconstruct_tracks(
    settings: GeneratorSettings,
    rng: np.random.Generator,
    event: _Event,
    kinematics: dict[str, np.ndarray],
    pv: np.ndarray,
    stored: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    pileup: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Selected tracks (real and fake) of the stored jets, as column arrays with a jet row.

    Pile-up particles (if any) follow the hard-scatter ones through the same detector
    model; their impact parameters are measured from the hard-scatter vertex.
    """
    detector = settings.detector
    ids, status, mother1, pt, eta, phi = (
        kinematics[k] for k in ("ids", "status", "mother1", "pt", "eta", "phi")
    )
    table = event.table
    px, py, pz = table[:, 3], table[:, 4], table[:, 5]
    charged = np.flatnonzero(
        (status > 0) & (_f32(pt) > settings.track_pt_min) & (np.abs(_f32(eta)) < settings.track_eta_max)
    )
    charge = event.charge_of(ids[charged])
    charged = charged[charge != 0]
    charge = charge[charge != 0]
    n_hard = len(charged)
    cand = {
        "pt": pt[charged],
        "eta": eta[charged],
        "phi": phi[charged],
        "px": px[charged],
        "py": py[charged],
        "pz": pz[charged],
        "charge": charge,
    }
    vertex = np.stack([event.x[charged], event.y[charged], event.z[charged]], axis=1).reshape(-1, 3)
    if pileup is not None and len(pileup["px"]):
        pu_pt = np.hypot(pileup["px"], pileup["py"])
        extra = {
            "pt": pu_pt,
            "eta": _eta(pileup["px"], pileup["py"], pileup["pz"]),
            "phi": np.arctan2(pileup["py"], pileup["px"]),
            "px": pileup["px"],
            "py": pileup["py"],
            "pz": pileup["pz"],
            "charge": pileup["charge"],
        }
        cand = {key: np.concatenate([cand[key], extra[key]]) for key in cand}
        vertex = np.concatenate([vertex, np.stack([pileup["x"], pileup["y"], pileup["z"]], axis=1)])
    n_real = len(cand["pt"])
    if detector.material_layers:
        extra = _material_candidates(settings, rng, event, kinematics)
        cand = {key: np.concatenate([cand[key], extra[key]]) for key in cand}
        vertex = np.concatenate([vertex, np.stack([extra["x"], extra["y"], extra["z"]], axis=1)])
    is_pileup = np.arange(len(cand["pt"])) >= n_hard
    is_material = np.arange(len(cand["pt"])) >= n_real
    particle = np.concatenate([charged, np.full(len(cand["pt"]) - n_hard, -1, dtype=charged.dtype)])

    # Each track belongs to the nearest jet within the cone (all jets above threshold).
    nearest = _nearest(_delta_r(cand["eta"], cand["phi"], jet_eta, jet_phi), settings.jet_r)
    row_of_jet = np.full(len(jet_eta), -1)
    row_of_jet[stored] = np.arange(len(stored))
    keep = (nearest >= 0) & (row_of_jet[np.maximum(nearest, 0)] >= 0)
    jet_index = nearest[keep]
    cand = {key: values[keep] for key, values in cand.items()}
    vertex, is_pileup, particle, is_material = (
        vertex[keep],
        is_pileup[keep],
        particle[keep],
        is_material[keep],
    )

    found = detector.in_acceptance(np.hypot(vertex[:, 0], vertex[:, 1]))
    found &= rng.random(len(jet_index)) < detector.efficiency(cand["eta"])
    jet_index, vertex, is_pileup, particle, is_material = (
        jet_index[found],
        vertex[found],
        is_pileup[found],
        particle[found],
        is_material[found],
    )
    cand = {key: values[found] for key, values in cand.items()}

    d0_true, z0_true = straight_line_impact_parameters(
        vertex[:, 0], vertex[:, 1], vertex[:, 2], cand["px"], cand["py"], cand["pz"], pv[2]
    )
    d0, z0, sigma_d0, sigma_z0 = detector.smear(rng, d0_true, z0_true, cand["pt"], cand["eta"])
    selected = detector.passes_selection(d0, z0)

    flavour = kinematics["flavour"]
    displaced = np.linalg.norm(vertex - pv, axis=1) > _DISPLACED_MM
    hard = selected & ~is_pileup
    origin = np.full(int(selected.sum()), ORIGIN_PILEUP, dtype=np.int8)
    hard_origin = _track_origins(particle[hard], status, mother1, flavour)
    hard_origin[(hard_origin == ORIGIN_PRIMARY) & displaced[hard]] = ORIGIN_OTHER_SECONDARY
    origin[~is_pileup[selected]] = hard_origin
    origin[is_material[selected]] = ORIGIN_MATERIAL

    real = {
        "jet_row": row_of_jet[jet_index[selected]],
        "pt": cand["pt"][selected],
        "eta": cand["eta"][selected],
        "phi": cand["phi"][selected],
        "charge": cand["charge"][selected],
        "d0": d0[selected],
        "z0": z0[selected],
        "sigma_d0": sigma_d0[selected],
        "sigma_z0": sigma_z0[selected],
        "origin": origin,
    }
    fakes = _fake_tracks(
        settings, rng, np.bincount(real["jet_row"], minlength=len(stored)), stored, jet_eta, jet_phi
    )
    table_out = {key: np.concatenate([real[key], fakes[key]]) for key in real}
    rows = table_out["jet_row"]
    table_out["d0"], table_out["z0"] = lifetime_signs(
        table_out["d0"],
        table_out["z0"],
        table_out["phi"],
        table_out["eta"],
        jet_phi[stored][rows],
        jet_eta[stored][rows],
    )
    return table_out


def _material_candidates(
    settings: GeneratorSettings, rng: np.random.Generator, event: _Event, kinematics: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Charged secondaries of conversions and hadronic interactions that pass the
    candidate cuts (pT, |eta|), as candidate columns plus their production point.

    The inputs are the hard-scatter final-state photons and hadrons (|PDG id| >= 100,
    charged or neutral) with pT > track_pt_min and |eta| < track_eta_max + 0.5, in event
    order; DetectorModel.material_secondaries draws their interactions.
    """
    ids, status, pt, eta = (kinematics[k] for k in ("ids", "status", "pt", "eta"))
    photon = ids == _PHOTON
    rows = np.flatnonzero(
        (status > 0)
        & (photon | (np.abs(ids) >= 100))
        & (pt > settings.track_pt_min)
        & (np.abs(eta) < settings.track_eta_max + _MATERIAL_INPUT_ETA_MARGIN)
    )
    table = event.table
    charge = np.zeros(len(rows))
    hadrons = ~photon[rows]
    charge[hadrons] = event.charge_of(ids[rows][hadrons])
    out = settings.detector.material_secondaries(
        rng,
        table[rows, 3:6],
        np.stack([event.x[rows], event.y[rows], event.z[rows]], axis=1).reshape(-1, 3),
        photon[rows],
        charge,
    )
    out_pt = np.hypot(out["px"], out["py"])
    out_eta = _eta(out["px"], out["py"], out["pz"])
    keep = (_f32(out_pt) > settings.track_pt_min) & (np.abs(_f32(out_eta)) < settings.track_eta_max)
    return {
        "pt": out_pt[keep],
        "eta": out_eta[keep],
        "phi": np.arctan2(out["py"], out["px"])[keep],
        "px": out["px"][keep],
        "py": out["py"][keep],
        "pz": out["pz"][keep],
        "charge": out["charge"][keep],
        "x": out["x"][keep],
        "y": out["y"][keep],
        "z": out["z"][keep],
    }


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
    jets = handle.create_dataset(
        "jets", shape=(n_rows,), dtype=settings.jet_dtype(), chunks=(rows,), **options
    )
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
                handle.attrs.get("settings") == canonical_json(settings.canonical_dict())
                and handle.attrs.get("format_version") == FORMAT_VERSION
                and handle["jets"].shape == (n_rows,)
                and handle["jets"].dtype == settings.jet_dtype()
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
        merged.attrs["settings"] = canonical_json(settings.canonical_dict())
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
    labels = (("b", 5), ("c", 4), ("light", 0)) + ((("tau", TAU_LABEL),) if settings.label_taus else ())
    counts = {name: int(np.sum(jets["flavour"] == code)) for name, code in labels}
    n_tracks = jets["n_tracks"].astype(np.int64)
    info = {
        "format_version": FORMAT_VERSION,
        "digest": settings.digest(),
        "process": settings.process,
        "settings": settings.canonical_dict(),
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
    if jets.dtype == JET_DTYPE_EXTENDED:  # keys of later features only where they are used
        info["process_counts"] = {
            name: int(np.sum(jets["process"] == code)) for name, code in PROCESS_CODES.items()
        }
        info["mean_pileup_interactions"] = round(float(jets["n_pileup"].mean()), 4)
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
    if method == "fork":
        # Import the generator's extension modules once, so forked workers inherit them.
        import awkward  # noqa: F401
        import fastjet._ext  # noqa: F401
        import pythia8mc  # noqa: F401
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
