"""A failed task or tracking store never loses a finished result; a stopped run stops clean;
quick checks are recorded as such and never taken for full results."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import EXIT_FAILED, EXIT_TERMINATED
from bench.records import read_records

pytestmark = pytest.mark.slow

#: a quick demo run: few items, one seed, a short schedule, one HEAR grid point
SMALL = [
    "--limit",
    "24",
    "probe.seeds=[0]",
    "probe.lr_grid=[0.001]",
    "quick.max_steps=40",
    "runtime.progress=false",
    'task_options={"demo.instruments": {"grid_points": 1, "hidden_dim": 32}}',
]


def run_demo(demo_root: Path, workspace: Path, *extra: str, task: str | None = None) -> int:
    what = ["--task", task] if task else ["--suite", "demo"]
    argv = ["run", *what, "--data-root", str(demo_root), f"paths.workspace={workspace}"]
    return main([*argv, *SMALL, *extra])


def test_an_unexpected_error_fails_one_task_and_the_suite_goes_on(
    demo_root, tmp_path, monkeypatch, capsys
):
    from bench.protocols.base import PROTOCOLS

    hear_scene = PROTOCOLS.get("hear.scene")

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(hear_scene, "run", broken)
    workspace = tmp_path / "workspace"
    assert run_demo(demo_root, workspace, "tracking.enabled=false") == EXIT_FAILED
    out = capsys.readouterr().out
    assert (
        "FAILED demo.instruments on fbank_no_cmvn: while training the probes: "
        "RuntimeError: CUDA error: an illegal memory access" in out
    )
    assert "1 failed." in out and "tasks done" in out
    tasks = {r.task for r in read_records(workspace / "records")}
    assert "demo.instruments" not in tasks and {"demo.keywords", "demo.events"} <= tasks


def test_quick_results_are_recorded_as_such_and_kept_out_of_report_and_check(
    demo_root, tmp_path, capsys
):
    workspace = tmp_path / "workspace"
    assert run_demo(demo_root, workspace, "tracking.enabled=false", task="demo.keywords") == 0
    (record,) = read_records(workspace / "records")
    assert record.quick == {"items_per_split": 24, "max_steps": 40}
    assert max(record.data["items"].values()) <= 24 and record.probe["max_steps"] <= 40
    assert "QUICK" in capsys.readouterr().out

    settings = [f"paths.workspace={workspace}", "--format", "md"]
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), *settings]) == 2  # nothing full to report
    assert "no results" in capsys.readouterr().err
    assert main(["report", "--out", str(out), "--include-quick", *settings]) == 0
    assert "(quick)" in (out / "leaderboard.md").read_text()
    save = ["baseline", "save", "-u", "fbank_no_cmvn", "--out", str(tmp_path / "b.json")]
    assert main([*save, f"paths.workspace={workspace}"]) == 2
    assert "no full (non-quick) result" in capsys.readouterr().err


def test_a_store_that_cannot_be_used_keeps_the_record_and_bench_log_logs_it(
    demo_root, tmp_path, capsys
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    broken = f"tracking.uri=sqlite:///{blocker / 'mlflow.db'}"
    workspace = tmp_path / "workspace"
    assert run_demo(demo_root, workspace, broken, task="demo.keywords") == 0
    out = capsys.readouterr().out
    assert "the task runs untracked" in out and "`bench log` logs it" in out
    assert "next: `bench report` for the leaderboard; `bench log` once MLflow works" in out
    (record,) = read_records(workspace / "records")
    assert record.mlflow is None and record.score["mean"] is not None

    uri = f"sqlite:///{tmp_path / 'good' / 'mlflow.db'}"
    assert main(["log", "--tracking-uri", uri, f"paths.workspace={workspace}"]) == 0
    (record,) = read_records(workspace / "records")
    assert record.mlflow["status"] == "logged" and record.mlflow["tracking_uri"] == uri


def test_a_logging_failure_after_training_is_a_warning_and_the_rerun_finishes_the_run(
    demo_root, tmp_path, monkeypatch, capsys, mlflow_uri
):
    import bench.tracking

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    workspace = tmp_path / "workspace"
    tracked = f"tracking.uri={mlflow_uri}"
    with monkeypatch.context() as patch:
        patch.setattr(bench.tracking, "_log_into", disk_full)
        assert run_demo(demo_root, workspace, tracked, task="demo.keywords") == 0
    out = capsys.readouterr().out
    assert "No space left on device" in out and "`bench log` logs it" in out
    (record,) = read_records(workspace / "records")
    assert record.mlflow["status"] == "pending"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.get_run(record.mlflow["run_id"]).info.status == "FAILED"

    # The same command again: the record is reused and its run logged and finished
    assert run_demo(demo_root, workspace, tracked, task="demo.keywords") == 0
    (again,) = read_records(workspace / "records")
    assert again.mlflow["run_id"] == record.mlflow["run_id"]
    assert again.mlflow["status"] == "logged"
    assert client.get_run(record.mlflow["run_id"]).info.status == "FINISHED"


@contextmanager
def started(command: list[str]) -> Iterator[subprocess.Popen]:
    """A bench process in its own session; whatever the test's outcome, nothing of it is
    left running (the group is killed on the way out)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def bench_command(workspace: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "run", f"paths.workspace={workspace}", *extra]


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 600) -> None:
    """Poll ``condition`` while the process runs (generous timeout: CI machines are slow)."""
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}: {process.communicate()[1].decode()}")
        if time.time() > deadline:
            process.kill()
            pytest.fail(f"no {what} in {timeout} s: {process.communicate()[1].decode()}")
        time.sleep(0.1)


def test_sigterm_during_training_stops_clean_and_marks_the_mlflow_run_killed(demo_root, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = bench_command(
        tmp_path / "workspace",
        "--task",
        "demo.keywords",
        "--data-root",
        str(demo_root),
        f"tracking.uri={uri}",
        "runtime.progress=false",
        "probe.max_steps=100000",
        "probe.patience=100000",
    )
    with started(command) as process:
        stderr = _terminate_in_training(process, uri)
    assert process.returncode == EXIT_TERMINATED, stderr
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"
    assert not list((tmp_path / "workspace").glob("records/**/*.json"))


def _terminate_in_training(process: subprocess.Popen, uri: str) -> str:
    """SIGTERM once the task's MLflow run is RUNNING; the process's stderr."""

    def running() -> list:
        # Read-only SQL, not an MlflowClient: a client opened while bench creates the store
        # would create (or migrate) it too, and the two would race.
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            return []
        try:
            with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
                return db.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'").fetchall()
        except sqlite3.Error:  # the store is being created
            return []

    wait_for(running, process, "RUNNING MLflow run")
    time.sleep(1.0)  # into the training
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=600)[1].decode()


def test_sigterm_during_demo_data_generation_ends_the_generator_too(tmp_path):
    workspace = tmp_path / "workspace"
    command = bench_command(workspace, "--task", "demo.keywords", "tracking.enabled=false")
    generators: list[int] = []
    with started(command) as process:

        def generating() -> bool:
            generators[:] = children_of(process.pid)
            return bool(generators)

        wait_for(generating, process, "demo generator child process")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=600)
    assert process.returncode == EXIT_TERMINATED, stderr.decode()
    assert "terminated (SIGTERM)" in stderr.decode()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in generators) and time.time() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in generators if _alive(pid)]
    assert not alive, f"generator processes left running: {alive}"
    assert not list(workspace.glob("data/demo/speech_commands/*.wav"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_summary_labels_units_and_seeds_and_reports_ignored_options(
    demo_root, tmp_path, capsys
):
    workspace = tmp_path / "workspace"
    lr = "probe.lr_grid=[0.01]"  # the HEAR protocol sweeps its own grid
    assert run_demo(demo_root, workspace, "tracking.enabled=false", lr) == 0
    out = capsys.readouterr().out
    assert "one seed, no spread" in out and "±" not in out.split("bench results")[1].split("\n")[0]
    assert "accuracy (%)" in out and "top1_acc (0-1)" in out
    assert "probe.lr_grid is ignored by demo.instruments" in out
    assert "next: `bench report`" in out


def test_a_checkpoint_is_one_upstream_however_its_path_is_typed(
    demo_root, tmp_path, monkeypatch, capsys
):
    """``./x``, ``x`` and ``/abs/x`` are one upstream: the second spelling reuses the first
    run's record (nothing trained: every protocol refuses to run)."""
    import shutil

    from bench.protocols.base import PROTOCOLS

    checkpoint = tmp_path / "ckpts" / "tiny"
    shutil.copytree(Path(__file__).parent / "fixtures" / "spear" / "tiny", checkpoint)
    monkeypatch.chdir(tmp_path / "ckpts")
    workspace = tmp_path / "workspace"
    off = "tracking.enabled=false"
    assert run_demo(demo_root, workspace, off, "-u", "./tiny", task="demo.keywords") == 0
    (record,) = read_records(workspace / "records")
    assert record.upstream == str(checkpoint.resolve())

    def trained(*args, **kwargs):
        raise AssertionError("a probe was trained")

    with monkeypatch.context() as patch:
        for name in PROTOCOLS.names():
            patch.setattr(PROTOCOLS.get(name), "run", trained)
        for spelling in ("tiny", str(checkpoint), "../ckpts/tiny"):
            assert run_demo(demo_root, workspace, off, "-u", spelling, task="demo.keywords") == 0
    assert len(list(workspace.glob("records/**/*.json"))) == 1

    # --name records it under a name of the user's choice, same weights and source
    named = ["-u", "./tiny", "--name", "my-ckpt-step50k", off]
    assert run_demo(demo_root, workspace, *named, task="demo.keywords") == 0
    mine = {r.upstream: r for r in read_records(workspace / "records")}["my-ckpt-step50k"]
    assert mine.upstream_info["canonical"] == str(checkpoint.resolve())
    assert mine.metrics == record.metrics


def test_one_malformed_hear_task_dir_fails_alone(tmp_path, capsys):
    from hear_fakes import multiclass_dir

    tasks = tmp_path / "hear" / "tasks"
    multiclass_dir(tasks, per_class=3)
    broken = multiclass_dir(tasks, name="broken-v1-full", per_class=3)
    metadata = json.loads((broken / "task_metadata.json").read_text())
    metadata["evaluation"] = 5
    (broken / "task_metadata.json").write_text(json.dumps(metadata))
    argv = [
        "run",
        "--suite",
        "hear",
        "-u",
        "fbank_no_cmvn",
        "--data-root",
        str(tmp_path / "hear"),
        f"paths.workspace={tmp_path / 'workspace'}",
        "tracking.enabled=false",
        "runtime.progress=false",
        "probe.seeds=[0]",
        "probe.max_steps=4",
        "probe.eval_every=2",
    ]
    assert main(argv) == EXIT_FAILED
    out = capsys.readouterr().out
    failure = next(line for line in out.splitlines() if line.startswith("FAILED"))
    assert str(broken / "task_metadata.json") in failure and "evaluation" in failure
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.task == "hear/toyscene-v1-full"
