"""The leaderboard: measured results (upstream rows x task columns) beside published rows,
each row's summary scores, and all of it as one tidy pandas table (one row per upstream x
task x metric: measured, missing, published, or a derived score). ``bench.report.tables``
formats it for display.

Rules:
- Each task is shown in its own unit, with its main metric's mean +- sample std over seeds.
- A missing result is a missing cell ("—"), never filled in; "n/a" marks a non-finite value.
- A row is one upstream under one protocol (bench.profiles): its results under another
  protocol are another row (``upstream [reference]``), so no score mixes protocols. Every
  row shows its protocol; published rows made under another (or an unknown) protocol than
  the measured rows are marked not comparable in the notes.
- A row's SUPERB score and HEAR average are computed from the cells that row shows: in the
  leaderboard, over the SUPERB / HEAR tasks among its columns (published rows included, so
  they compare with measured rows); in the published-references table, over everything the
  source reports. A score over fewer tasks than the table has is marked with ``*``.
- The HEAR average covers the HEAR 2021 tasks only (``hear.<task>``): a custom task
  directory (``hear/<name>``) is in no average. Published HEAR averages cover all 19 tasks
  (marked ``†``) and stand beside measured averages only when those cover all 19 too; a
  partial average says how many tasks it covers and is never shown beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from bench.hear.metrics import hear_score
from bench.report.references import (
    HEAR_AVERAGE,
    HEAR_AVERAGE_COLUMN,
    HEAR_AVERAGE_TASKS,
    SUPERB_COLUMNS,
    References,
)
from bench.report.results import TaskResult, is_pattern
from bench.report.scores import SuperbScore, superb_score, superb_tasks
from bench.report.units import metric_label, unit_of
from bench.task import suite_of

MEASURED, PUBLISHED, MISSING = "measured", "published", "missing"
SUPERB_SCORE = "superb.score"
HEAR_SUITE = "hear"
#: the HEAR 2021 tasks are ``hear.<task>``; ``hear/<dir>`` is a custom task directory
HEAR_BENCHMARK_PREFIX = "hear."

TIDY_COLUMNS = [
    "kind",
    "upstream",
    "task",
    "suite",
    "metric",
    "is_main",
    "unit",
    "higher_is_better",
    "mean",
    "std",
    "n",
    "source",
]

# The first column of a task in SUPERB_COLUMNS is its main metric (SF: F1, SE: PESQ).
SUPERB_MAIN_METRIC: dict[str, str] = {}
for _column in SUPERB_COLUMNS.values():
    SUPERB_MAIN_METRIC.setdefault(_column.task, _column.metric)


@dataclass(frozen=True)
class TaskColumn:
    """One task of the leaderboard; metric is None when no upstream has a result for it."""

    task: str
    metric: str | None
    higher_is_better: bool | None

    @property
    def suite(self) -> str:
        return suite_of(self.task)

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.higher_is_better) if self.metric else "no results"


@dataclass(frozen=True)
class Summary:
    """A row's summary scores and what they were computed over."""

    superb: SuperbScore | None
    hear: float | None
    hear_tasks: tuple[str, ...]
    hear_is_published: bool = False


@dataclass
class Leaderboard:
    """The results, their columns and rows, and the published references; the views
    (published rows beside, summary scores, the tidy table) are computed on first use."""

    columns: list[TaskColumn]
    upstreams: list[str]
    results: list[TaskResult]
    references: References
    notes: list[str] = field(default_factory=list)

    @property
    def superb_tasks(self) -> tuple[str, ...]:
        known = superb_tasks(self.references.points)
        return tuple(c.task for c in self.columns if c.task in known and c.metric)

    @property
    def hear_tasks(self) -> tuple[str, ...]:
        """The HEAR 2021 tasks among the columns (custom task directories are not)."""
        return tuple(c.task for c in self.columns if is_hear_benchmark_task(c.task) and c.metric)

    @property
    def hear_is_complete(self) -> bool:
        """The table has every HEAR 2021 task, so its averages compare with published ones."""
        return len(self.hear_tasks) >= HEAR_AVERAGE_TASKS

    def protocols(self, row: str) -> list[str]:
        """The protocol labels of a measured row's results."""
        return sorted({r.protocol_label for r in self.results if r.row == row})

    def published_protocol(self, label: str) -> str:
        frame = self.references.published
        return ", ".join(dict.fromkeys(frame.loc[frame["upstream"] == label, "protocol"]))

    @property
    def sources(self) -> list[str]:
        """Sources of the published numbers, in order of first appearance (footnotes 1..n)."""
        return list(dict.fromkeys(self.references.published["source"]))

    def source_number(self, source: str) -> int:
        return self.sources.index(source) + 1

    def result(self, upstream: str, task: str) -> TaskResult | None:
        return self._results_by_key.get((upstream, task))

    @cached_property
    def _results_by_key(self) -> dict[tuple[str, str], TaskResult]:
        return {(result.row, result.task): result for result in self.results}

    @cached_property
    def published_rows(self) -> list[str]:
        """Published rows with at least one number in the leaderboard's columns."""
        return _published_rows_beside(self)

    @cached_property
    def summaries(self) -> dict[tuple[str, str], Summary]:
        """(MEASURED or PUBLISHED, row label) -> the row's scores over the table's tasks."""
        return {
            **{(MEASURED, u): _measured_summary(self, u) for u in self.upstreams},
            **{
                (PUBLISHED, label): _published_summary(self, label, self.superb_tasks)
                for label in self.published_rows
            },
        }

    @cached_property
    def reference_summaries(self) -> dict[str, Summary]:
        """Published row label -> its scores over everything its source reports."""
        labels = dict.fromkeys(self.references.published["upstream"])
        return {label: _published_summary(self, label, None) for label in labels}

    @cached_property
    def tidy(self) -> pd.DataFrame:
        return _tidy(self)


def is_hear_benchmark_task(task: str) -> bool:
    return task.startswith(HEAR_BENCHMARK_PREFIX)


def build_leaderboard(
    results: Sequence[TaskResult],
    references: References,
    upstreams: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
) -> Leaderboard:
    """The leaderboard of ``results``; requested upstreams and (non-pattern) tasks without any
    result still get a row or column, of missing cells."""
    columns, notes = _columns(results, [t for t in tasks or [] if not is_pattern(t)])
    board = Leaderboard(
        columns=columns,
        upstreams=_rows(results, upstreams or []),
        results=list(results),
        references=references,
        notes=notes,
    )
    board.notes += _coverage_notes(board)
    return board


def _rows(results: Sequence[TaskResult], requested: Sequence[str]) -> list[str]:
    """One row per upstream and protocol (``TaskResult.row``); a requested upstream with no
    result gets a row of missing cells."""
    rows = list(dict.fromkeys(r.row for r in results))
    empty = [u for u in requested if u not in {r.upstream for r in results}]
    return list(dict.fromkeys([*empty, *rows]))


def _columns(
    results: Sequence[TaskResult], requested: Sequence[str]
) -> tuple[list[TaskColumn], list[str]]:
    """One column per task, by suite then name, with the task's main metric."""
    notes = []
    columns: dict[str, TaskColumn] = {}
    for result in results:
        column = columns.setdefault(
            result.task, TaskColumn(result.task, result.main_metric, result.higher_is_better)
        )
        if result.main_metric != column.metric:
            notes.append(
                f"{result.upstream} reports {result.task} by {result.main_metric}, "
                f"the others by {column.metric}: its cell is missing"
            )
    for task in requested:
        columns.setdefault(task, TaskColumn(task, None, None))
    return sorted(columns.values(), key=lambda c: (c.suite, c.task)), notes


def _published(board: Leaderboard) -> pd.DataFrame:
    return board.references.published


def published_value(board: Leaderboard, label: str, task: str, metric: str | None) -> float | None:
    frame = _published(board)
    match = frame[
        (frame["upstream"] == label) & (frame["task"] == task) & (frame["metric"] == metric)
    ]
    return float(match["value"].iloc[0]) if len(match) else None


def published_source(board: Leaderboard, label: str) -> list[str]:
    frame = _published(board)
    return list(dict.fromkeys(frame.loc[frame["upstream"] == label, "source"]))


def _published_rows_beside(board: Leaderboard) -> list[str]:
    frame = _published(board)
    wanted = {(c.task, c.metric) for c in board.columns if c.metric}
    has_cell = frame[
        [(t, m) in wanted for t, m in zip(frame["task"], frame["metric"], strict=True)]
    ]
    labels = set(has_cell["upstream"])
    if board.hear_is_complete:
        labels |= set(frame.loc[frame["task"] == HEAR_AVERAGE, "upstream"])
    return [label for label in dict.fromkeys(frame["upstream"]) if label in labels]


def _measured_summary(board: Leaderboard, upstream: str) -> Summary:
    values: dict[tuple[str, str], float | None] = {}
    hear_scores: dict[str, float | None] = {}
    for column in board.columns:
        result = board.result(upstream, column.task)
        if result is None:
            continue
        for metric, stat in result.metrics.items():
            values[(column.task, metric)] = stat.mean
        if is_hear_benchmark_task(column.task) and result.main is not None:
            hear_scores[column.task] = result.main.mean
    superb = superb_score(values, board.references.points) if board.superb_tasks else None
    hear = hear_score(hear_scores) if board.hear_tasks else None
    return Summary(
        superb=superb,
        hear=hear.value if hear else None,
        hear_tasks=hear.tasks if hear else (),
    )


def _published_summary(board: Leaderboard, label: str, tasks: Sequence[str] | None) -> Summary:
    frame = _published(board)
    rows = frame[frame["upstream"] == label]
    values = {
        (t, m): float(v)
        for t, m, v in zip(rows["task"], rows["metric"], rows["value"], strict=True)
    }
    superb = superb_score(values, board.references.points, tasks)
    # A published 19-task average stands beside measured ones only over the same tasks.
    beside = tasks is None or board.hear_is_complete
    hear = values.get((HEAR_AVERAGE, HEAR_AVERAGE_COLUMN)) if beside else None
    return Summary(
        superb=superb if superb.per_task else None,
        hear=hear,
        hear_tasks=(),
        hear_is_published=hear is not None,
    )


# -- the tidy table ---------------------------------------------------------------------------


def _tidy(board: Leaderboard) -> pd.DataFrame:
    rows = [*_measured_rows(board), *_published_tidy_rows(board), *_summary_rows(board)]
    return pd.DataFrame(rows, columns=TIDY_COLUMNS).astype(
        {"n": "Int64", "higher_is_better": "boolean"}
    )


def _measured_rows(board: Leaderboard) -> list[dict]:
    rows = []
    for upstream in board.upstreams:
        for column in board.columns:
            result = board.result(upstream, column.task)
            if result is None:
                rows.append(
                    _row(
                        MEASURED,
                        upstream,
                        column.task,
                        column.metric,
                        higher_is_better=column.higher_is_better,
                        source=MISSING,
                    )
                )
                continue
            for metric, stat in result.metrics.items():
                is_main = metric == result.main_metric
                rows.append(
                    _row(
                        MEASURED,
                        upstream,
                        column.task,
                        metric,
                        is_main=is_main,
                        # a record states the direction of its main metric only
                        higher_is_better=result.higher_is_better if is_main else None,
                        mean=stat.mean,
                        std=stat.std,
                        n=stat.n,
                        source=result.origin,
                    )
                )
    return rows


def _published_tidy_rows(board: Leaderboard) -> list[dict]:
    directions = {(p.task, p.metric): p.higher_is_better for p in board.references.points}
    rows = []
    for entry in _published(board).itertuples(index=False):
        is_average = entry.task == HEAR_AVERAGE
        rows.append(
            _row(
                PUBLISHED,
                entry.upstream,
                entry.task,
                entry.metric,
                is_main=is_average or SUPERB_MAIN_METRIC.get(entry.task) == entry.metric,
                higher_is_better=True if is_average else directions.get((entry.task, entry.metric)),
                mean=entry.value,
                n=HEAR_AVERAGE_TASKS if is_average else None,
                source=entry.source,
            )
        )
    return rows


def _summary_rows(board: Leaderboard) -> list[dict]:
    """Derived rows: measured upstreams' SUPERB score and HEAR average, and published rows'
    SUPERB score over the tasks their source reports."""
    rows = []
    for upstream in board.upstreams:
        summary = board.summaries[(MEASURED, upstream)]
        if summary.superb is not None and summary.superb.value is not None:
            rows.append(_superb_row(MEASURED, upstream, summary.superb))
        if summary.hear is not None:
            rows.append(
                _row(
                    MEASURED,
                    upstream,
                    HEAR_AVERAGE,
                    f"hear_average_{len(summary.hear_tasks)}_tasks",
                    mean=summary.hear,
                    n=len(summary.hear_tasks),
                    source="computed over " + ", ".join(summary.hear_tasks),
                )
            )
    for label, summary in board.reference_summaries.items():
        if summary.superb is not None:
            rows.append(_superb_row(PUBLISHED, label, summary.superb))
    return rows


def _superb_row(kind: str, upstream: str, score: SuperbScore) -> dict:
    return _row(
        kind,
        upstream,
        SUPERB_SCORE,
        "superb_score",
        mean=score.value,
        n=len(score.tasks),
        source="computed over " + ", ".join(score.tasks),
    )


def _row(
    kind: str,
    upstream: str,
    task: str,
    metric: str | None,
    *,
    is_main: bool = True,
    higher_is_better: bool | None = True,
    mean: float | None = None,
    std: float | None = None,
    n: int | None = 0,
    source: str = "",
) -> dict:
    """One tidy row; summary scores (SUPERB score, HEAR average) count as main, higher-better."""
    if task == HEAR_AVERAGE:
        unit = "%"
    elif task == SUPERB_SCORE or not metric:
        unit = ""
    else:
        unit = unit_of(metric).label
    return {
        "kind": kind,
        "upstream": upstream,
        "task": task,
        "suite": suite_of(task),
        "metric": metric or "",
        "is_main": is_main,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "mean": mean,
        "std": std,
        "n": n,
        "source": source,
    }


def _coverage_notes(board: Leaderboard) -> list[str]:
    notes = []
    known = superb_tasks(board.references.points)
    if board.superb_tasks:
        missing = [task for task in known if task not in board.superb_tasks]
        notes.append(
            f"SUPERB score over the SUPERB tasks present: {', '.join(board.superb_tasks)} "
            f"({len(board.superb_tasks)} of {len(known)}"
            + (f"; not run: {', '.join(missing)})" if missing else ")")
        )
    if board.hear_tasks and board.hear_is_complete:
        notes.append(
            f"HEAR average over all {HEAR_AVERAGE_TASKS} HEAR tasks, as the published "
            "averages (marked †)"
        )
    elif board.hear_tasks:
        notes.append(
            f"HEAR average over {len(board.hear_tasks)} of the {HEAR_AVERAGE_TASKS} HEAR tasks "
            f"({', '.join(board.hear_tasks)}): a partial average, so the published "
            f"{HEAR_AVERAGE_TASKS}-task averages are not shown beside it (they are in the "
            "published references)"
        )
    custom = [
        c.task
        for c in board.columns
        if c.suite == HEAR_SUITE and not is_hear_benchmark_task(c.task)
    ]
    if custom:
        notes.append(f"custom HEAR task directories, in no HEAR average: {', '.join(custom)}")
    measured = {p for row in board.upstreams for p in board.protocols(row)}
    other = [
        f"{label} ({board.published_protocol(label)})"
        for label in board.published_rows
        if board.published_protocol(label) not in measured
    ]
    if measured and other:
        notes.append(
            f"not comparable with the measured rows ({', '.join(sorted(measured))}): published "
            f"rows made under another or an unknown protocol: {', '.join(other)}; a number is "
            "comparable only with a row of the same protocol (docs/protocols.md)"
        )
    for (kind, upstream), summary in board.summaries.items():
        if summary.superb and summary.superb.incomplete:
            parts = [f"{t} (no {', '.join(m)})" for t, m in summary.superb.incomplete.items()]
            notes.append(f"{upstream} ({kind}): left out of its SUPERB score: {'; '.join(parts)}")
    return notes
