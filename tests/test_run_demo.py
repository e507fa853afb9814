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


def test_demo_suite_end_to_end(demo_root, fast_overrides, tmp_path, mlflow_uri, capsys):
    argv = ["run", "--suite", "demo", "--data-root", str(demo_root), *fast_overrides]
    assert main(argv) == 0
    records = records_by_task(tmp_path / "workspace")
    assert set(records) == {"demo.keywords", "demo.instruments", "demo.events", "demo.qbe"}
    chance = {"demo.keywords": 100 / 12, "demo.instruments": 1 / 5, "demo.events": 100 / 3}
    assert records["demo.qbe"].score["mean"] > 0.2  # MTWV; detecting nothing scores 0
    for task, record in records.items():
        assert record.upstream == "fbank_no_cmvn"
        assert record.score["mean"] > 2 * chance.get(task, 0.0), (task, record.score)
        assert record.layer_weights == [1.0]
        assert record.upstream_info["weights_hash"] and record.versions["torch"]
        assert record.config["probe"]["seeds"] == [0]
        # strict JSON on disk
        path = tmp_path / "workspace" / "records" / "fbank_no_cmvn" / f"{task}.json"
        json.loads(
            path.read_text(), parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}")
        )

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("bench/demo")
    for task, record in records.items():
        run = client.get_run(record.mlflow["run_id"])
        assert run.info.run_name == f"fbank_no_cmvn/{task}"
        assert (
            run.data.tags["bench.task"] == task
            and run.info.experiment_id == experiment.experiment_id
        )
        assert run.data.metrics[f"test_{record.main_metric}"] == pytest.approx(record.score["mean"])
        if "lr" in record.selected:  # demo.qbe trains nothing
            assert float(run.data.params["selected.lr"]) == record.selected["lr"]

    # The same command again: features come from the cache and metrics are identical.
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().err.count("are cached") == 4
    again = records_by_task(tmp_path / "workspace")
    for task, record in records.items():
        assert again[task].metrics == record.metrics
        assert again[task].timings["extract_s"] == 0.0


def test_fbank_with_cmvn_is_at_chance_on_mean_pooled_keywords(demo_root, fast_overrides, tmp_path):
    """SUPERB's FBANK KS row: per-utterance CMVN leaves mean pooling nothing to see."""
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
    assert not list(interrupted.glob("records/*/*.json")), "no record for an unfinished run"

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
    assert not list((tmp_path / "workspace").glob("records/*/*.json"))


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
