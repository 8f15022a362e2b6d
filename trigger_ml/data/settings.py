"""GeneratorSettings: everything that determines a generated sample, its checks and digest.

The schema of the sample, defined once: :class:`SampleSettings` holds what a model config's
``sample:`` section can set (:class:`trigger_ml.config.SampleConfig` embeds it), and
:class:`GeneratorSettings` adds the sample's size, seed and the fixed generator settings.
Each field carries its type, range, default and documentation; a new sample setting is one
field of ``SampleSettings``, marked ``later()`` (plus its use in the generator).

Settings marked ``later()`` (added after the first release) enter the digest (and the files'
``settings`` attribute) only when they differ from their defaults, so the default sample keeps
its digest and its bytes. This module is pure schema: no Pythia, no FastJet.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import Field, model_validator

from trigger_ml.data.detector import DetectorModel
from trigger_ml.data.l1tracks import L1TrackModel
from trigger_ml.data.layout import (
    FORMAT_VERSION,
    JET_DTYPE,
    JET_DTYPE_EXTENDED,
    JET_DTYPE_L1,
    TRACK_DTYPE,
    TRACK_DTYPE_L1,
)
from trigger_ml.fileio import sha256_of_obj
from trigger_ml.schema import SettingsModel, later, setting_error, without_later_defaults

Process = Literal["ttbar", "dijet", "mixed"]
SUPPORTED_PROCESSES: tuple[str, ...] = get_args(Process)
"""ttbar; dijet (light-enriched QCD 2 -> 2); mixed (both, ``dijet_fraction`` of the jets dijet)."""
PILEUP_PROCESSES = {"inelastic": "SoftQCD:inelastic", "nondiffractive": "SoftQCD:nonDiffractive"}
"""Minimum-bias processes for pile-up and the Pythia switch of each."""

_PILEUP_DETAILS = ("pileup_tune_pp", "pileup_pool_events", "pileup_process")


class SampleSettings(SettingsModel):
    """The physics of a sample that a model config's ``sample:`` section can set.

    ``process`` is ``ttbar``, ``dijet`` or ``mixed``; a mixed sample takes
    ``round(dijet_fraction x shard size)`` jets of every shard from dijet events, the rest
    from tt-bar. Dijet events have pT-hat in [dijet_pthat_min_gev, dijet_pthat_max_gev]
    (None: no upper limit). ``pileup_mu`` is the mean of the Poisson number of
    minimum-bias interactions (``pileup_process``: all inelastic or non-diffractive only;
    ``Tune:pp = pileup_tune_pp``, 8 is the ATLAS A2 minimum-bias tune) overlaid on every
    event, drawn from a pool of ``pileup_pool_events`` minimum-bias events per shard.
    ``label_taus`` gives jets labelled by a tau lepton (and no b or c hadron) flavour 15
    instead of 0 (light); training counts them as light either way. ``detector`` is the
    tracking-detector model (docs/detector-model.md).

    Every field but ``process`` and ``detector`` was added after the first release and is
    marked ``later()``: never change its default, add a new field instead.
    """

    WHAT: ClassVar[str] = "generator setting"

    process: Process = Field("ttbar", description="ttbar, dijet or mixed")
    dijet_fraction: float | None = Field(
        None, gt=0, lt=1, description="share of dijet jets of a mixed sample", json_schema_extra=later()
    )
    dijet_pthat_min_gev: float = Field(
        20.0, gt=0, description="lower pT-hat of dijet events (GeV)", json_schema_extra=later()
    )
    dijet_pthat_max_gev: float | None = Field(
        None, gt=0, description="upper pT-hat of dijet events (GeV; None: none)", json_schema_extra=later()
    )
    pileup_mu: float = Field(
        0.0, ge=0, le=1000, description="mean number of pile-up interactions", json_schema_extra=later()
    )
    pileup_process: Literal["inelastic", "nondiffractive"] = Field(
        "inelastic", description="minimum-bias process of pile-up", json_schema_extra=later()
    )
    pileup_pool_events: int = Field(
        1000, ge=1, le=100_000, strict=True, description="pile-up events per shard", json_schema_extra=later()
    )
    pileup_tune_pp: int = Field(
        8, ge=1, strict=True, description="Pythia Tune:pp of pile-up", json_schema_extra=later()
    )
    label_taus: bool = Field(
        False,
        strict=True,
        description="flavour 15 for tau jets (trained as light)",
        json_schema_extra=later(),
    )
    detector: DetectorModel = Field(DetectorModel(), description="the tracking-detector model")
    tracks: Literal["offline", "l1"] = Field(
        "offline",
        description="offline-like tracks, or tracks as the L1 track finder delivers them (with their words)",
        json_schema_extra=later(),
    )
    l1: L1TrackModel = Field(
        L1TrackModel(), description="the L1 track model (tracks: l1)", json_schema_extra=later()
    )

    @model_validator(mode="after")
    def _sample_mixture(self) -> SampleSettings:
        fraction = self.dijet_fraction
        if self.process == "mixed":
            if fraction is None:
                raise setting_error(
                    f"process 'mixed' needs dijet_fraction strictly between 0 and 1, got {fraction!r}",
                    "set dijet_fraction (e.g. 0.5), or use process ttbar or dijet",
                )
        elif fraction is not None:
            raise setting_error(
                f"dijet_fraction applies to process 'mixed' only (process is {self.process!r})",
                "drop dijet_fraction or set process to mixed",
            )
        if self.process == "ttbar" and (
            self._changed("dijet_pthat_min_gev") or self.dijet_pthat_max_gev is not None
        ):
            raise setting_error(
                "dijet_pthat_min_gev / dijet_pthat_max_gev apply to samples with dijet events only",
                "drop them or set process to dijet or mixed",
            )
        if self.dijet_pthat_max_gev is not None and not self.dijet_pthat_max_gev > self.dijet_pthat_min_gev:
            raise setting_error(
                f"dijet_pthat_max_gev ({self.dijet_pthat_max_gev}) must exceed dijet_pthat_min_gev "
                f"({self.dijet_pthat_min_gev})",
                "widen the pT-hat range or set dijet_pthat_max_gev to None",
            )
        if self.tracks != "l1" and self.l1 != L1TrackModel():
            raise setting_error("l1 parameters are set but tracks is not 'l1'", "set tracks: l1 or drop l1")
        if self.pileup_mu == 0 and any(self._changed(name) for name in _PILEUP_DETAILS):
            raise setting_error(
                f"{' / '.join(_PILEUP_DETAILS)} are set but pileup_mu is 0", "set pileup_mu > 0 or drop them"
            )
        return self

    def _changed(self, name: str) -> bool:
        return getattr(self, name) != type(self).model_fields[name].default


class GeneratorSettings(SampleSettings):
    """Everything that determines the generated sample; ``digest()`` keys it on disk.

    Energies and momenta in GeV, lengths in mm. The sample settings of
    :class:`SampleSettings`, plus the sample's size and seed and the generator settings
    that no model config sets: ``max_tracks`` tracks are stored per jet, ``pythia_tune_pp``
    is Pythia's ``Tune:pp`` of the hard scatter (21: ATLAS A14 with NNPDF2.3 LO).
    """

    sqrt_s_gev: float = Field(13600.0, gt=0)
    n_jets: int = Field(100_000, ge=1, strict=True)
    seed: int = Field(1, ge=1, strict=True)
    jets_per_shard: int = Field(5000, ge=1, strict=True)
    jet_r: float = Field(0.4, gt=0)
    jet_pt_min: float = Field(20.0, gt=0)
    jet_eta_max: float = Field(2.5, gt=0)
    track_pt_min: float = Field(1.0, gt=0)
    track_eta_max: float = Field(2.5, gt=0)
    max_tracks: int = Field(32, ge=1, le=int(np.iinfo(np.int16).max), strict=True)
    beamspot_sigma_z_mm: float = Field(35.0, gt=0)
    beamspot_sigma_xy_mm: float = Field(0.01, gt=0)
    pythia_tune_pp: int = Field(21, ge=1, strict=True)

    def to_dict(self) -> dict[str, Any]:
        """All settings as plain values (the detector as a nested dict)."""
        return self.model_dump()

    def canonical_dict(self) -> dict[str, Any]:
        """``to_dict()`` without the ``later()`` settings that hold their defaults.

        This is what the digest hashes and what the files record, so adding a setting
        never renames or changes a sample that does not use it.
        """
        return without_later_defaults(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorSettings:
        """Settings from a dict such as ``to_dict()`` or a config file; unknown keys are an error.

        Missing keys take their defaults, so ``canonical_dict()`` round-trips too.
        """
        return cls(**data)

    def replace(self, **changes: Any) -> GeneratorSettings:
        """A copy with ``changes`` applied, checked like a new instance."""
        return type(self)(**{**self.model_dump(), **changes})

    def digest(self) -> str:
        """12 hex characters identifying these settings and the format version."""
        return sha256_of_obj({"format_version": FORMAT_VERSION, "settings": self.canonical_dict()})[:12]

    def shard_sizes(self) -> list[int]:
        """Jets per shard: ``jets_per_shard`` each, the last one holds the remainder."""
        n_full, remainder = divmod(self.n_jets, self.jets_per_shard)
        return [self.jets_per_shard] * n_full + ([remainder] if remainder else [])

    def jet_dtype(self) -> np.dtype:
        """JET_DTYPE for pure tt-bar without pile-up, JET_DTYPE_L1 for L1 tracks, else JET_DTYPE_EXTENDED."""
        if self.tracks == "l1":
            return JET_DTYPE_L1
        return JET_DTYPE if self.process == "ttbar" and self.pileup_mu == 0 else JET_DTYPE_EXTENDED

    def track_dtype(self) -> np.dtype:
        """TRACK_DTYPE, or TRACK_DTYPE_L1 (with the track words) for L1 tracks."""
        return TRACK_DTYPE_L1 if self.tracks == "l1" else TRACK_DTYPE

    def shard_plan(self, n_rows: int) -> list[tuple[str, int]]:
        """(process, number of jets) blocks of a shard of ``n_rows`` jets, in file order."""
        if self.process != "mixed":
            return [(self.process, n_rows)]
        assert self.dijet_fraction is not None
        n_dijet = round(n_rows * self.dijet_fraction)
        return [(name, n) for name, n in (("ttbar", n_rows - n_dijet), ("dijet", n_dijet)) if n]
