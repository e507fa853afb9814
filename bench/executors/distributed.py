"""The driver of ``executor=ray|slurm``: plan here, run the units on an engine, record here.

1. Plan every (upstream, task) in this process (``Runner.plan``): data read and checked,
   the cache planned, the identity computed, complete records reused, MLflow runs started.
   The upstream is built here to key its cache, then dropped.
2. Submit every missing cache shard as extraction units (``bench.work_units``), all at once.
3. When a task's shards are all committed, submit its probe unit; tasks whose cache was
   complete go first.
4. When a probe unit is done, write the task's record and log it to MLflow, here.

Tracking happens in this process only: workers never open the MLflow store, so a local
SQLite store is written by one process however many nodes run units (a tracking server
works the same). A re-run of the same command resumes: complete records are reused,
committed shards are not extracted again, and a probe unit whose outcome was written
(``<workspace>/work/``) is not trained again.

Engines implement ``submit`` (units -> futures) and ``cancel``; they retry a unit whose
worker died up to ``work.retries`` times and then fail its future.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bench.executors import Executor
from bench.progress import progress_bar
from bench.work_units import (
    ProbeUnit,
    UnitResult,
    WorkerContext,
    extract_shards,
    extraction_units,
    probe_unit,
    read_outcome,
    train_probes,
)

if TYPE_CHECKING:
    from bench.runner import Runner, TaskOutcome, TaskPlan
    from bench.task import TaskRun

log = logging.getLogger(__name__)

#: seconds between two looks at the units (Ctrl-C is handled within this time)
WAIT_S = 2.0


@dataclass(frozen=True)
class Resources:
    """What one unit asks the engine for."""

    cpus: int
    gpus: int = 0


@dataclass
class Entry:
    """A planned task in flight: its runner (records, tracking), plan and progress."""

    runner: Runner
    plan: TaskPlan
    context: WorkerContext
    extraction_units: int = 0
    extracted: Any = None  # bench.extract.ExtractionStats, summed over its units
    extraction_started: float = field(default_factory=time.perf_counter)
    settled: bool = False  # recorded or failed


class DistributedExecutor(Executor):
    #: the engine's name, in messages
    engine: ClassVar[str]

    @abstractmethod
    def submit(
        self, function: Callable[[Any], UnitResult], units: Sequence[Any], resources: Resources
    ) -> list[Future]:
        """Start ``function(unit)`` for every unit on the engine (together: one Slurm job
        array); each future gives the UnitResult, or raises when the unit's worker died
        more than ``work.retries`` times."""

    @abstractmethod
    def cancel(self, futures: Sequence[Future]) -> None:
        """Stop these units (Ctrl-C, SIGTERM)."""

    def close(self) -> None:
        """Release the engine (e.g. a Ray that bench started)."""

    # -- the driver ---------------------------------------------------------------------------

    def run(self, upstreams: Sequence[str], task_runs: Sequence[TaskRun]) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome] = []
        entries: list[Entry] = []
        self._pending: dict[Future, tuple[str, Entry]] = {}
        try:
            for upstream in upstreams:
                self._plan(upstream, task_runs, len(upstreams), outcomes, entries)
            if entries:
                self._execute(entries)
        except BaseException as error:  # Ctrl-C, SIGTERM: stop the units, end the runs
            self.cancel(list(self._pending))
            for entry in entries:
                if not entry.settled:
                    entry.plan.tracker.end_failed(error)
            raise
        finally:
            self.close()
        return outcomes

    def _plan(
        self,
        upstream: str,
        task_runs: Sequence[TaskRun],
        upstream_count: int,
        outcomes: list[TaskOutcome],
        entries: list[Entry],
    ) -> None:
        from bench.runner import Runner, TaskOutcome, UpstreamLoadError

        runner = Runner(self.config, existing=self.existing, name=self.name)
        try:
            runner.load_upstream(upstream)
        except UpstreamLoadError:
            if upstream_count == 1:
                raise
        context = worker_context(self.config, upstream, self.name)
        for task_run in task_runs:
            log.info("planning %s with %s", task_run.task, upstream)
            planned = runner.plan(task_run, upstream)
            if isinstance(planned, TaskOutcome):
                outcomes.append(planned)
                continue
            # the workers build the model; the driver keeps only what records need
            planned.upstream = dataclasses.replace(planned.upstream, model=None)
            outcomes.append(planned.outcome)
            entries.append(Entry(runner, planned, context))
        runner.forget_upstreams()

    def _execute(self, entries: list[Entry]) -> None:
        from bench.extract import ExtractionStats

        ready: list[Entry] = []
        units_by_entry = []
        for entry in entries:
            filled = entry.plan.fill
            entry.extracted = ExtractionStats(shards_cached=len(filled.shards) if filled else 0)
            finished = read_outcome(self._outcome_file(entry), entry.plan.identity.digest)
            if finished is not None:  # trained before the driver stopped: record it now
                log.info("%s: its probes were trained by an earlier run", entry.plan.label)
                self._record(entry, UnitResult(stats=finished[0], warnings=finished[1]))
                continue
            units = self._guard(entry, lambda e=entry: self._extraction_units(e))
            if units is None:
                continue
            entry.extraction_units = len(units)
            units_by_entry.append((entry, units))
            if not units:
                ready.append(entry)
        total = sum(len(units) for _, units in units_by_entry) + len(units_by_entry)
        with progress_bar(
            total=total,
            desc=f"{self.engine}: units",
            unit="unit",
            enabled=bool(self.config.runtime.progress),
        ) as bar:
            self._submit_extraction(units_by_entry)
            self._submit_probes(ready)
            while self._pending:
                done, _ = wait(list(self._pending), timeout=WAIT_S, return_when=FIRST_COMPLETED)
                newly_ready = []
                for future in done:
                    kind, entry = self._pending.pop(future)
                    bar.update(1)
                    if entry.settled:  # failed already: its other units are ignored
                        continue
                    result = self._result(future, kind, entry)
                    if result is None:
                        continue
                    if kind == "extraction":
                        self._add_extraction(entry, result.stats)
                        if entry.extraction_units == 0:
                            newly_ready.append(entry)
                    else:
                        self._record(entry, result)
                self._submit_probes(newly_ready)

    def _extraction_units(self, entry: Entry) -> list[Any]:
        plan = entry.plan
        with plan.stage("extracting features", plan.cache.directory):
            return extraction_units(plan, entry.context, int(self.config.work.shards_per_unit))

    def _submit_extraction(self, units_by_entry: list[tuple[Entry, list[Any]]]) -> None:
        units = [unit for _, group in units_by_entry for unit in group]
        owners = [entry for entry, group in units_by_entry for _ in group]
        if not units:
            return
        log.info(
            "%s: %d extraction unit(s), %.0f s of audio",
            self.engine,
            len(units),
            sum(unit.seconds for unit in units),
        )
        resources = self._resources(uses_gpu=str(self.config.extract.device) != "cpu")
        for entry in owners:
            entry.extraction_started = time.perf_counter()
        for future, entry in zip(
            self.submit(extract_shards, units, resources), owners, strict=True
        ):
            self._pending[future] = ("extraction", entry)

    def _submit_probes(self, entries: list[Entry]) -> None:
        """Probe units of tasks whose caches are complete, one submission per kind of
        resources (a Slurm array needs one)."""
        groups: dict[Resources, list[tuple[Entry, ProbeUnit]]] = {}
        for entry in entries:
            unit = probe_unit(entry.plan, entry.context)
            groups.setdefault(self._probe_resources(unit), []).append((entry, unit))
        for resources, group in groups.items():
            futures = self.submit(train_probes, [unit for _, unit in group], resources)
            for future, (entry, _) in zip(futures, group, strict=True):
                self._pending[future] = ("probes", entry)

    def _probe_resources(self, unit: ProbeUnit) -> Resources:
        """A GPU for probes trained on one, or for a protocol that runs the encoder."""
        on_gpu = str(self.config.probe.device) != "cpu" or (
            unit.needs_model and str(self.config.extract.device) != "cpu"
        )
        return self._resources(uses_gpu=on_gpu)

    def _resources(self, uses_gpu: bool) -> Resources:
        work = self.config.work
        return Resources(cpus=int(work.cpus), gpus=int(work.gpus) if uses_gpu else 0)

    def _result(self, future: Future, kind: str, entry: Entry) -> UnitResult | None:
        """The unit's result; None when the unit or its worker failed (the task failed)."""
        from bench.runner import Stage

        plan = entry.plan
        try:
            result = future.result()
        except Exception as error:
            lost = UnitLostError(
                f"{self.engine} lost the unit after {int(self.config.work.retries) + 1} "
                f"attempt(s): {first_line(error)}"
            )
            stage = (
                Stage.at("extracting features", plan.cache.directory)
                if kind == "extraction"
                else Stage.at("training the probes", None)
            )
            self._settle_failed(entry, stage.describe(lost), lost)
            return None
        if result.error is not None:
            plan.outcome.warnings += result.warnings
            self._settle_failed(entry, result.error, UnitFailedError(result.error))
            return None
        return result

    def _settle_failed(self, entry: Entry, message: str, error: Exception) -> None:
        from bench.runner import fail

        entry.settled = True
        fail(entry.plan.outcome, message)
        entry.plan.tracker.end_failed(error)

    def _add_extraction(self, entry: Entry, stats: Any) -> None:
        total = entry.extracted
        total.seconds_of_audio += stats.seconds_of_audio
        total.forward_seconds += stats.forward_seconds
        total.shards_done += stats.shards_done
        total.shards_cached -= stats.shards_done
        total.wall_seconds = time.perf_counter() - entry.extraction_started
        entry.extraction_units -= 1

    def _record(self, entry: Entry, result: UnitResult) -> None:
        """The task's record from its probe unit's outcome, then MLflow."""
        plan = entry.plan
        entry.settled = True

        def record() -> None:
            with plan.tracked():
                plan.outcome.warnings += result.warnings
                path = entry.runner.write_record(plan, entry.extracted, result.stats)
            entry.runner.complete(plan, path)
            self._outcome_file(entry).unlink(missing_ok=True)  # the record supersedes it
            log.info("%s: done", plan.label)

        self._guard(entry, record)

    def _guard(self, entry: Entry, work: Callable[[], Any]) -> Any:
        """``work()``; an exception is the task's failure (None is returned)."""
        from bench.runner import fail

        try:
            return work()
        except Exception as error:
            entry.settled = True
            fail(entry.plan.outcome, entry.plan.stage.describe(error), error)
            entry.plan.tracker.end_failed(error)
            return None

    def _outcome_file(self, entry: Entry) -> Path:
        from bench.work_units import outcome_file

        return outcome_file(Path(entry.context.config["paths"]["workspace"]), entry.plan)


class UnitLostError(RuntimeError):
    """The engine gave up on a unit: its worker died more often than ``work.retries``."""


class UnitFailedError(RuntimeError):
    """A unit's work failed on its worker (the message says where and why)."""


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def worker_context(config: Any, upstream: str, name: str | None) -> WorkerContext:
    """The configuration as workers need it: resolved, with absolute paths (workers may
    start elsewhere), no progress bars, and the upstream's path absolute if it is one."""
    from bench.config import to_container

    container = to_container(config)
    paths = container["paths"]
    for key in ("workspace", "cache", "records", "data"):
        paths[key] = str(Path(paths[key]).resolve())
    data = container["data"]
    if data["root"]:
        data["root"] = str(Path(data["root"]).resolve())
    data["roots"] = {task: str(Path(root).resolve()) for task, root in data["roots"].items()}
    container["slurm"]["folder"] = str(Path(container["slurm"]["folder"]).resolve())
    container["runtime"]["progress"] = False
    if Path(upstream).exists():
        upstream = str(Path(upstream).resolve())
    return WorkerContext(container, upstream, name)
