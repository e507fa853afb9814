"""Units of the metrics bench records, for labels and number formatting.

Records keep each metric in the unit its community prints: SUPERB-style metrics in percent
(accuracy 96.2, EER 5.1), HEAR metrics in hear-eval-kit's units (top-1 accuracy 0.86, mAP
0.4, d-prime unitless). Reports show each task in its own unit and never rescale silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.hear.metrics import HEAR_METRICS


@dataclass(frozen=True)
class Unit:
    label: str
    decimals: int

    def format(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "n/a"
        return f"{value:.{self.decimals}f}"


PERCENT = Unit("%", 2)
FRACTION = Unit("0-1", 3)
UNITLESS = Unit("", 3)
DECIBEL = Unit("dB", 2)
UNKNOWN = Unit("", 3)

_SUPERB_UNITS = {
    "accuracy": PERCENT,
    "balanced_accuracy": PERCENT,
    "per": PERCENT,
    "wer": PERCENT,
    "cer": PERCENT,
    "eer": PERCENT,
    "der": PERCENT,
    "der_dev_tuned": PERCENT,
    "slot_f1": PERCENT,
    "slot_cer": PERCENT,
    "frame_f1": PERCENT,
    "frame_accuracy": PERCENT,
    "stoi": FRACTION,  # pystoi's 0-1, as s3prl reports it (the leaderboard prints x 100)
    "bleu": Unit("BLEU", 2),
    "min_dcf": Unit("", 4),
    "mtwv": Unit("", 4),
    "pesq": Unit("", 2),
    "si_sdri": DECIBEL,
    "mcd": DECIBEL,
}
_HEAR_UNITS = {name: UNITLESS if name == "d_prime" else FRACTION for name in HEAR_METRICS}

METRIC_UNITS: dict[str, Unit] = {**_SUPERB_UNITS, **_HEAR_UNITS}


def unit_of(metric: str) -> Unit:
    return METRIC_UNITS.get(metric, UNKNOWN)


def metric_label(metric: str, higher_is_better: bool | None = None) -> str:
    """e.g. ``accuracy (%) ↑``, ``top1_acc (0-1) ↑``, ``d_prime ↑``."""
    unit = unit_of(metric).label
    arrow = {True: " ↑", False: " ↓", None: ""}[higher_is_better]
    return f"{metric}{f' ({unit})' if unit else ''}{arrow}"
