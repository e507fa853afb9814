"""EER and minDCF against scikit-learn's ROC and hand-computed cases."""

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from bench.metrics.verification import equal_error_rate, min_dcf


def reference_eer(labels, scores) -> float:
    """The usual recipe: solve 1 - tpr(fpr) = fpr on sklearn's interpolated ROC."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


def test_hand_computed_cases():
    # Perfect separation: no error.
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # Scores inverted: everything wrong.
    assert equal_error_rate([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 1.0
    # 1 of 4 non-targets above 1 of 4 targets: at threshold 0.5 one false alarm (1/4) and
    # one miss (1/4), so EER = 25 %.
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    assert equal_error_rate(labels, scores) == pytest.approx(0.25)
    # minDCF at p_target 0.5: the best threshold costs 0.5 * (1/4) + 0.5 * 0 (accept the
    # three top targets only) = 0.125, normalised by min(0.5, 0.5): 0.25.
    assert min_dcf(labels, scores, p_target=0.5) == pytest.approx(0.25)
    # At p_target 0.01 a miss is cheap: rejecting all costs 0.01, normalised 1.0; accepting
    # the three top targets costs 0.01 * 1/4 -> 0.25.
    assert min_dcf(labels, scores) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(5))
def test_eer_matches_sklearn_roc(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    scores = rng.normal(size=400) + 1.2 * labels
    assert equal_error_rate(labels, scores) == pytest.approx(
        reference_eer(labels, scores), abs=1e-9
    )


def test_min_dcf_matches_a_brute_force_sweep():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = rng.normal(size=300) + labels
    best = min(
        0.01 * np.mean(scores[labels == 1] < t) + 0.99 * np.mean(scores[labels == 0] >= t)
        for t in [*np.unique(scores), np.inf]
    )
    assert min_dcf(labels, scores) == pytest.approx(best / 0.01)


def test_one_class_only_is_an_error():
    with pytest.raises(ValueError, match="both target"):
        equal_error_rate([1, 1], [0.2, 0.3])
