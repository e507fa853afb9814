"""Tracking never loses a result: records first, MLflow failures are warnings, `bench log`
re-logs, the SQLite store is created under a lock and a half-migrated one is repaired."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _records import make_record

from bench.cli import main
from bench.records import RecordStore, read_records, write_record
from bench.tracking import (
    TrackingError,
    end_stale_runs,
    experiment_name,
    log_record,
    open_client,
    relog,
)


def fresh_uri(tmp_path: Path, name: str = "mlflow.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def half_migrate(database: Path) -> None:
    """What an interrupted schema upgrade leaves: an older schema revision recorded and an
    ``_alembic_tmp_`` copy of a table (SQLite migrations copy, drop and rename tables)."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    head = ScriptDirectory.from_config(_get_alembic_config(db_url="")).get_revision(
        _get_latest_schema_revision()
    )
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (head.down_revision,))
        connection.execute("CREATE TABLE _alembic_tmp_tags AS SELECT * FROM tags")


def test_a_half_migrated_store_without_runs_is_set_aside_and_made_again(tmp_path):
    uri = fresh_uri(tmp_path)
    open_client(uri)
    half_migrate(tmp_path / "mlflow.db")
    from mlflow.tracking import MlflowClient

    with pytest.raises(Exception, match="schema"):  # MLflow alone refuses it, for good
        MlflowClient(tracking_uri=f"{uri}?fresh=1").search_experiments()
    client = open_client(uri)
    client.create_experiment("bench/works-again")
    assert [p.name for p in tmp_path.glob("mlflow.db.half-migrated-*")]


def test_a_half_migrated_store_with_runs_is_explained_not_touched(tmp_path):
    uri = fresh_uri(tmp_path)
    log_record(make_record("u", "superb.ks", [90.0]), uri, "")
    half_migrate(tmp_path / "mlflow.db")
    before = (tmp_path / "mlflow.db").read_bytes()
    with pytest.raises(TrackingError, match=r"half-migrated .*holds 1 runs.*bench log"):
        open_client(uri)
    assert (tmp_path / "mlflow.db").read_bytes() == before


def test_processes_creating_one_fresh_store_at_once_all_succeed(tmp_path):
    uri = fresh_uri(tmp_path)
    code = (
        "import sys; from bench.tracking import open_client; "
        "open_client(sys.argv[1]).create_experiment('bench/' + sys.argv[2])"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, uri, str(i)], stderr=subprocess.PIPE)
        for i in range(3)
    ]
    errors = [p.communicate()[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    names = {e.name for e in open_client(uri).search_experiments()}
    assert {"bench/0", "bench/1", "bench/2"} <= names


def test_runs_of_dead_processes_are_marked_killed(tmp_path):
    client = open_client(fresh_uri(tmp_path))
    experiment = client.create_experiment("bench/stale")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    tags = {"bench.host": socket.gethostname()}
    stale = client.create_run(experiment, tags={**tags, "bench.pid": dead.stdout.decode().strip()})
    alive = client.create_run(experiment, tags={**tags, "bench.pid": str(os.getpid())})
    assert end_stale_runs(client, experiment) == 1
    assert client.get_run(stale.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"


def test_bench_log_logs_records_whose_logging_failed_and_nothing_twice(tmp_path, capsys):
    records = tmp_path / "workspace" / "records"
    write_record(records, make_record("u", "superb.ks", [90.0, 91.0]))
    write_record(records, make_record("u", "superb.ic", [70.0]))
    uri = fresh_uri(tmp_path)
    argv = ["log", "--tracking-uri", uri, f"paths.workspace={records.parent}"]
    assert main(argv) == 0
    assert "logged 2 record(s)" in capsys.readouterr().out
    logged = {r.task: r for r in read_records(records)}
    assert {r.mlflow["status"] for r in logged.values()} == {"logged"}
    run = open_client(uri).get_run(logged["superb.ks"].mlflow["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] == 90.5
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "logged 0 record(s)" in again and "2 were already there" in again


def test_relog_finishes_a_run_cut_short_in_its_own_run(tmp_path):
    uri = fresh_uri(tmp_path)
    client = open_client(uri)
    experiment = client.create_experiment(experiment_name("superb"))
    cut = client.create_run(experiment)  # created, then the process died before logging
    record = make_record("u", "superb.ks", [90.0, 92.0])
    record.mlflow = {
        "tracking_uri": uri,
        "experiment": "bench/superb",
        "run_id": cut.info.run_id,
        "status": "pending",
    }
    store = RecordStore(tmp_path / "records")
    path = store.write(record)
    (stored,) = store.runs()
    assert relog(stored, store, uri) == []
    run = client.get_run(cut.info.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] == 91.0
    assert read_records(tmp_path / "records")[0].mlflow["status"] == "logged"
    assert path.is_file()


def test_trials_become_nested_runs_with_their_dev_curves(tmp_path):
    uri = fresh_uri(tmp_path)
    record = make_record("u", "superb.ks", [90.0])
    record.trials = [
        {
            "lr": 0.001,
            "seed": 0,
            "fold": "main",
            "dev_accuracy": 80.0,
            "curve": [[10, 50.0], [20, 80.0]],
        },
        {"lr": 0.01, "seed": 0, "fold": "main", "dev_accuracy": 70.0},  # no curve: no steps
    ]
    link = log_record(record, uri, "")
    client = open_client(uri)
    parent = client.get_run(link["run_id"])
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    by_lr = {child.data.params["lr"]: child for child in children}
    assert sorted(by_lr) == ["0.001", "0.01"]
    history = client.get_metric_history(by_lr["0.001"].info.run_id, "dev_accuracy_curve")
    assert [(m.step, m.value) for m in history] == [(10, 50.0), (20, 80.0)]
    assert client.get_metric_history(by_lr["0.01"].info.run_id, "dev_accuracy_curve") == []
    assert by_lr["0.01"].data.metrics["dev_accuracy"] == 70.0
    # a probe trained within its task's run: never ending after it
    parent = client.get_run(link["run_id"])
    for child in children:
        assert child.info.start_time == parent.info.start_time
        assert child.info.end_time == parent.info.end_time
