"""``executor=local``: every task in this process, one after another."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.executors import Executor

if TYPE_CHECKING:
    from bench.runner import TaskOutcome
    from bench.task import TaskRun

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    def run(self, upstreams: Sequence[str], task_runs: Sequence[TaskRun]) -> list[TaskOutcome]:
        from bench.runner import Runner, UpstreamLoadError

        outcomes = []
        total = len(upstreams) * len(task_runs)
        for upstream in upstreams:
            runner = Runner(self.config, existing=self.existing, name=self.name)
            try:
                runner.load_upstream(upstream)  # a missing checkpoint stops here, before any task
            except UpstreamLoadError:
                if len(upstreams) == 1:
                    raise
                # with several upstreams, this one's tasks fail with its message
            for task_run in task_runs:
                log.info("[%d/%d] %s with %s", len(outcomes) + 1, total, task_run.task, upstream)
                outcomes.append(runner.run(task_run, upstream))
            runner.forget_upstreams()
        return outcomes
