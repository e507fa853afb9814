"""executor=slurm on a real Slurm (.ci/slurm/setup.sh starts a single-node one on
loopback; .ci/run does it before the tests): job arrays through submitit give the local
executor's records, and a job that leaves the queue without a result is submitted again."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from _executors import results, run_demo, shard_digests


def slurm_is_up() -> str | None:
    """Why the Slurm tests cannot run here, or None."""
    if find_spec("submitit") is None:
        return "submitit is not installed (pip install -e '.[slurm]')"
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "no Slurm client here (sbatch, scontrol); .ci/slurm/setup.sh installs one"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as error:
        return f"scontrol ping failed ({error})"
    if "UP" not in ping.stdout:
        return "no Slurm controller is running; start one with .ci/slurm/setup.sh"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(slurm_is_up() is not None, reason=f"slurm: {slurm_is_up()}"),
]

TASK = ("demo.keywords",)
FAST = ("executor=slurm", "slurm.poll_s=1", "slurm.time_min=20", "work.cpus=1")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, demo_root, mlflow_uri) -> Path:
    workspace = tmp_path_factory.mktemp("local") / "workspace"
    assert run_demo(workspace, demo_root, mlflow_uri, tasks=TASK) == 0
    return workspace


def test_slurm_job_arrays_give_the_local_records(reference, demo_root, mlflow_uri, tmp_path):
    workspace = tmp_path / "workspace"
    assert run_demo(workspace, demo_root, mlflow_uri, *FAST, tasks=TASK) == 0
    assert results(workspace) == results(reference)
    assert shard_digests(workspace) == shard_digests(reference)
    jobs = list((workspace / "slurm").glob("*/*_result.pkl"))
    assert len(jobs) == len(shard_digests(reference)) + 1  # a job per shard, one for probes


class JobCanceller(threading.Thread):
    """Kills (scancel) the first job of this name and this workspace that runs. Only
    this workspace's: pytest-xdist may run this module's other test at the same time."""

    def __init__(self, job_name: str, workspace: Path):
        super().__init__(daemon=True)
        self.job_name, self.workspace = job_name, str(workspace)
        self.cancelled, self.stop = "", threading.Event()

    def _running(self) -> list[str]:
        listing = subprocess.run(  # job id and its batch script, in submitit's folder
            ["squeue", "-h", "-r", "-t", "R", "-n", self.job_name, "-o", "%i %o"],
            capture_output=True,
            text=True,
        ).stdout
        jobs = (line.split(maxsplit=1) for line in listing.splitlines())
        return [job for job, command in jobs if command.startswith(self.workspace + "/")]

    def run(self) -> None:
        while not self.stop.is_set() and not self.cancelled:
            running = self._running()
            if running:
                time.sleep(0.5)  # into the unit
                # SIGQUIT to the job's steps ends the unit at once, as a kill would: a plain
                # scancel's SIGTERM is ignored by submitit, and a short unit finishes
                # within KillWait, before the SIGKILL that follows it
                subprocess.run(["scancel", "--signal=QUIT", running[0]], check=True)
                self.cancelled = running[0]
            time.sleep(0.1)


def test_a_cancelled_job_is_submitted_again(reference, demo_root, mlflow_uri, tmp_path, capsys):
    workspace = tmp_path / "workspace"
    canceller = JobCanceller("bench-train_probes", workspace)
    canceller.start()
    try:
        code = run_demo(workspace, demo_root, mlflow_uri, *FAST, tasks=TASK)
    finally:
        canceller.stop.set()
        canceller.join()
    assert canceller.cancelled, "the probe job should have been cancelled while it ran"
    assert code == 0
    assert "left the queue without a result; submitting it again" in capsys.readouterr().err
    assert results(workspace) == results(reference)
