"""The leaderboard: measured results beside published ones, as pandas tables.

Everything starts from one tidy table (one row per upstream x task x metric: measured,
published, missing, or derived summary scores); the displayed tables are views of it.

Rules the tables follow:
- Each task is shown in its own unit, with its main metric's mean +- sample std over seeds.
- A missing result is a missing cell ("—"), never filled in; "n/a" marks a non-finite value.
- A row's SUPERB score and HEAR average are computed from the cells that row shows: in the
  leaderboard, over the SUPERB / HEAR tasks among its columns (published rows included, so
  they compare with measured rows); in the published-references table, over everything the
  source reports. A score over fewer tasks than the table has is marked with ``*``.
- Published HEAR averages cover all 19 HEAR tasks (marked ``†``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

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

MEASURED, PUBLISHED, MISSING = "measured", "published", "missing"
SUPERB_SCORE = "superb.score"
HEAR_SUITE = "hear"
MISSING_CELL = "—"
PARTIAL_MARK = "*"
NINETEEN_TASKS_MARK = "†"

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
        return self.task.split(".", 1)[0]

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
    columns: list[TaskColumn]
    upstreams: list[str]
    results: list[TaskResult]
    references: References
    published_rows: list[str]
    summaries: dict[tuple[str, str], Summary]
    reference_summaries: dict[str, Summary]
    tidy: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def superb_tasks(self) -> tuple[str, ...]:
        known = superb_tasks(self.references.points)
        return tuple(c.task for c in self.columns if c.task in known and c.metric)

    @property
    def hear_tasks(self) -> tuple[str, ...]:
        return tuple(c.task for c in self.columns if c.suite == HEAR_SUITE and c.metric)

    @property
    def sources(self) -> list[str]:
        """Sources of the published numbers, in order of first appearance (footnotes 1..n)."""
        return list(dict.fromkeys(self.references.published["source"]))

    def source_number(self, source: str) -> int:
        return self.sources.index(source) + 1

    def result(self, upstream: str, task: str) -> TaskResult | None:
        return next((r for r in self.results if r.upstream == upstream and r.task == task), None)


def build_leaderboard(
    results: Sequence[TaskResult],
    references: References,
    upstreams: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
) -> Leaderboard:
    """The leaderboard of ``results``; requested upstreams and (non-pattern) tasks without any
    result still get a row or column, of missing cells."""
    upstream_order = list(dict.fromkeys([*(upstreams or []), *(r.upstream for r in results)]))
    columns, notes = _columns(results, [t for t in tasks or [] if not is_pattern(t)])
    board = Leaderboard(
        columns=columns,
        upstreams=upstream_order,
        results=list(results),
        references=references,
        published_rows=[],
        summaries={},
        reference_summaries={},
        tidy=pd.DataFrame(columns=TIDY_COLUMNS),
        notes=notes,
    )
    board.published_rows = _published_rows_beside(board)
    board.summaries = {
        **{(MEASURED, u): _measured_summary(board, u) for u in board.upstreams},
        **{
            (PUBLISHED, u): _published_summary(board, u, board.superb_tasks)
            for u in board.published_rows
        },
    }
    board.reference_summaries = {
        label: _published_summary(board, label, None)
        for label in dict.fromkeys(references.published["upstream"])
    }
    board.tidy = _tidy(board)
    board.notes += _coverage_notes(board)
    return board


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
    """Published rows with at least one number in the leaderboard's columns."""
    frame = _published(board)
    wanted = {(c.task, c.metric) for c in board.columns if c.metric}
    has_cell = frame[
        [(t, m) in wanted for t, m in zip(frame["task"], frame["metric"], strict=True)]
    ]
    labels = set(has_cell["upstream"])
    if board.hear_tasks:
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
        if column.suite == HEAR_SUITE and result.main is not None:
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
    hear = values.get((HEAR_AVERAGE, HEAR_AVERAGE_COLUMN))
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
                    _row(MEASURED, upstream, column.task, column.metric, True, None, source=MISSING)
                )
                continue
            for metric, stat in result.metrics.items():
                rows.append(
                    _row(
                        MEASURED,
                        upstream,
                        column.task,
                        metric,
                        metric == result.main_metric,
                        result.higher_is_better if metric == result.main_metric else None,
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
        is_main = entry.task == HEAR_AVERAGE or SUPERB_MAIN_METRIC.get(entry.task) == entry.metric
        direction = (
            True if entry.task == HEAR_AVERAGE else directions.get((entry.task, entry.metric))
        )
        rows.append(
            _row(
                PUBLISHED,
                entry.upstream,
                entry.task,
                entry.metric,
                is_main,
                direction,
                mean=entry.value,
                n=HEAR_AVERAGE_TASKS if entry.task == HEAR_AVERAGE else None,
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
                    True,
                    True,
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
        True,
        True,
        mean=score.value,
        n=len(score.tasks),
        source="computed over " + ", ".join(score.tasks),
    )


def _row(
    kind: str,
    upstream: str,
    task: str,
    metric: str | None,
    is_main: bool,
    higher_is_better: bool | None,
    mean: float | None = None,
    std: float | None = None,
    n: int | None = 0,
    source: str = "",
) -> dict:
    unit = unit_of(metric).label if metric and task not in (SUPERB_SCORE, HEAR_AVERAGE) else ""
    if task == HEAR_AVERAGE:
        unit = "%"
    return {
        "kind": kind,
        "upstream": upstream,
        "task": task,
        "suite": task.split(".", 1)[0],
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
    if board.hear_tasks:
        notes.append(
            f"HEAR average over the HEAR tasks present: {', '.join(board.hear_tasks)} "
            f"({len(board.hear_tasks)} of {HEAR_AVERAGE_TASKS}); published averages "
            f"({NINETEEN_TASKS_MARK}) cover all {HEAR_AVERAGE_TASKS}"
        )
    for (kind, upstream), summary in board.summaries.items():
        if summary.superb and summary.superb.incomplete:
            parts = [f"{t} (no {', '.join(m)})" for t, m in summary.superb.incomplete.items()]
            notes.append(f"{upstream} ({kind}): left out of its SUPERB score: {'; '.join(parts)}")
    return notes


# -- cells ------------------------------------------------------------------------------------


def format_stat(mean: float | None, std: float | None, n: int | None, metric: str | None) -> str:
    """``mean ± std`` in the metric's unit; the mean alone for one seed; n/a if not finite."""
    unit = unit_of(metric or "")
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if n is not None and n > 1 and std is not None and math.isfinite(std):
        return f"{unit.format(mean)} ± {unit.format(std)}"
    return unit.format(mean)


def measured_cell(board: Leaderboard, upstream: str, column: TaskColumn) -> str:
    result = board.result(upstream, column.task)
    stat = result.metrics.get(column.metric or "") if result else None
    if result is None or stat is None or result.main_metric != column.metric:
        return MISSING_CELL
    return format_stat(stat.mean, stat.std, stat.n, column.metric)


def published_cell(board: Leaderboard, label: str, task: str, metric: str | None) -> str:
    value = published_value(board, label, task, metric)
    return MISSING_CELL if value is None else format_stat(value, None, None, metric)


def superb_cell(summary: Summary, expected: Sequence[str]) -> str:
    score = summary.superb
    if score is None or score.value is None:
        return MISSING_CELL
    partial = PARTIAL_MARK if set(score.tasks) != set(expected) else ""
    return f"{_score_text(score.value)}{partial}"


def _score_text(value: float) -> str:
    """One decimal; a value that rounds to zero prints as 0.0, not -0.0."""
    return f"{round(value, 1) + 0.0:.1f}"


def hear_cell(summary: Summary, expected: Sequence[str]) -> str:
    if summary.hear is None:
        return MISSING_CELL
    if summary.hear_is_published:
        return f"{summary.hear:.2f}{NINETEEN_TASKS_MARK}"
    partial = PARTIAL_MARK if set(summary.hear_tasks) != set(expected) else ""
    return f"{summary.hear:.2f}{partial}"


# -- displayed tables -------------------------------------------------------------------------


@dataclass(frozen=True)
class DisplayTable:
    """A table of display strings; ``published`` flags the rows that are published numbers."""

    frame: pd.DataFrame
    published: list[bool]


def leaderboard_table(board: Leaderboard) -> DisplayTable:
    """Upstream x task (main metrics), then summary scores and the source of each row."""
    headers = {c.task: f"{c.task} {c.label}" for c in board.columns}
    rows, flags = [], []
    for upstream in board.upstreams:
        cells = {headers[c.task]: measured_cell(board, upstream, c) for c in board.columns}
        origins = {r.origin for r in board.results if r.upstream == upstream}
        rows.append(
            _table_row(board, upstream, cells, (MEASURED, upstream), "measured" + _origin(origins))
        )
        flags.append(False)
    for label in board.published_rows:
        cells = {
            headers[c.task]: published_cell(board, label, c.task, c.metric) for c in board.columns
        }
        sources = ", ".join(f"[{board.source_number(s)}]" for s in published_source(board, label))
        rows.append(
            _table_row(
                board, f"{label} (published)", cells, (PUBLISHED, label), f"published {sources}"
            )
        )
        flags.append(True)
    return DisplayTable(pd.DataFrame(rows), flags)


def _origin(origins: set[str]) -> str:
    return f" ({', '.join(sorted(origins))})" if origins else " (no results)"


def _table_row(
    board: Leaderboard, label: str, cells: dict, key: tuple[str, str], source: str
) -> dict:
    summary = board.summaries[key]
    row = {"upstream": label, **cells}
    if board.superb_tasks:
        row["SUPERB score"] = superb_cell(summary, board.superb_tasks)
    if board.hear_tasks:
        row["HEAR avg (%)"] = hear_cell(summary, board.hear_tasks)
    row["source"] = source
    return row


def references_table(board: Leaderboard) -> DisplayTable:
    """Every published row, over every published task metric, with its SUPERB score."""
    frame = _published(board)
    metrics = list(dict.fromkeys(zip(frame["task"], frame["metric"], strict=True)))
    superb_metrics = [(t, m) for t, m in metrics if t != HEAR_AVERAGE]
    directions = {(p.task, p.metric): p.higher_is_better for p in board.references.points}
    rows = []
    for label, summary in board.reference_summaries.items():
        row = {"upstream": label}
        for task, metric in superb_metrics:
            header = f"{task} {metric_label(metric, directions.get((task, metric)))}"
            row[header] = published_cell(board, label, task, metric)
        row["SUPERB score (tasks)"] = (
            f"{_score_text(summary.superb.value)} ({len(summary.superb.tasks)})"
            if summary.superb and summary.superb.value is not None
            else MISSING_CELL
        )
        row[f"HEAR avg, {HEAR_AVERAGE_TASKS} tasks (%)"] = (
            f"{summary.hear:.2f}" if summary.hear is not None else MISSING_CELL
        )
        row["source"] = ", ".join(
            f"[{board.source_number(s)}]" for s in published_source(board, label)
        )
        rows.append(row)
    return DisplayTable(pd.DataFrame(rows), [True] * len(rows))
