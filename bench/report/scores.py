"""Summary scores: the SUPERB score and the HEAR average.

SUPERB score (the SUPERB leaderboard's definition): each metric is rescaled so that FBANK
scores 0 and the leaderboard's SOTA point 1000,

    p = 1000 * (s - s_FBANK) / (s_SOTA - s_FBANK),

averaged within a task (SF has F1 and CER, SE has PESQ and STOI), then over tasks. For a
lower-is-better metric (PER, WER, EER, DER, CER) SOTA lies below FBANK, so numerator and
denominator change sign together and an improvement still raises p: the formula needs no
special case. It is computed only over the SUPERB tasks present, which it lists.

HEAR average: the mean primary metric over the HEAR tasks run, in percent
(``bench.hear.metrics.hear_score``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bench.report.references import ReferencePoint

SUPERB_SCALE = 1000.0


@dataclass(frozen=True)
class SuperbScore:
    """value: mean of ``per_task`` (None when no task could be scored).

    per_task: task -> mean of its metrics' scores, for the tasks averaged.
    incomplete: tasks left out because some of their metrics are missing -> those metrics.
    """

    value: float | None
    per_task: Mapping[str, float]
    incomplete: Mapping[str, tuple[str, ...]]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(sorted(self.per_task))


def metric_score(value: float, point: ReferencePoint) -> float:
    """One metric on the SUPERB scale: FBANK -> 0, SOTA -> 1000 (higher is always better)."""
    return SUPERB_SCALE * (value - point.fbank) / (point.sota - point.fbank)


def superb_score(
    values: Mapping[tuple[str, str], float | None],
    points: Sequence[ReferencePoint],
    tasks: Collection[str] | None = None,
) -> SuperbScore:
    """The SUPERB score of one upstream.

    values: (task, metric) -> score, in bench's units; tasks without any value are absent.
    tasks: restrict to these tasks (e.g. the ones a comparison has in common).
    """
    per_task: dict[str, float] = {}
    incomplete: dict[str, tuple[str, ...]] = {}
    for task, task_points in _points_by_task(points).items():
        if tasks is not None and task not in tasks:
            continue
        scores = {p.metric: _finite(values.get((p.task, p.metric))) for p in task_points}
        present = {metric: value for metric, value in scores.items() if value is not None}
        if not present:
            continue
        by_metric = {p.metric: p for p in task_points}
        if len(present) < len(scores):
            incomplete[task] = tuple(sorted(set(scores) - set(present)))
            continue
        per_task[task] = statistics.fmean(
            metric_score(value, by_metric[metric]) for metric, value in present.items()
        )
    value = statistics.fmean(per_task.values()) if per_task else None
    return SuperbScore(value=value, per_task=per_task, incomplete=incomplete)


def superb_tasks(points: Sequence[ReferencePoint]) -> tuple[str, ...]:
    """The tasks the SUPERB score knows, in the reference file's order."""
    return tuple(_points_by_task(points))


def _points_by_task(points: Sequence[ReferencePoint]) -> dict[str, list[ReferencePoint]]:
    grouped: dict[str, list[ReferencePoint]] = {}
    for point in points:
        grouped.setdefault(point.task, []).append(point)
    return grouped


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
