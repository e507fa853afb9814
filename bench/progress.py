"""Progress bars and logging set-up, shared by extraction, training and suites."""

from __future__ import annotations

import logging
import sys
import threading
import time
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


class SweepProgress:
    """One bar for a sweep trained step by step (``bench.stacking.train_stack``).

    The bar counts probe-steps: every step of every training probe, and a stopped probe's
    remaining steps at once, so it ends full and its rate gives an honest ETA. Beside it:
    how many probes still train, and the best dev score so far with the probe that made it.
    Thread-safe (stacks train in threads); the bar is redrawn at most every 0.2 s.
    """

    def __init__(
        self,
        desc: str,
        probes: int,
        total_steps: int,
        enabled: bool = True,
        higher_is_better: bool = True,
        metric: str = "dev",
    ):
        self.bar = progress_bar(total=total_steps, desc=desc, unit="step", enabled=enabled)
        self.higher_is_better, self.metric = higher_is_better, metric
        self.training, self.probes = probes, probes
        self.best: float | None = None
        self.best_label = ""
        self._pending = 0
        self._drawn = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, probe_steps: int) -> None:
        with self._lock:
            self._pending += probe_steps
            if time.monotonic() - self._drawn > 0.2:
                self._flush()

    def evaluated(self, spec: Any, score: float) -> None:
        with self._lock:
            better = self.best is None or (
                score > self.best if self.higher_is_better else score < self.best
            )
            if score == score and better:  # NaN never leads
                self.best, self.best_label = score, getattr(spec, "label", "")
                self._describe()

    def stopped(self, remaining_steps: int) -> None:
        with self._lock:
            self.training -= 1
            self._pending += remaining_steps
            self._describe()
            self._flush()

    def close(self) -> None:
        with self._lock:
            self._flush()
        self.bar.close()

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _describe(self) -> None:
        text = f"training {self.training}/{self.probes}"
        if self.best is not None:
            label = f" ({self.best_label})" if self.best_label else ""
            text += f", best {self.metric} {self.best:.4g}{label}"
        self.bar.set_postfix_str(text, refresh=False)

    def _flush(self) -> None:
        if self._pending:
            self.bar.update(self._pending)
            self._pending = 0
        self._drawn = time.monotonic()
