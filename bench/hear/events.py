"""Frame-level predictions <-> sound events, as hear-eval-kit 2021.1.3 does it.

Timestamp tasks are trained on frames: each embedding frame at time ``t`` (ms) is labelled
with every event active at ``t`` (``start <= t <= end``, the reference's interval tree adds
0.0001 ms to the end). At scoring, each file's frame probabilities are median-filtered over
time, thresholded at 0.5, and runs of consecutive active frames of one label become events
from the first to the last frame's timestamp; events shorter than a minimum duration are
dropped. The filter width and minimum duration form a small grid chosen on validation
(HEAR default: 250 ms filter, 125 or 250 ms minimum).

Timestamps are the upstream's frame centres (``UpstreamInfo.frame_times_ms``): a HEAR
module's own timestamps, the receptive-field centres of bench's encoders.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

from bench.hear.metrics import Event

# The reference's interval tree makes event ends inclusive by this much (ms).
_END_TOLERANCE_MS = 0.0001
THRESHOLD = 0.5


@dataclass(frozen=True, order=True)
class Postprocessing:
    """Median filter width and minimum event duration, both in milliseconds.

    Ordered (filter, then duration) so ties in validation score resolve as the reference's
    ``sort(reverse=True)`` over ``(score, params)`` does: the larger setting wins.
    """

    median_filter_ms: float
    min_duration_ms: float

    def as_dict(self) -> dict[str, float]:
        return {"median_filter_ms": self.median_filter_ms, "min_duration": self.min_duration_ms}


DEFAULT_POSTPROCESSING_GRID = (Postprocessing(250, 125), Postprocessing(250, 250))


def postprocessing_grid(spec: Mapping[str, Sequence[float]] | None) -> tuple[Postprocessing, ...]:
    """The grid from task_metadata.json's ``evaluation_params.event_postprocessing_grid``
    (``{"median_filter_ms": [...], "min_duration": [...]}``), else HEAR's default."""
    if not spec:
        return DEFAULT_POSTPROCESSING_GRID
    filters, durations = spec.get("median_filter_ms", [250]), spec.get("min_duration", [125])
    return tuple(
        Postprocessing(float(f), float(d)) for f, d in itertools.product(filters, durations)
    )


def frame_targets(
    events: Sequence[Event], timestamps_ms: np.ndarray, label_index: Mapping[str, int]
) -> np.ndarray:
    """[T, C] multi-hot: the labels of the events active at each timestamp."""
    targets = np.zeros((len(timestamps_ms), len(label_index)), dtype=np.float32)
    for onset_s, offset_s, label in events:
        start_ms, end_ms = onset_s * 1000.0, offset_s * 1000.0
        active = (timestamps_ms >= start_ms) & (timestamps_ms < end_ms + _END_TOLERANCE_MS)
        targets[active, label_index[label]] = 1.0
    return targets


def predictions_to_events(
    probabilities: np.ndarray,
    timestamps_ms: np.ndarray,
    labels: Sequence[str],
    postprocessing: Postprocessing,
    threshold: float = THRESHOLD,
) -> list[Event]:
    """One file's [T, C] frame probabilities -> events (seconds), sorted by onset."""
    order = np.argsort(timestamps_ms, kind="stable")
    timestamps_ms, probabilities = timestamps_ms[order], probabilities[order]
    smoothed = _median_filter(probabilities, timestamps_ms, postprocessing.median_filter_ms)
    active = smoothed > threshold
    events: list[tuple[float, float, str]] = []
    for class_index, label in enumerate(labels):
        for first, last in _runs(np.flatnonzero(active[:, class_index])):
            start_ms, end_ms = timestamps_ms[first], timestamps_ms[last]
            if end_ms - start_ms >= postprocessing.min_duration_ms:
                events.append((start_ms, end_ms, label))
    events.sort(key=lambda event: event[0])
    return [(float(start) / 1000.0, float(end) / 1000.0, label) for start, end, label in events]


def _median_filter(
    probabilities: np.ndarray, timestamps_ms: np.ndarray, width_ms: float
) -> np.ndarray:
    """Median over ``round(width / frame hop)`` frames along time (scipy's reflect mode)."""
    if not width_ms or len(timestamps_ms) < 2:
        return probabilities
    width = round(width_ms / float(np.mean(np.diff(timestamps_ms))))
    if not width:
        return probabilities
    return median_filter(probabilities, size=(width, 1))


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers, as (first, last) pairs."""
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.concatenate(([indices[0]], indices[breaks + 1]))
    ends = np.concatenate((indices[breaks], [indices[-1]]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
