"""The contract every model kind meets, as a test base: a kind gets its tests by declaring
fixtures in a subclass (``tests/test_kinds.py``), the way HGQ2's ``LayerTestBase`` works.

Each kind runs on tiny real inputs (a few hundred Pythia jets, a few epochs) through its whole
chain: train (or fit) -> convert with hls4ml -> C simulation checked against the kind's
reference under the kind's exactness rule -> the stage's cache -> firmware bundle -> the
bundle's own verification (g++ C simulation of every test vector). The specs are those the
stage tests already build in the session workspace, so the chain is mostly cached.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from trigger_ml.config import ModelConfig, load_model_config
from trigger_ml.firmware.hostile import FAMILIES, TRACK_FAMILIES, hostile_check
from trigger_ml.kinds import KINDS, NetworkKind, kind_of
from trigger_ml.pipeline import ensure, ensure_trained, runner
from trigger_ml.workspace import Workspace


@pytest.mark.slow
class KindContract:
    """Subclasses set ``kind`` (a name registered in ``trigger_ml.kinds.KINDS``) and ``spec``
    (a tiny model of that kind: for symbolic kinds, the teacher), and may set ``no_bundle``
    (why the kind has no firmware bundle yet)."""

    kind: ClassVar[str]
    spec: ClassVar[str]
    no_bundle: ClassVar[str | None] = None

    # --- what a subclass may override ------------------------------------------------------

    def subject(self, config: ModelConfig) -> Any:
        """What the kind's firmware stage takes (the model configuration for networks)."""
        return config

    def exact_fraction(self, report: dict[str, Any]) -> float:
        """The fraction of test jets on which the C simulation meets the kind's exactness rule."""
        record = report["record"]["fidelity"]  # every report's fidelity of record (trigger_ml.artefacts)
        return record["exact_fraction"]

    # --- fixtures ----------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    def config(self) -> ModelConfig:
        return load_model_config(self.spec)

    @pytest.fixture(scope="class")
    def firmware(self, workspace: Workspace, config: ModelConfig) -> dict[str, Any]:
        return ensure(KINDS[self.kind].firmware_stage, self.subject(config), workspace)

    # --- the contract ------------------------------------------------------------------------

    def test_kind_is_registered_with_a_firmware_stage(self):
        assert KINDS[self.kind].firmware_stage in runner(Workspace(".")).stages

    def test_trains(self, workspace: Workspace, config: ModelConfig):
        run = ensure_trained(config, workspace)  # the model, or the teacher of a symbolic kind
        assert run.metrics["models"], "the run records its models' test-split physics"
        kind = kind_of(config)
        if isinstance(kind, NetworkKind):
            expected = kind.trained_models(config)
            assert expected and all(run.weights_path(name).is_file() for name in expected)
            assert set(run.metrics["models"]) == set(expected)

    def test_report_names_the_kind(self, firmware: dict[str, Any]):
        assert firmware["record"]["model_kind"] == self.kind

    def test_c_simulation_meets_the_exactness_rule(self, firmware: dict[str, Any]):
        assert firmware["fidelity"]["n_jets"] > 100
        assert self.exact_fraction(firmware) == 1.0

    def test_hostile_inputs_bit_exact(
        self, workspace: Workspace, config: ModelConfig, request: pytest.FixtureRequest, tmp_path
    ):
        """hls4ml's C simulation of the project == the reference model on every hostile family
        (saturation, beyond-range and tie values, random codes, empty and full jets, one extreme
        track), for every kind that claims exactness."""
        kind = KINDS[self.kind]
        if not kind.claims_exactness:
            hostile = request.getfixturevalue("firmware")["fidelity"].get("hostile")
            if hostile is None:
                pytest.skip(f"{self.kind} claims no bit-exactness: {kind.exactness}")
            # measured, not claimed: every family is reported with the kind's own rule
            applicable = [family for family in FAMILIES if family not in TRACK_FAMILIES]
            assert [row["family"] for row in hostile] == applicable  # the expressions' inputs are flat
            assert all(0 <= row["n_within_step"] <= row["n_vectors"] for row in hostile)
            return
        request.getfixturevalue("firmware")  # the finished project
        rows = hostile_check(config, workspace, tmp_path)  # through the kind (ModelKind.hostile_check)
        layout = kind.hostile_layout(config, 0)
        assert [row["family"] for row in rows] == [
            f for f in FAMILIES if layout.slots or f not in TRACK_FAMILIES
        ]
        assert sum(row["n_vectors"] for row in rows) >= 50  # 5 families of a flat layout: 50
        inexact = [row for row in rows if row["n_exact"] != row["n_vectors"]]
        assert not inexact, inexact

    def test_firmware_stage_is_cached(
        self, workspace: Workspace, config: ModelConfig, firmware: dict[str, Any]
    ):
        assert runner(workspace).is_current(KINDS[self.kind].firmware_stage, self.subject(config))
        assert ensure(KINDS[self.kind].firmware_stage, self.subject(config), workspace) == firmware

    def test_decision_in_firmware(self, workspace: Workspace, config: ModelConfig, firmware: dict[str, Any]):
        """trigger_top (front end -> network -> b-tag decision), one C simulation: the decision
        equals its integer emulation always (else the stage fails), the whole chain equals the
        Python chain on every test jet (and hostile vector) for a kind that claims exactness,
        and a Deep Set's top is unchanged by shuffling the tracks."""
        from trigger_ml.decision.stage import wants_decision

        if KINDS[self.kind].firmware_stage != "hls" or not wants_decision(config):
            pytest.skip(f"{self.kind}: no decision block (no hls4ml network firmware with logits)")
        decision = ensure("decision", config, workspace)["fidelity"]
        if KINDS[self.kind].claims_exactness:
            assert decision["test_exact_fraction"] == 1.0
            assert all(row["n_exact"] == row["n_vectors"] for row in decision["hostile"])
        if config.architecture.kind == "deepsets":
            assert decision["permutation_invariant_fraction"] == 1.0

    def test_bundle_verifies(self, workspace: Workspace, config: ModelConfig, firmware: dict[str, Any]):
        if self.no_bundle:
            pytest.skip(f"{self.kind}: no firmware bundle: {self.no_bundle}")
        from trigger_ml.decision.stage import wants_decision
        from trigger_ml.firmware import build_bundle, verify_bundle

        if wants_decision(config):
            ensure("decision", config, workspace)
        bundle = build_bundle(config, workspace, n_vectors=200, verify=False)
        result = verify_bundle(bundle)
        assert result.n_vectors == 200
        assert result.n_top_vectors == (200 + result.n_hostile if wants_decision(config) else 0)


class NetworkKindContract(KindContract):
    """Network kinds: the configuration is claimed by exactly this kind."""

    def test_configuration_is_claimed_by_the_kind(self, config: ModelConfig):
        assert kind_of(config).name == self.kind
