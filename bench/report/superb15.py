"""The "SUPERB (15 tasks)" view: one column per task of s3prl's SUPERB documentation, beside
the paper's ten-task SUPERB score.

The columns are the paper's ten tasks, then SUPERB-SG's SS, SE, VC, ST and OOD-ASR (the four
bench tasks Common Voice es, zh-CN, ar and SBCSAE in one column); each cell is the task's
main metric, as in the leaderboard, measured or published. The score beside is the paper's
ten-task SUPERB score, the leaderboard's cell (partial and labelled when the table has fewer
of the ten), never a score over the 15: the SUPERB leaderboard fixes FBANK and SOTA reference
points for 13 of them (none for VC and OOD-ASR), so there is no published 15-task score to
compare with, and bench does not make up anchors. ``no_score_reason`` says so from the
reference points themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from bench.report.leaderboard import MEASURED, PUBLISHED, Leaderboard, published_value
from bench.report.references import ReferencePoint
from bench.report.tables import (
    MISSING_CELL,
    QUICK_MARK,
    DisplayTable,
    format_stat,
    superb_cell,
)
from bench.report.units import metric_label, unit_of

TITLE = "SUPERB (15 tasks)"
SCORE_HEADER = "SUPERB score (paper's 10 tasks)"
#: how a multi-task column (OOD-ASR) joins its tasks' values
JOIN = " / "


@dataclass(frozen=True)
class TaskMetric:
    """One bench task of a column: its main metric and direction (checked against the
    registered tasks by tests/test_report_superb_sg.py)."""

    task: str
    metric: str
    higher_is_better: bool

    @property
    def short(self) -> str:
        """``superb.ood_asr.zh`` -> ``zh``."""
        return self.task.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Column:
    """A task of s3prl's SUPERB table: its ID there and the bench task(s) it is."""

    label: str
    parts: tuple[TaskMetric, ...]

    @property
    def header(self) -> str:
        """``PR per (%) ↓``; OOD-ASR: ``OOD-ASR es wer / zh cer / ... (%) ↓``."""
        if len(self.parts) == 1:
            part = self.parts[0]
            return f"{self.label} {metric_label(part.metric, part.higher_is_better)}"
        units = {unit_of(p.metric).label for p in self.parts}
        directions = {p.higher_is_better for p in self.parts}
        if len(units) == 1 and len(directions) == 1:
            unit, higher = units.pop(), directions.pop()
            names = JOIN.join(f"{p.short} {p.metric}" for p in self.parts)
            return f"{self.label} {names}{f' ({unit})' if unit else ''} {'↑' if higher else '↓'}"
        names = JOIN.join(
            f"{p.short} {metric_label(p.metric, p.higher_is_better)}" for p in self.parts
        )
        return f"{self.label} {names}"


def _one(label: str, task: str, metric: str, higher_is_better: bool) -> Column:
    return Column(label, (TaskMetric(task, metric, higher_is_better),))


SUPERB_15: tuple[Column, ...] = (
    _one("PR", "superb.pr", "per", False),
    _one("ASR", "superb.asr", "wer", False),
    _one("KS", "superb.ks", "accuracy", True),
    _one("QbE", "superb.qbe", "mtwv", True),
    _one("IC", "superb.ic", "accuracy", True),
    _one("SF", "superb.sf", "slot_f1", True),
    _one("SID", "superb.sid", "accuracy", True),
    _one("ASV", "superb.asv", "eer", False),
    _one("SD", "superb.sd", "der", False),
    _one("ER", "superb.er", "accuracy", True),
    _one("SS", "superb.ss", "si_sdri", True),
    _one("SE", "superb.se", "pesq", True),
    _one("VC", "superb.vc", "mcd", False),
    _one("ST", "superb.st", "bleu", True),
    Column(
        "OOD-ASR",
        (
            TaskMetric("superb.ood_asr.es", "wer", False),
            TaskMetric("superb.ood_asr.zh", "cer", False),
            TaskMetric("superb.ood_asr.ar", "wer", False),
            TaskMetric("superb.ood_asr.sbcsae", "wer", False),
        ),
    ),
)
"""s3prl's SUPERB documentation's tasks (docs/superb.md there), in the issue's order."""

SUPERB_15_TASKS: tuple[str, ...] = tuple(p.task for c in SUPERB_15 for p in c.parts)
#: what bench cannot run (``Task.unavailable``; kept here so the report imports no tasks)
NOT_RUN_BY_BENCH = {"superb.vc": "it needs a pretrained vocoder and evaluator models"}


def has_view(board: Leaderboard) -> bool:
    """The view is shown when the table has a result of one of the 15 tasks."""
    return any(c.task in SUPERB_15_TASKS and c.metric for c in board.columns)


def superb15_table(board: Leaderboard) -> DisplayTable:
    """Measured rows, then the published rows the leaderboard shows; 15 task cells each, and
    the paper's ten-task score as the leaderboard computes it for that row."""
    keys = [(MEASURED, u) for u in board.upstreams] + [(PUBLISHED, p) for p in board.published_rows]
    rows = [_row(board, key) for key in keys]
    return DisplayTable(pd.DataFrame(rows), [kind == PUBLISHED for kind, _ in keys])


def _row(board: Leaderboard, key: tuple[str, str]) -> dict:
    kind, name = key
    if kind == MEASURED:
        label, protocol = name, ", ".join(board.protocols(name))
    else:
        label, protocol = f"{name} (published)", board.published_protocol(name)
    cells = {c.header: _joined(c, [_cell(board, key, p) for p in c.parts]) for c in SUPERB_15}
    return {
        "upstream": label,
        "protocol": protocol or MISSING_CELL,
        **cells,
        SCORE_HEADER: superb_cell(board.summaries[key]),
    }


def _joined(column: Column, cells: list[str]) -> str:
    """A task's value; OOD-ASR's four, each named (``es 30.00 / zh — / ...``), or one ``—``
    when it has none."""
    if len(cells) == 1 or set(cells) == {MISSING_CELL}:
        return cells[0] if len(cells) == 1 else MISSING_CELL
    return JOIN.join(f"{part.short} {cell}" for part, cell in zip(column.parts, cells, strict=True))


def _cell(board: Leaderboard, key: tuple[str, str], part: TaskMetric) -> str:
    kind, name = key
    return _measured(board, name, part) if kind == MEASURED else _published(board, name, part)


def _measured(board: Leaderboard, upstream: str, part: TaskMetric) -> str:
    result = board.result(upstream, part.task)
    if result is None or result.main_metric != part.metric:
        return MISSING_CELL
    stat = result.metrics.get(part.metric)
    if stat is None:
        return MISSING_CELL
    text = format_stat(stat.mean, stat.std, stat.n, part.metric)
    return f"{text} {QUICK_MARK}" if result.is_quick else text


def _published(board: Leaderboard, label: str, part: TaskMetric) -> str:
    value = published_value(board, label, part.task, part.metric)
    return MISSING_CELL if value is None else format_stat(value, None, None, part.metric)


def no_score_reason(points: Sequence[ReferencePoint]) -> str:
    """Why the view has no 15-task score, from the reference points themselves."""
    anchored = {p.task for p in points}
    with_points = [c.label for c in SUPERB_15 if all(p.task in anchored for p in c.parts)]
    without = [c.label for c in SUPERB_15 if c.label not in with_points]
    if not without:
        return (
            "every one of the 15 tasks has reference points, but the SUPERB leaderboard "
            "publishes no 15-task score to compare with, so bench computes none"
        )
    return (
        f"no 15-task score: the SUPERB leaderboard fixes FBANK and SOTA reference points for "
        f"{len(with_points)} of the 15 tasks ({', '.join(with_points)}), none for "
        f"{', '.join(without)}; bench does not make up anchors, and prints a score beside "
        "published ones only over the same tasks"
    )


def superb15_notes(board: Leaderboard) -> list[str]:
    """What the view shows, in sentences shared by the Markdown and HTML outputs."""
    lines = [
        f"{TITLE}: the task columns of s3prl's SUPERB documentation, the paper's ten, then "
        "SUPERB-SG's SS, SE, VC, ST and OOD-ASR (Common Voice es, zh-CN, ar; SBCSAE, in one "
        "column, in that order); each cell is the task's main metric, as in the leaderboard. "
        "— no result.",
        f"{SCORE_HEADER}: the leaderboard's SUPERB score of the row (partial, and says so, "
        f"over fewer of the ten); {no_score_reason(board.references.points)}.",
    ]
    lines += [
        f"{task}: not run by bench ({why}; docs/superb.md)"
        for task, why in NOT_RUN_BY_BENCH.items()
    ]
    return lines
