"""`bench run --suite hear` through the CLI and runner: every task dir found is run and logged."""

import pytest
from hear_fakes import event_dir, kfold_dir, multiclass_dir

from bench.cli import main
from bench.records import read_records

pytestmark = pytest.mark.slow


def test_hear_suite_runs_every_task_dir_it_finds(tmp_path, mlflow_uri):
    tasks = tmp_path / "hear" / "tasks"
    kfold_dir(tasks, per_class=3)  # a known task: hear.esc50 (5 folds)
    multiclass_dir(tasks, per_class=4)  # unknown: the generic task
    event_dir(tasks, files=4)  # hear.dcase2016_task2, timestamp protocol
    argv = [
        "run",
        "--suite",
        "hear",
        "--upstream",
        "fbank_no_cmvn",
        "--data-root",
        str(tmp_path / "hear"),
        f"paths.workspace={tmp_path / 'workspace'}",
        f"tracking.uri={mlflow_uri}",
        "runtime.progress=false",
        "probe.seeds=[0]",
        "probe.max_steps=6",
        "probe.eval_every=2",
        "probe.patience=2",
    ]
    assert main(argv) == 0
    records = {record.task: record for record in read_records(tmp_path / "workspace" / "records")}
    # a generic task directory is recorded by its name, never as plain "hear"
    assert set(records) == {"hear.esc50", "hear.dcase2016_task2", "hear/toyscene-v1-full"}
    assert records["hear.esc50"].main_metric == "top1_acc"
    assert len(records["hear.esc50"].metrics["test"]["top1_acc"]["values"]) == 5  # one per fold
    assert records["hear.dcase2016_task2"].main_metric == "event_onset_200ms_fms"
    assert records["hear/toyscene-v1-full"].data["root"].endswith("toyscene-v1-full")
    assert records["hear/toyscene-v1-full"].suite == "hear"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    for record in records.values():
        run = client.get_run(record.mlflow["run_id"])
        assert run.info.run_name == f"fbank_no_cmvn/{record.task} #{record.digest[:8]}"
        assert run.data.tags["bench.identity"] == record.digest
        assert client.get_experiment(run.info.experiment_id).name == "bench/hear"
