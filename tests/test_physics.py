"""Tagging conventions: discriminant, working points, rejections."""

import numpy as np
import pytest

from trigger_ml.physics import (
    classes_from_truth,
    discriminant_from_logits,
    light_rejection_uncertainties,
    rejection,
    rejection_stat_uncertainty,
    softmax,
    tagging_metrics,
    threshold_at_efficiency,
)


def test_discriminant_matches_the_dips_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(100, 3))
    p = softmax(logits)
    f_c = 0.018
    expected = np.log(p[:, 0] / (f_c * p[:, 1] + (1 - f_c) * p[:, 2]))
    np.testing.assert_allclose(discriminant_from_logits(logits, f_c), expected, rtol=1e-12)


def test_truth_labels_map_to_classes():
    assert classes_from_truth(np.array([5, 4, 0, 15])).tolist() == [0, 1, 2, 2]


def test_threshold_keeps_the_requested_signal_fraction():
    scores = np.arange(1000, dtype=float)
    for eff in (0.7, 0.77, 0.85):
        cut = threshold_at_efficiency(scores, eff)
        assert np.mean(scores > cut) == pytest.approx(eff, abs=1e-3)


def test_rejection_and_metrics_on_separated_classes():
    assert rejection(np.array([0.0, 1.0, 2.0, 3.0]), 2.5) == 4.0
    assert rejection(np.array([0.0, 1.0]), 5.0) is None
    rng = np.random.default_rng(1)
    classes = np.repeat([0, 1, 2], 2000)
    logits = np.zeros((6000, 3))
    logits[:, 0] = np.where(classes == 0, 2.0, np.where(classes == 1, 0.5, -1.0)) + rng.normal(size=6000)
    metrics = tagging_metrics(logits, classes, f_c=0.018)
    assert 0.95 < metrics["auc_b_vs_light"] < 1.0
    assert metrics["rej_light_at_77"] < metrics["rej_light_at_70"]
    assert metrics["rej_c_at_70"] < metrics["rej_light_at_70"]


def test_rejection_uncertainty_is_binomial():
    scores = np.arange(100, dtype=float)  # 4 of 100 above 95.5
    assert rejection(scores, 95.5) == 25.0
    assert rejection_stat_uncertainty(scores, 95.5) == pytest.approx(25.0 * np.sqrt(0.96 / 4))
    assert rejection_stat_uncertainty(scores, 1000.0) is None


def test_light_rejection_uncertainties_use_the_metrics_cuts():
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 3, size=4000)
    logits = rng.normal(size=(4000, 3))
    logits[:, 0] += 2.0 * (classes == 0)
    metrics = tagging_metrics(logits, classes, 0.018)
    stat = light_rejection_uncertainties(logits, classes, 0.018)
    for tag in (70, 77):
        rej = metrics[f"rej_light_at_{tag}"]
        n_light = int(np.count_nonzero(classes == 2))
        passed = n_light / rej
        assert stat[f"rej_light_at_{tag}_stat"] == pytest.approx(
            rej * np.sqrt((1 - passed / n_light) / passed)
        )


def test_the_logits_path_is_the_discriminant_path():
    """tagging_metrics, the uncertainties and the ROC of logits are those of their D_b, bit for bit."""
    from trigger_ml.physics import (
        discriminant_light_rejection_uncertainties,
        discriminant_metrics,
        roc_light_rejection,
        roc_of_discriminant,
    )

    rng = np.random.default_rng(5)
    classes = rng.integers(0, 3, 3000)
    logits = np.round(rng.normal(size=(3000, 3)) * 32) / 32
    logits[classes == 0, 0] += 1.0
    for f_c in (0.0, 0.018, 0.2):
        disc = discriminant_from_logits(logits, f_c)
        assert tagging_metrics(logits, classes, f_c) == discriminant_metrics(disc, classes)
        assert light_rejection_uncertainties(
            logits, classes, f_c
        ) == discriminant_light_rejection_uncertainties(disc, classes)
        for a, b in zip(
            roc_light_rejection(logits, classes, f_c), roc_of_discriminant(disc, classes), strict=True
        ):
            assert np.array_equal(a, b)
