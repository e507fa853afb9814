"""Detection metrics of speaker verification, from trial scores.

Both work on the ROC of the scores (scikit-learn's ``roc_curve``):

- ``equal_error_rate``: where the false-alarm rate equals the miss rate, linearly
  interpolated between the two ROC points that bracket it (the usual definition; s3prl
  finds the same crossing with ``brentq`` on the interpolated curve). A fraction; SUPERB
  reports it in percent.
- ``min_dcf``: the minimum over thresholds of the NIST detection cost
  ``C_miss * P_miss * p_target + C_fa * P_fa * (1 - p_target)``, normalised by the cost of
  the best trivial system ``min(C_miss * p_target, C_fa * (1 - p_target))`` (NIST SRE 2016
  plan, section 3; s3prl's ``compute_minDCF`` with p_target 0.01, C_miss = C_fa = 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_curve


def _roc(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    if not (labels == 1).any() or not (labels == 0).any():
        raise ValueError("verification metrics need both target (1) and non-target (0) trials")
    false_alarm, hit, _ = roc_curve(labels, np.asarray(scores, dtype=np.float64), pos_label=1)
    return false_alarm, 1.0 - hit


def equal_error_rate(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The rate at which false alarms and misses are equal (a fraction in [0, 1])."""
    false_alarm, miss = _roc(labels, scores)
    # false_alarm rises and miss falls along the curve: find where they cross.
    gap = miss - false_alarm
    after = int(np.argmax(gap <= 0))
    if after == 0:
        return float(false_alarm[0])
    before = after - 1
    weight = gap[before] / (gap[before] - gap[after])
    return float(false_alarm[before] + weight * (false_alarm[after] - false_alarm[before]))


def min_dcf(
    labels: Sequence[int],
    scores: Sequence[float],
    p_target: float = 0.01,
    cost_miss: float = 1.0,
    cost_false_alarm: float = 1.0,
) -> float:
    """The normalised minimum detection cost."""
    false_alarm, miss = _roc(labels, scores)
    cost = cost_miss * miss * p_target + cost_false_alarm * false_alarm * (1.0 - p_target)
    return float(cost.min() / min(cost_miss * p_target, cost_false_alarm * (1.0 - p_target)))
