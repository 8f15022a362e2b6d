"""GeneratorSettings: everything that determines a generated sample, its checks and digest.

Settings added after the first release enter the digest (and the files' ``settings``
attribute) only when they differ from their defaults, so the default sample keeps its
digest and its bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_ml.data.detector import DetectorModel
from trigger_ml.data.layout import FORMAT_VERSION, JET_DTYPE, JET_DTYPE_EXTENDED
from trigger_ml.errors import UsageError
from trigger_ml.fileio import sha256_of_obj

SUPPORTED_PROCESSES = ("ttbar", "dijet", "mixed")
"""ttbar; dijet (light-enriched QCD 2 -> 2); mixed (both, ``dijet_fraction`` of the jets dijet)."""

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
