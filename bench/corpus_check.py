"""Corpus checks: a report on a corpus tree as its archives unpack.

A task's ``verify`` fills a ``CorpusReport``: required files and folders (errors when
missing or unreadable, see ``bench.corpus_files``), the known totals of the full corpus
(warnings when they differ, since a subset is a legitimate choice) and, when something
is missing, how to obtain the corpus (the manual steps of licensed corpora). ``bench
prepare`` prints the report; ``bench run`` refuses a tree whose report has errors (a
``DataError`` carrying the whole report).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.corpus_files import unreadable_files
from bench.data import DataError

Level = Literal["ok", "warning", "error"]
#: how many missing names a check quotes before it just counts them
QUOTED_NAMES = 5


@dataclass(frozen=True)
class Check:
    level: Level
    message: str


@dataclass
class CorpusReport:
    """The checks of one corpus tree; ``subject`` names it, ``how_to_get`` says how to obtain it."""

    subject: str
    how_to_get: str = ""
    checks: list[Check] = field(default_factory=list)

    def ok(self, message: str) -> None:
        self.checks.append(Check("ok", message))

    def warn(self, message: str) -> None:
        self.checks.append(Check("warning", message))

    def error(self, message: str) -> None:
        self.checks.append(Check("error", message))

    @property
    def errors(self) -> list[str]:
        return [c.message for c in self.checks if c.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [c.message for c in self.checks if c.level == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def require_dir(self, path: Path, what: str) -> bool:
        if path.is_dir():
            return True
        self.error(f"{path} is missing ({what})")
        return False

    def require_file(self, path: Path, what: str) -> bool:
        if path.is_file():
            return True
        self.error(f"{path} is missing ({what})")
        return False

    def expect_count(self, what: str, found: int, expected: int) -> None:
        """A known total of the full corpus: a different count is a warning (a subset?)."""
        if found == expected:
            self.ok(f"{what}: {found:,}")
        elif found < expected:
            self.warn(f"{what}: {found:,}, the full corpus has {expected:,} (a subset?)")
        else:
            self.warn(f"{what}: {found:,}, more than the {expected:,} of the full corpus")

    def require_files(self, what: str, files: Iterable[tuple[str, Path]]) -> bool:
        """Every listed ``(name, path)`` must be a readable file; quote the first missing
        and the first unreadable ones (with the cause)."""
        files = list(files)
        problems = unreadable_files(files)
        if not problems:
            self.ok(f"{what}: all {len(files):,} present")
            return True
        if problems.missing:
            self.error(
                f"{what}: {len(problems.missing):,} of {len(files):,} missing, "
                f"e.g. {quote(problems.missing)}"
            )
        if problems.unreadable:
            shown = [f"{name} ({cause})" for name, cause in problems.unreadable]
            self.error(
                f"{what}: {len(shown):,} of {len(files):,} cannot be read, e.g. {quote(shown)}"
            )
        return False

    def render(self) -> str:
        marks = {"ok": "ok   ", "warning": "WARN ", "error": "ERROR"}
        lines = [f"{self.subject}:"]
        lines += [f"  {marks[c.level]} {c.message}" for c in self.checks]
        if self.errors and self.how_to_get:
            lines.append(f"  how to get it: {self.how_to_get}")
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        if self.errors:
            raise DataError(f"corpus check failed\n{self.render()}")

    def to_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "passed": self.passed,
            "checks": [{"level": c.level, "message": c.message} for c in self.checks],
        }


def quote(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:QUOTED_NAMES])
    return shown + (
        f" (and {len(names) - QUOTED_NAMES:,} more)" if len(names) > QUOTED_NAMES else ""
    )
