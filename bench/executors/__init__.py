"""Where ``bench run``'s work runs: ``executor=local|ray|slurm`` (docs/scaling.md).

- ``local`` (the default): this process, task after task (``bench.runner.Runner.run``).
- ``ray``, ``slurm``: this process plans every (upstream, task), writes the records and
  logs them; the work between, extraction shards and probe sweeps, runs as units
  (``bench.work_units``) on a Ray cluster or as Slurm job arrays through submitit. The
  engines schedule, retry a unit whose worker died and report back; bench never
  schedules across machines itself.

Every executor gives the same records: a unit computes exactly what the local run does.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from bench.runner import Existing, TaskOutcome
    from bench.task import TaskRun

log = logging.getLogger(__name__)

#: executor name -> "module:class"
EXECUTOR_CLASSES = {
    "local": "bench.executors.local:LocalExecutor",
    "ray": "bench.executors.ray:RayExecutor",
    "slurm": "bench.executors.slurm:SlurmExecutor",
}


class Executor(ABC):
    """Runs tasks for upstreams and returns one outcome per (upstream, task), in order:
    every task of the first upstream, then of the next. A task's failure is its outcome's
    error; an upstream that cannot be built stops the run when it is the only one, and
    fails its own tasks when there are several."""

    def __init__(self, config: DictConfig, existing: Existing = "reuse", name: str | None = None):
        self.config = config
        self.existing = existing
        self.name = name

    @abstractmethod
    def run(self, upstreams: Sequence[str], task_runs: Sequence[TaskRun]) -> list[TaskOutcome]:
        """Run every task for every upstream."""


def make_executor(
    config: DictConfig, existing: Existing = "reuse", name: str | None = None
) -> Executor:
    """The executor ``config.executor`` names."""
    module, _, cls = EXECUTOR_CLASSES[str(config.executor)].partition(":")
    return getattr(importlib.import_module(module), cls)(config, existing, name)
