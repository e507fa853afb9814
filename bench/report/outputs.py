"""Writes a leaderboard in the asked formats: leaderboard.md, leaderboard.csv, leaderboard.html."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.report import ReportError
from bench.report.leaderboard import Leaderboard
from bench.report.render import ReportContext, write_csv, write_markdown

FORMATS = ("md", "csv", "html")
BASENAME = "leaderboard"


def parse_formats(text: str) -> tuple[str, ...]:
    """``md,csv,html`` (any subset, any order)."""
    formats = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ReportError(f"unknown format(s) {unknown or text!r}; choose from {','.join(FORMATS)}")
    return formats


def write_report(
    board: Leaderboard, context: ReportContext, out_dir: Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    out_dir = Path(out_dir)
    written = []
    if "md" in formats:
        written.append(write_markdown(board, context, out_dir / f"{BASENAME}.md"))
    if "csv" in formats:
        written.append(write_csv(board, out_dir / f"{BASENAME}.csv"))
    if "html" in formats:
        from bench.report.html import write_html  # matplotlib: only when plotting

        written.append(write_html(board, context, out_dir / f"{BASENAME}.html"))
    return written
