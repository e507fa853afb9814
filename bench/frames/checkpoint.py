"""Checkpoints of a probe sweep, so that a killed run resumes at its last evaluation.

A long frame-level sweep (SUPERB PR: 100k steps; ASR: 200k) writes, at every evaluation,
what it needs to continue: each probe's parameters, optimizer state, best state and score,
evaluation curve, early-stopping state and random generators, and the step. Each file is
written atomically (``bench.fileio``) and read back with ``torch.load(weights_only=True)``:
tensors and plain containers only, never pickled objects.

A checkpoint belongs to one training setup: its ``key`` (the task, the record identity's
digest, the probes' learning rates and seeds) is stored in it, and a file with another key
is ignored, so a changed setting never resumes from a stale state. The directory is removed
once the sweep has finished.
"""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from bench.fileio import atomic_write, remove_stale_temporaries

log = logging.getLogger(__name__)

#: 2: stacks of at most bench.stacking.STACK_SIZE probes, torch optimizer state per probe
FORMAT = 2


class SweepCheckpoints:
    """The checkpoint file of one group of probes trained together, under ``directory``."""

    def __init__(self, directory: Path, key: dict[str, Any]):
        self.directory = Path(directory)
        self.key = {"format": FORMAT, **key}
        remove_stale_temporaries(self.directory)  # a killed writer's: a whole model each

    def _file(self, group: str) -> Path:
        return self.directory / f"{group}.pt"

    def save(self, group: str, state: dict[str, Any]) -> None:
        """Replace ``group``'s checkpoint with ``state`` (tensors and plain containers)."""
        buffer = io.BytesIO()
        torch.save({"key": self.key, "state": state}, buffer)
        atomic_write(self._file(group), lambda handle: handle.write(buffer.getvalue()))

    def load(self, group: str) -> dict[str, Any] | None:
        """``group``'s last state, or None when there is none or it belongs to another setup."""
        path = self._file(group)
        if not path.is_file():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # any file that cannot be read safely: start afresh
            log.warning("ignoring unreadable checkpoint %s (%s)", path, error)
            return None
        if not isinstance(stored, dict) or stored.get("key") != self.key:
            log.warning("ignoring checkpoint %s: it was written for other settings", path)
            return None
        log.info("resuming from %s", path)
        return stored["state"]

    def clear(self) -> None:
        """Remove every checkpoint (the sweep finished)."""
        shutil.rmtree(self.directory, ignore_errors=True)
