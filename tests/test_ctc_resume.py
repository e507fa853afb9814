"""A CTC sweep killed mid-training (SIGKILL, a real subprocess) resumes at its last
evaluation checkpoint and ends with exactly the metrics of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from librispeech_fakes import build_librispeech

from bench.records import read_records

pytestmark = pytest.mark.slow

SETTINGS = [
    "probe.max_steps=240",
    "probe.eval_every=20",
    "probe.patience=100",
    "probe.batch_size=8",
    "probe.lr_grid=[0.01,0.03]",
    "probe.seeds=[0,1]",
    "runtime.progress=false",
    "tracking.enabled=false",
]


def command(data_root: Path, workspace: Path) -> list[str]:
    return [
        sys.executable, "-m", "bench", "run", "--task", "superb.pr", "--upstream",
        "fbank_no_cmvn", "--data-root", str(data_root), f"paths.workspace={workspace}", *SETTINGS,
    ]  # fmt: skip


def checkpoint_step(workspace: Path) -> int:
    """The step of the newest sweep checkpoint under ``workspace`` (0: none yet)."""
    steps = [0]
    for path in (workspace / "checkpoints").glob("**/fold0-probes-*.pt"):
        try:
            steps.append(int(torch.load(path, weights_only=True)["state"]["step"]))
        except Exception:  # being replaced right now: read the next one
            continue
    return max(steps)


def test_killed_sweep_resumes_at_its_last_evaluation(tmp_path):
    data_root = build_librispeech(tmp_path / "data")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    interrupted = tmp_path / "interrupted"
    child = subprocess.Popen(command(data_root, interrupted), env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while checkpoint_step(interrupted) < 60 and child.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    assert child.poll() is None, "the run ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = checkpoint_step(interrupted)
    assert 60 <= killed_at < 240
    assert not list((interrupted / "records").glob("**/*.json"))

    resumed = subprocess.run(
        command(data_root, interrupted), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert not (interrupted / "checkpoints").exists() or not list(
        (interrupted / "checkpoints").glob("**/*.pt")
    )  # removed once the sweep finished

    fresh = tmp_path / "fresh"
    uninterrupted = subprocess.run(
        command(data_root, fresh), env=env, capture_output=True, text=True
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    (after_kill,) = read_records(interrupted / "records")
    (reference,) = read_records(fresh / "records")
    assert after_kill.metrics == reference.metrics
    assert after_kill.trials == reference.trials
    assert after_kill.layer_weights == reference.layer_weights


def test_opening_sweep_checkpoints_removes_a_killed_writers_temporary(tmp_path):
    from bench.fileio import _HOST
    from bench.frames.checkpoint import SweepCheckpoints

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **CAPTURE)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    stale = directory / f".fold0.pt.tmp-{int(dead.stdout)}@{_HOST}"
    live = directory / f".fold1.pt.tmp-{os.getpid()}@{_HOST}"
    stale.write_bytes(b"half a model")
    live.write_bytes(b"being written")
    checkpoints = SweepCheckpoints(directory, {"run": "toy"})
    assert not stale.exists() and live.exists()
    checkpoints.save("fold0", {"step": 1})
    assert checkpoints.load("fold0") == {"step": 1}


CAPTURE = {"capture_output": True, "text": True}
