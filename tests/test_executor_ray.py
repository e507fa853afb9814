"""executor=ray on a real local Ray: the same records as the local executor, bit for bit,
a Ray that listens on 127.0.0.1 only, killed workers retried, re-runs resumed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from _executors import SETTINGS, TASKS, results, run_demo, shard_digests

from bench.records import read_records

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_spec("ray") is None,
        reason="Ray is not installed (pip install -e '.[ray]'); the ray executor is not tested",
    ),
]


@pytest.fixture(scope="module")
def local_ray():
    """A Ray of two CPUs, started as bench starts one (ray.address null)."""
    from bench.executors.ray import import_ray, start_local_ray

    context = start_local_ray(num_cpus=2)
    yield context
    import_ray().shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, demo_root, mlflow_uri) -> Path:
    """The demo tasks through the local executor."""
    workspace = tmp_path_factory.mktemp("local") / "workspace"
    assert run_demo(workspace, demo_root, mlflow_uri) == 0
    return workspace


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_local_ray_listens_on_loopback_only_and_has_no_dashboard(local_ray):
    assert local_ray.address_info["node_ip_address"] == "127.0.0.1"
    try:
        listing = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("ss (iproute2) is not available to list listening sockets")
    ours = descendants(os.getpid())
    sockets = []
    for line in listing.stdout.splitlines():
        pids = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
        if pids & ours:
            sockets.append((line.split()[4], re.findall(r'\("([^"]+)"', line)))
    names = {name for _, found in sockets for name in found}
    assert {"gcs_server", "raylet"} <= names, sockets  # Ray's servers were found
    for address, owner in sockets:
        host = address.rsplit(":", 1)[0].strip("[]")
        assert host in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), (address, owner)
    assert not any("dashboard" in name.lower() and "agent" not in name.lower() for name in names)


def test_ray_gives_the_local_records_bit_for_bit(
    local_ray, reference, demo_root, mlflow_uri, tmp_path
):
    workspace = tmp_path / "workspace"
    assert run_demo(workspace, demo_root, mlflow_uri, "executor=ray", "work.cpus=1") == 0
    assert set(results(workspace)) == set(TASKS)
    assert results(workspace) == results(reference)
    # every shard written by several workers into one cache is the local one, byte for byte
    assert shard_digests(workspace) == shard_digests(reference)
    assert not list((workspace / "work").glob("**/*.json")), "outcomes left after the records"

    # the same command again: every record is reused, no unit is submitted
    records = sorted((workspace / "records").glob("**/*.json"))
    assert run_demo(workspace, demo_root, mlflow_uri, "executor=ray") == 0
    assert sorted((workspace / "records").glob("**/*.json")) == records


class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the worker of this process's Ray running each unit named (Ray titles
    a worker's process ``ray::<task name>``), in order, ``after`` seconds into the unit."""

    def __init__(self, titles: list[tuple[str, float]]):
        super().__init__(daemon=True)
        self.titles, self.killed, self.stop = titles, [], threading.Event()

    def run(self) -> None:
        for title, after in self.titles:
            while not self.stop.is_set():
                pid = self._find(title)
                if pid is not None:
                    time.sleep(after)
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(title)
                    break
                time.sleep(0.02)

    @staticmethod
    def _find(title: str) -> int | None:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                found = cmdline.read_bytes().startswith(f"ray::{title}".encode())
            except OSError:
                continue
            # only this process's Ray: pytest-xdist may run another test's Ray beside it
            if found and int(cmdline.parent.name) in descendants(os.getpid()):
                return int(cmdline.parent.name)
        return None


def test_killed_workers_mid_shard_and_mid_probe_give_the_same_metrics(
    local_ray, reference, demo_root, mlflow_uri, tmp_path
):
    # Shard 4 of 7 runs on a worker that has built the upstream already (units 0 and 1
    # started the two workers), so it dies extracting; the sweep dies a second into it.
    killer = WorkerKiller(
        [
            ("extraction of demo.keywords (fbank_no_cmvn), shard 4", 0.0),
            ("probes of demo.keywords", 1.0),
        ]
    )
    killer.start()
    workspace = tmp_path / "workspace"
    try:
        code = run_demo(workspace, demo_root, mlflow_uri, "executor=ray", tasks=("demo.keywords",))
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed == [title for title, _ in killer.titles], "both should have died"
    assert code == 0
    assert results(workspace)["demo.keywords"] == results(reference)["demo.keywords"]


def test_a_trained_probe_unit_is_not_trained_again(
    local_ray, reference, demo_root, mlflow_uri, tmp_path, capsys
):
    """The driver stopped after a probe unit wrote its outcome, before the record: the
    re-run records that outcome and trains nothing."""
    from bench.config import load_config
    from bench.executors.distributed import worker_context
    from bench.runner import Runner
    from bench.task import TaskRun
    from bench.work_units import extract_shards, extraction_units, probe_unit, train_probes

    workspace = tmp_path / "workspace"
    config = load_config(
        overrides=[
            f"paths.workspace={workspace}",
            "tracking.enabled=false",
            *SETTINGS,
        ]
    )
    runner = Runner(config)
    plan = runner.plan(TaskRun("demo.keywords", demo_root), "fbank_no_cmvn")
    context = worker_context(config, "fbank_no_cmvn", None)
    for unit in extraction_units(plan, context, 1):  # the units, run here as a worker would
        assert extract_shards(unit).error is None
    assert train_probes(probe_unit(plan, context)).error is None
    capsys.readouterr()
    code = run_demo(workspace, demo_root, mlflow_uri, "executor=ray", tasks=("demo.keywords",))
    assert code == 0
    log = capsys.readouterr().err
    assert "its probes were trained by an earlier run" in log
    assert "extraction unit" not in log  # the cache was complete too
    assert results(workspace)["demo.keywords"] == results(reference)["demo.keywords"]


def test_a_streamed_task_runs_its_encoder_in_the_probe_unit(
    local_ray, demo_root, mlflow_uri, tmp_path, capsys
):
    """Frames streamed from the encoder (no cache): no extraction unit, the probe unit
    builds the upstream and gives the local run's probes."""
    stream = ("extract.sequence_source=stream", "probe.max_steps=60")
    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert run_demo(local, demo_root, mlflow_uri, *stream, tasks=("demo.digits",)) == 0
    capsys.readouterr()
    code = run_demo(
        distributed, demo_root, mlflow_uri, *stream, "executor=ray", tasks=("demo.digits",)
    )
    assert code == 0
    assert "extraction unit" not in capsys.readouterr().err
    (record,) = read_records(distributed / "records")
    assert record.data["frames"]["source"] == "stream" and record.data["cache"] is None
    assert record.timings["forward_s"] > 0  # the encoder ran inside the probe unit
    assert results(distributed) == results(local)
