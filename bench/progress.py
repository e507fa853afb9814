"""Progress bars and logging set-up, shared by extraction, training and suites."""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm.auto import tqdm


def progress_bar(
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr; disabled bars cost nothing and print nothing."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}]"
        if unit == "s"
        else None,
        **kwargs,
    )


class _PrefixFormatter(logging.Formatter):
    """``bench: message``, ``bench: warning: message``, ``bench: error: message``: the same
    prefixes as the one-line errors of every command (bench.cli.common.report_errors)."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"bench: {level}{super().format(record)}"


def setup_logging(level: str = "INFO") -> None:
    """bench's messages on stderr with the ``bench:`` prefix; noisy libraries kept quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrefixFormatter("%(message)s"))
    root = logging.getLogger("bench")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for noisy in ("mlflow", "alembic", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
