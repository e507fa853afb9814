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


def setup_logging(level: str = "INFO") -> None:
    """bench's messages as ``bench: message`` on stderr; noisy libraries kept quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bench: %(message)s"))
    root = logging.getLogger("bench")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for noisy in ("mlflow", "alembic", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
