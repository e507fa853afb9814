"""Display tables of a leaderboard: formatted cells, the leaderboard and the references table.

Cells: ``mean ± std`` in the metric's unit (the mean alone for one seed), ``—`` for a missing
result, ``n/a`` for a non-finite one; summary scores over fewer tasks than the table has are
marked ``*``, published 19-task HEAR averages ``†``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from bench.report.leaderboard import (
    MEASURED,
    PUBLISHED,
    Leaderboard,
    Summary,
    TaskColumn,
    published_source,
    published_value,
)
from bench.report.references import HEAR_AVERAGE, HEAR_AVERAGE_TASKS
from bench.report.units import metric_label, unit_of

MISSING_CELL = "—"
PARTIAL_MARK = "*"
NINETEEN_TASKS_MARK = "†"
QUICK_MARK = "(quick)"


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
    text = format_stat(stat.mean, stat.std, stat.n, column.metric)
    return f"{text} {QUICK_MARK}" if result.is_quick else text


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
    """A published 19-task average (†), a measured one over every HEAR task, or a partial
    one that says how many tasks it covers."""
    if summary.hear is None:
        return MISSING_CELL
    if summary.hear_is_published:
        return f"{summary.hear:.2f}{NINETEEN_TASKS_MARK}"
    if len(summary.hear_tasks) < HEAR_AVERAGE_TASKS:
        return f"{summary.hear:.2f} ({len(summary.hear_tasks)} of {HEAR_AVERAGE_TASKS} tasks)"
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
        origins = {r.origin for r in board.results if r.row == upstream}
        protocol = ", ".join(board.protocols(upstream)) or MISSING_CELL
        rows.append(
            _table_row(
                board,
                upstream,
                cells,
                (MEASURED, upstream),
                "measured" + _origin(origins),
                protocol,
            )
        )
        flags.append(False)
    for label in board.published_rows:
        cells = {
            headers[c.task]: published_cell(board, label, c.task, c.metric) for c in board.columns
        }
        sources = ", ".join(f"[{board.source_number(s)}]" for s in published_source(board, label))
        rows.append(
            _table_row(
                board,
                f"{label} (published)",
                cells,
                (PUBLISHED, label),
                f"published {sources}",
                board.published_protocol(label),
            )
        )
        flags.append(True)
    return DisplayTable(pd.DataFrame(rows), flags)


def _origin(origins: set[str]) -> str:
    return f" ({', '.join(sorted(origins))})" if origins else " (no results)"


def _table_row(
    board: Leaderboard, label: str, cells: dict, key: tuple[str, str], source: str, protocol: str
) -> dict:
    summary = board.summaries[key]
    row = {"upstream": label, "protocol": protocol, **cells}
    if board.superb_tasks:
        row["SUPERB score"] = superb_cell(summary, board.superb_tasks)
    if board.hear_tasks:
        row["HEAR avg (%)"] = hear_cell(summary, board.hear_tasks)
    row["source"] = source
    return row


def references_table(board: Leaderboard) -> DisplayTable:
    """Every published row, over every published task metric, with its SUPERB score."""
    frame = board.references.published
    metrics = list(dict.fromkeys(zip(frame["task"], frame["metric"], strict=True)))
    superb_metrics = [(t, m) for t, m in metrics if t != HEAR_AVERAGE]
    directions = {(p.task, p.metric): p.higher_is_better for p in board.references.points}
    rows = []
    for label, summary in board.reference_summaries.items():
        row = {"upstream": label, "protocol": board.published_protocol(label)}
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
