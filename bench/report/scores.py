"""Summary scores: the SUPERB score and the HEAR average.

SUPERB score (the SUPERB leaderboard's definition): each metric is rescaled so that FBANK
scores 0 and the leaderboard's SOTA point 1000,

    p = 1000 * (s - s_FBANK) / (s_SOTA - s_FBANK),

averaged within a task (SF has F1 and CER, SE has PESQ and STOI), then over tasks. For a
lower-is-better metric (PER, WER, EER, DER, CER) SOTA lies below FBANK, so numerator and
denominator change sign together and an improvement still raises p: the formula needs no
special case.

The score is over the SUPERB paper's ten tasks (``SUPERB_SCORE_TASKS``), the leaderboard's
"Paper" view: its reference points also cover ST, SE and SS (SUPERB-SG, the "Public Set"
view), which stay out of this score. With all ten tasks it is the leaderboard's number
(which prints it rounded to an integer); with fewer it is *partial*: it lists the tasks it
covers and the ones missing, and reports say so.

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
#: the SUPERB paper's ten tasks, in its order (the leaderboard's "Paper" columns)
SUPERB_SCORE_TASKS = (
    "superb.pr",
    "superb.asr",
    "superb.ks",
    "superb.qbe",
    "superb.sf",
    "superb.ic",
    "superb.sid",
    "superb.asv",
    "superb.sd",
    "superb.er",
)


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

    @property
    def missing(self) -> tuple[str, ...]:
        """The paper's tasks the score does not cover, in the paper's order."""
        return tuple(task for task in SUPERB_SCORE_TASKS if task not in self.per_task)

    @property
    def is_partial(self) -> bool:
        """True unless all ten tasks are in: then it is not the published SUPERB score."""
        return bool(self.missing)


def metric_score(value: float, point: ReferencePoint) -> float:
    """One metric on the SUPERB scale: FBANK -> 0, SOTA -> 1000 (higher is always better)."""
    return SUPERB_SCALE * (value - point.fbank) / (point.sota - point.fbank)


def superb_score(
    values: Mapping[tuple[str, str], float | None],
    points: Sequence[ReferencePoint],
    tasks: Collection[str] | None = None,
) -> SuperbScore:
    """The SUPERB score of one upstream, over the paper's ten tasks that have values.

    values: (task, metric) -> score, in bench's units; tasks without any value are absent.
    tasks: restrict to these tasks (e.g. the ones a comparison has in common).
    """
    per_task: dict[str, float] = {}
    incomplete: dict[str, tuple[str, ...]] = {}
    for task, task_points in _points_by_task(points).items():
        if task not in SUPERB_SCORE_TASKS or (tasks is not None and task not in tasks):
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
    """The tasks the SUPERB score averages that have reference points, in the paper's order."""
    known = _points_by_task(points)
    return tuple(task for task in SUPERB_SCORE_TASKS if task in known)


def describe_coverage(score: SuperbScore) -> str:
    """e.g. ``superb.ks, superb.ic (partial: 2 of 10; missing superb.pr, ...)``."""
    covered = ", ".join(score.tasks)
    if not score.is_partial:
        return f"{covered} (all {len(SUPERB_SCORE_TASKS)})"
    count = f"{len(score.tasks)} of {len(SUPERB_SCORE_TASKS)}"
    return f"{covered} (partial: {count}; missing {', '.join(score.missing)})"


def _points_by_task(points: Sequence[ReferencePoint]) -> dict[str, list[ReferencePoint]]:
    grouped: dict[str, list[ReferencePoint]] = {}
    for point in points:
        grouped.setdefault(point.task, []).append(point)
    return grouped


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
