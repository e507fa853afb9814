"""End to end through the CLI on the generated demo suite."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.records import read_records

pytestmark = pytest.mark.slow


def records_by_task(workspace: Path) -> dict:
    return {record.task: record for record in read_records(workspace / "records")}


def record_files(workspace: Path) -> list[Path]:
    return sorted((workspace / "records").glob("**/*.json"))


def refuse_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every protocol's ``run`` fails: a command that trains anything then fails."""
    from bench.protocols.base import PROTOCOLS

    def trained(*args, **kwargs):
        raise AssertionError("a probe was trained")

    for name in PROTOCOLS.names():
        monkeypatch.setattr(PROTOCOLS.get(name), "run", trained)


def test_demo_suite_end_to_end(
    demo_root, fast_overrides, tmp_path, mlflow_uri, capsys, monkeypatch
):
    argv = ["run", "--suite", "demo", "--data-root", str(demo_root), *fast_overrides]
    assert main(argv) == 0
    workspace = tmp_path / "workspace"
    records = records_by_task(workspace)
    assert set(records) == {"demo.keywords", "demo.instruments", "demo.events", "demo.digits"}
    chance = {"demo.keywords": 100 / 12, "demo.instruments": 1 / 5, "demo.events": 100 / 3}
    trivial = {"demo.digits": 100.0}  # PER of an always-blank output
    for task, record in records.items():
        assert record.upstream == "fbank_no_cmvn"
        if record.higher_is_better:
            assert record.score["mean"] > 2 * chance[task], (task, record.score)
        else:
            assert record.score["mean"] < trivial[task], (task, record.score)
        assert record.layer_weights == [1.0]
        assert record.upstream_info["weights_hash"] and record.versions["torch"]
        assert record.config["probe"]["seeds"] == [0]
        assert record.identity["task"] == task and record.quick is None
        assert record.mlflow["status"] == "logged"
    for path in record_files(workspace):  # strict JSON on disk
        json.loads(
            path.read_text(), parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}")
        )

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("bench/demo")
    for task, record in records.items():
        run = client.get_run(record.mlflow["run_id"])
        assert run.info.run_name == f"fbank_no_cmvn/{task} #{record.digest[:8]}"
        assert run.info.status == "FINISHED"
        assert (
            run.data.tags["bench.task"] == task
            and run.data.tags["bench.identity"] == record.digest
            and run.info.experiment_id == experiment.experiment_id
        )
        assert run.data.metrics[f"test_{record.main_metric}"] == pytest.approx(record.score["mean"])
        assert float(run.data.params["selected.lr"]) == record.selected["lr"]
        # the run lasted as long as the task (started when it started), not a fraction of a second
        duration_s = (run.info.end_time - run.info.start_time) / 1000
        assert duration_s >= 0.9 * record.timings["total_s"]
        # every trained probe is a nested run
        children = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'",
        )
        assert len(children) == len(record.trials) > 0

    def parent_runs() -> int:
        runs = client.search_runs([experiment.experiment_id], max_results=5000)
        return sum("mlflow.parentRunId" not in r.data.tags for r in runs)

    # The same command again: every identity has a complete record, so nothing is trained
    # (every protocol refuses to run), logged or written again.
    files, logged = record_files(workspace), parent_runs()
    capsys.readouterr()
    with monkeypatch.context() as patch:
        refuse_training(patch)
        assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.count("reusing the complete record") == len(records)
    assert captured.out.count("reused") >= len(records)
    assert record_files(workspace) == files and parent_runs() == logged

    # --rerun trains again from the cached features, to identical metrics; both kept
    assert main([*argv, "--rerun"]) == 0
    assert len(record_files(workspace)) == 2 * len(files) and parent_runs() == logged + len(records)
    again = records_by_task(workspace)
    for task, record in records.items():
        assert again[task].digest == record.digest
        assert again[task].metrics == record.metrics
        assert again[task].timings["extract_s"] == 0.0

    # --overwrite keeps only the newest record of each identity
    assert main([*argv, "--overwrite"]) == 0
    assert len(record_files(workspace)) == len(files)


def test_fbank_with_cmvn_is_at_chance_on_mean_pooled_keywords(
    demo_root, fast_overrides, tmp_path, capsys
):
    """SUPERB's FBANK KS row: per-utterance CMVN leaves mean pooling nothing to see, and the
    run says so."""
    assert (
        main(
            [
                "run",
                "--task",
                "demo.keywords",
                "--upstream",
                "fbank",
                "--data-root",
                str(demo_root),
                *fast_overrides,
                "tracking.enabled=false",
            ]
        )
        == 0
    )
    record = records_by_task(tmp_path / "workspace")["demo.keywords"]
    assert record.score["mean"] < 15  # one class of 12: 8.3%
    out = capsys.readouterr().out
    assert "is the same for every item" in out and "at chance by construction" in out
    assert "use its _no_cmvn variant" in out


def test_killed_extraction_resumes_to_the_same_metrics(demo_root, fast_overrides, tmp_path):
    overrides = [o for o in fast_overrides if not o.startswith("paths.workspace")]
    overrides += ["tracking.enabled=false", "extract.shard_seconds=15"]

    def command(workspace: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--task",
            "demo.keywords",
            "--data-root",
            str(demo_root),
            f"paths.workspace={workspace}",
            *overrides,
        ]

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        command(interrupted),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not list(interrupted.glob("cache/*/*/shard-00002.json")):
        assert process.poll() is None, "the run finished before it could be interrupted"
        assert time.time() < deadline, "no shard was written in time"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    cache_dir = next(interrupted.glob("cache/*/*"))
    done = len(list(cache_dir.glob("shard-*.json")))
    plan = json.loads((cache_dir / "plan.json").read_text())
    assert 0 < done < len(plan), "the kill should land in the middle of extraction"
    assert not list(interrupted.glob("records/**/*.json")), "no record for an unfinished run"

    subprocess.run(command(interrupted), check=True, capture_output=True)
    subprocess.run(command(tmp_path / "uninterrupted"), check=True, capture_output=True)
    resumed = records_by_task(interrupted)["demo.keywords"]
    reference = records_by_task(tmp_path / "uninterrupted")["demo.keywords"]
    assert resumed.metrics == reference.metrics


def test_corrupt_audio_fails_the_task_and_names_the_file(
    demo_root, fast_overrides, tmp_path, capsys
):
    copy = tmp_path / "demo"
    shutil.copytree(demo_root / "hear", copy / "hear")
    broken = next(
        (copy / "hear" / "demo_instruments-v1.0.0-full" / "16000" / "train").glob("*.wav")
    )
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    code = main(
        [
            "run",
            "--task",
            "demo.instruments",
            "--data-root",
            str(copy),
            *fast_overrides,
            "tracking.enabled=false",
        ]
    )
    assert code == 1
    output = capsys.readouterr()
    assert f"{broken}: cannot read audio" in output.err
    assert not list((tmp_path / "workspace").glob("records/**/*.json"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--task", "demo.keyword"],
            "unknown task 'demo.keyword'. Did you mean: demo.keywords",
        ),
        (
            ["run", "--task", "demo.keywords", "--upstream", "fbank_nocmvn"],
            "Did you mean: fbank_no_cmvn",
        ),
        (["run", "--suite", "demo", "probe.sedes=[1]"], "Key 'sedes' not in 'ProbeConfig'"),
        (["run", "--suite", "dem"], "unknown suite 'dem'"),
    ],
)
def test_bad_input_is_one_clear_error(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "tracking.enabled=false"] if "probe.sedes=[1]" not in argv else argv) == 2
    assert message in capsys.readouterr().err


def test_demo_digits_beats_an_always_blank_output_by_far(demo_root, tmp_path, mlflow_uri):
    """demo.digits with its own schedule (one seed): PER far below the 100 % of no output."""
    argv = ["run", "--task", "demo.digits", "--data-root", str(demo_root), "probe.seeds=[0]"]
    argv += [
        f"paths.workspace={tmp_path / 'ws'}",
        f"tracking.uri={mlflow_uri}",
        "runtime.progress=false",
    ]
    assert main(argv) == 0
    record = records_by_task(tmp_path / "ws")["demo.digits"]
    assert record.score["mean"] < 50, record.score
    assert record.selected["lr"] in (1e-2, 3e-2)
