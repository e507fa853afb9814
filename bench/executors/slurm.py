"""``executor=slurm``: units as Slurm job arrays through submitit (``pip install bench-ssl[slurm]``).

The driver runs where ``sbatch`` works (a login node is enough: it plans, waits and
writes records, and needs no GPU). The extraction units of a run go out as one job
array (of at most 1,000 jobs: more make several), and the probe units of the tasks whose
caches are complete as another each time some become ready; ``slurm.array_parallelism`` caps how many of an array run at once.
Each job asks for ``work.cpus`` CPUs, ``--gres=gpu:<work.gpus>`` when it uses a GPU, the
``slurm.partition``, ``slurm.time_min``, ``slurm.mem_gb`` and any other sbatch options in
``slurm.sbatch``. Job files and logs go to ``slurm.folder/<job id>/`` (submitit's, read
them with ``submitit`` or any editor). The workspace, the folder and the Python
environment must be at the same paths on every node (a shared file system).

The driver looks at its jobs every ``slurm.poll_s`` seconds: a job that wrote its result
is done; a job that left the queue without one (killed, cancelled, out of time, its
node lost) is submitted again, ``work.retries`` times at most. Leaving the queue is read
from ``squeue``, so clusters without accounting (``sacct``) work too.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.executors.distributed import DistributedExecutor, Resources, first_line
from bench.work_units import UnitResult

log = logging.getLogger(__name__)

#: jobs per array at most (Slurm's default MaxArraySize is 1001: indices 0..1000)
ARRAY_LIMIT = 1000
#: polls a job may be missing from squeue before it counts as gone (a file system may
#: show its result a little late)
GONE_AFTER_POLLS = 2


class SlurmError(RuntimeError):
    """Slurm could not be used: no submitit, no sbatch, or sbatch refused the jobs."""


@dataclass
class TrackedJob:
    job: Any  # submitit.Job
    function: Callable[[Any], UnitResult]
    unit: Any
    resources: Resources
    attempts: int = 1
    polls_missing: int = 0


class SlurmExecutor(DistributedExecutor):
    engine = "slurm"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        try:
            import submitit  # noqa: F401
        except ModuleNotFoundError:
            raise SlurmError(
                "executor=slurm needs submitit: pip install 'bench-ssl[slurm]'"
            ) from None
        if shutil.which("sbatch") is None or shutil.which("squeue") is None:
            raise SlurmError(
                "executor=slurm: sbatch and squeue are not on PATH here; run bench where "
                "jobs can be submitted (a Slurm login node)"
            )
        self.folder = Path(self.config.slurm.folder).resolve()
        self._jobs: dict[Future, TrackedJob] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self, function: Callable[[Any], UnitResult], units: Sequence[Any], resources: Resources
    ) -> list[Future]:
        executor = self._executor(function, resources)
        jobs = []
        for start in range(0, len(units), ARRAY_LIMIT):
            try:
                with executor.batch():  # one job array
                    array = [
                        executor.submit(function, u) for u in units[start : start + ARRAY_LIMIT]
                    ]
            except Exception as error:
                raise SlurmError(f"sbatch refused the jobs: {first_line(error)}") from error
            log.info(
                "slurm: submitted %d %s job(s) (array %s)",
                len(array),
                function.__name__,
                array[0].job_id.split("_")[0],
            )
            jobs += array
        futures = []
        with self._lock:
            for job, unit in zip(jobs, units, strict=True):
                future: Future = Future()
                self._jobs[future] = TrackedJob(job, function, unit, resources)
                futures.append(future)
        self._start_polling()
        return futures

    def _executor(self, function: Callable[..., Any], resources: Resources) -> Any:
        import submitit

        slurm = self.config.slurm
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
        parameters: dict[str, Any] = {
            "name": f"bench-{function.__name__}",
            "timeout_min": int(slurm.time_min),
            "cpus_per_task": resources.cpus,
            "tasks_per_node": 1,
            "nodes": 1,
            "slurm_array_parallelism": int(slurm.array_parallelism),
            "slurm_additional_parameters": dict(slurm.sbatch),
        }
        if slurm.partition:
            parameters["slurm_partition"] = str(slurm.partition)
        if slurm.mem_gb is not None:
            parameters["mem_gb"] = float(slurm.mem_gb)
        if resources.gpus:
            parameters["slurm_gres"] = f"gpu:{resources.gpus}"
        executor.update_parameters(**parameters)
        return executor

    def cancel(self, futures: Sequence[Future]) -> None:
        with self._lock:
            tracked = [self._jobs.pop(future) for future in futures if future in self._jobs]
        for job in tracked:
            job.job.cancel(check=False)

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()

    # -- waiting --------------------------------------------------------------------------------

    def _start_polling(self) -> None:
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="bench-slurm", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(float(self.config.slurm.poll_s)):
            with self._lock:
                jobs = list(self._jobs.items())
            if not jobs:
                continue
            queued = self._queued()
            for future, tracked in jobs:
                self._check(future, tracked, queued)

    def _check(self, future: Future, tracked: TrackedJob, queued: set[str] | None) -> None:
        from submitit.core.utils import UncompletedJobError

        job = tracked.job
        if job.paths.result_pickle.exists():
            self._forget(future)
            try:
                future.set_result(job.result())
            except UncompletedJobError as error:  # bench's own code failed to run there
                future.set_exception(SlurmError(f"job {job.job_id}: {first_line(error)}"))
            return
        if queued is None or job.job_id in queued:
            tracked.polls_missing = 0
            return
        tracked.polls_missing += 1
        if tracked.polls_missing < GONE_AFTER_POLLS:
            return
        self._forget(future)
        retries = int(self.config.work.retries)
        if tracked.attempts > retries:
            future.set_exception(
                SlurmError(f"job {job.job_id} left the queue without a result ({job.paths.stderr})")
            )
            return
        log.warning(
            "slurm: job %s (%s) left the queue without a result; submitting it again (%d/%d)",
            job.job_id,
            tracked.unit.describe(),
            tracked.attempts,
            retries,
        )
        executor = self._executor(tracked.function, tracked.resources)
        try:
            again = executor.submit(tracked.function, tracked.unit)
        except Exception as error:
            future.set_exception(SlurmError(f"sbatch refused a retry: {first_line(error)}"))
            return
        with self._lock:
            self._jobs[future] = TrackedJob(
                again, tracked.function, tracked.unit, tracked.resources, tracked.attempts + 1
            )

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._jobs.pop(future, None)

    @staticmethod
    def _queued() -> set[str] | None:
        """Ids of this user's jobs Slurm still holds (array tasks one by one), or None when
        squeue did not answer (then nothing counts as gone)."""
        try:
            listing = subprocess.run(
                ["squeue", "-h", "-r", "-o", "%i", "-u", getpass.getuser()],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("slurm: squeue did not answer (%s); looking again later", error)
            return None
        return set(listing.split())
