"""MLflow server mode: a run logged to `mlflow server` through MLFLOW_TRACKING_URI, and the
report made from the server alone (the JSON records deleted first)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pandas as pd
import pytest

from bench.cli import main
from bench.records import read_records

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and one worker; always stopped."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    with open(folder / "server.log", "wb") as log:
        # its own process group: the finalizer stops the server and every worker it forked
        server = subprocess.Popen(
            command, cwd=folder, env=environment, stdout=log, stderr=log, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(folder / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_run_against_a_server_and_report_from_it(
    mlflow_server, demo_root, fast_overrides, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    overrides = [o for o in fast_overrides if not o.startswith("tracking.uri")]
    run = [
        "run",
        "--task",
        "demo.keywords",
        "--upstream",
        "mfcc_no_cmvn",
        "--data-root",
        str(demo_root),
    ]
    assert main([*run, *overrides]) == 0
    records = tmp_path / "workspace" / "records"
    (record,) = read_records(records)
    assert record.mlflow["tracking_uri"] == mlflow_server
    assert record.mlflow["status"] == "logged"
    accuracy = record.metrics["test"]["accuracy"]["mean"]
    shutil.rmtree(records)  # the report must come from the server

    out = tmp_path / "report"
    capsys.readouterr()
    argv = ["report", "--source", "mlflow", "--out", str(out), "--format", "csv,md"]
    assert main([*argv, *overrides]) == 0
    tidy = pd.read_csv(out / "leaderboard.csv")
    cell = tidy[
        (tidy["upstream"] == "mfcc_no_cmvn") & (tidy["task"] == "demo.keywords") & tidy["is_main"]
    ]
    assert cell["source"].item() == "mlflow"
    assert cell["mean"].item() == pytest.approx(accuracy)
    assert cell["n"].item() == 1
    assert f"MLflow at {mlflow_server}" in (out / "leaderboard.md").read_text()

    # --tracking-uri alone reads the server too (and only it)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    argv = ["report", "--tracking-uri", mlflow_server, "--out", str(out), "--format", "md"]
    assert main([*argv, *overrides]) == 0
    assert "| mfcc_no_cmvn |" in (out / "leaderboard.md").read_text()
