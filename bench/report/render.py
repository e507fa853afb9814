"""Text outputs of a leaderboard: Markdown (README, PR comment) and a tidy CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.fileio import atomic_write_text
from bench.report.leaderboard import Leaderboard
from bench.report.markdown import markdown_table
from bench.report.superb15 import TITLE as SUPERB15_TITLE
from bench.report.superb15 import has_view, superb15_notes, superb15_table
from bench.report.tables import (
    NINETEEN_TASKS_MARK,
    PARTIAL_MARK,
    leaderboard_table,
    references_table,
)

TITLE = "bench leaderboard"


@dataclass(frozen=True)
class ReportContext:
    """Where the numbers came from and when the report was made (shown in every output)."""

    generated_at: str
    inputs: tuple[str, ...]


def explanation(board: Leaderboard) -> list[str]:
    """What the tables show, in sentences shared by the Markdown and HTML outputs."""
    lines = [
        "Test split. Each task's main metric in its own unit: mean ± sample standard deviation "
        "over seeds (the mean alone for one seed). ↑ higher is better, ↓ lower is better. "
        "— no result; n/a not finite.",
        "SUPERB score: over the SUPERB paper's ten tasks (PR, ASR, KS, QbE, SF, IC, SID, ASV, "
        "SD, ER), as the SUPERB leaderboard computes it; one over fewer is partial and says "
        "how many it covers.",
        f"{PARTIAL_MARK} HEAR average over fewer tasks than the table has. "
        f"{NINETEEN_TASKS_MARK} published average over all 19 HEAR tasks.",
    ]
    return lines + board.notes


def frame_markdown(frame: pd.DataFrame) -> str:
    return markdown_table([str(c) for c in frame.columns], frame.itertuples(index=False))


def to_markdown(board: Leaderboard, context: ReportContext) -> str:
    sections = [
        f"# {TITLE}",
        f"Generated {context.generated_at} from {'; '.join(context.inputs)}.",
        "## Leaderboard",
    ]
    table = leaderboard_table(board)
    sections.append(frame_markdown(table.frame) if board.upstreams else "No measured results.")
    sections.append("\n".join(f"- {line}" for line in explanation(board)))
    if board.upstreams and has_view(board):
        sections += [
            f"## {SUPERB15_TITLE}",
            frame_markdown(superb15_table(board).frame),
            "\n".join(f"- {line}" for line in superb15_notes(board)),
        ]
    sections += [
        "## Published references",
        "As published (not measured by bench); SUPERB score over the paper's tasks each source "
        "reports.",
        frame_markdown(references_table(board).frame),
        "Sources:",
        "\n".join(f"{i}. {source}" for i, source in enumerate(board.sources, start=1)),
    ]
    return "\n\n".join(sections) + "\n"


def write_markdown(board: Leaderboard, context: ReportContext, path: Path) -> Path:
    atomic_write_text(path, to_markdown(board, context))
    return path


def write_csv(board: Leaderboard, path: Path) -> Path:
    """The tidy table: one row per upstream x task x metric (kind: measured, published)."""
    atomic_write_text(path, board.tidy.to_csv(index=False))
    return path
