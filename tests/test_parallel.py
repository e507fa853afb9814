"""Probes trained side by side in threads: same numbers as one after another, results in
job order, failures raised, torch's thread count restored."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hear_fakes import FakeFeatureStore, event_dir, multiclass_dir, quick_settings
from test_protocols import SETTINGS, ToyTask, make_items, pooled_features

from bench.data import TaskData
from bench.hear.predictor import SeededDropout
from bench.parallel import (
    map_parallel,
    probe_workers,
    raise_if_cancelled,
    single_threaded_torch,
)
from bench.protocols.base import PROTOCOLS, ProbeOutcome, UpstreamInfo
from bench.protocols.utterance import UtteranceClassification
from bench.task import TASKS


def test_results_come_back_in_job_order_and_progress_counts_every_job() -> None:
    done: list[int] = []
    lock = threading.Lock()

    def slow_square(x: int) -> int:
        time.sleep(0.02 * (5 - x))  # later jobs finish first
        return x * x

    def tick() -> None:
        with lock:
            done.append(1)

    assert map_parallel(slow_square, [1, 2, 3, 4], workers=2, on_done=tick) == [1, 4, 9, 16]
    assert len(done) == 4


def test_a_failure_is_raised_and_torch_threads_are_restored() -> None:
    before = torch.get_num_threads()

    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("job 3 failed")
        return x

    with pytest.raises(ValueError, match="job 3 failed"):
        map_parallel(fail_on_three, [1, 2, 3, 4, 5], workers=2)
    assert torch.get_num_threads() == before


def test_a_failure_stops_running_siblings_at_their_next_step() -> None:
    steps: list[int] = []

    def job(kind: str) -> str:
        if kind == "fail":
            time.sleep(0.05)
            raise RuntimeError("probe diverged")
        for step in range(10_000):  # a long training, checking between steps
            raise_if_cancelled()
            steps.append(step)
            time.sleep(0.001)
        return "finished"

    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="probe diverged"):
        map_parallel(job, ["train", "fail", "train"], workers=2)
    assert time.perf_counter() - started < 5  # not the ~10 s the long job would take
    assert 0 < len(steps) < 10_000
    raise_if_cancelled()  # no stop left over for later sweeps


def test_workers_default_to_cpu_threads_and_one_on_a_gpu() -> None:
    assert probe_workers(None, "cpu") == torch.get_num_threads()
    assert probe_workers(None, "cuda:0") == 1
    assert probe_workers(3, "cpu") == 3
    with pytest.raises(ValueError, match="at least 1"):
        probe_workers(0, "cpu")


def test_seeded_dropout_is_reproducible_and_scales_kept_units() -> None:
    dropout = SeededDropout(0.5)
    inputs = torch.ones(4, 1000)
    dropout.generator = torch.Generator().manual_seed(7)
    first = dropout(inputs)
    dropout.generator = torch.Generator().manual_seed(7)
    assert torch.equal(first, dropout(inputs))
    assert set(first.unique().tolist()) == {0.0, 2.0}  # kept units scaled by 1 / (1 - p)
    assert 0.4 < (first == 0).float().mean() < 0.6
    assert torch.equal(dropout.eval()(inputs), inputs)


def sequential_and_parallel(run) -> tuple[ProbeOutcome, ProbeOutcome]:
    """``run(workers)`` with one probe at a time, then two at a time; on one thread
    throughout, so that scoring after training (on the caller's threads) matches too."""
    with single_threaded_torch():
        return run(1), run(2)


def without_timings(outcome: ProbeOutcome) -> ProbeOutcome:
    trials = [{k: v for k, v in t.items() if k != "seconds"} for t in outcome.trials]
    return dataclasses.replace(outcome, trials=trials)


def test_superb_sweep_gives_identical_results_in_parallel() -> None:
    rng = np.random.default_rng(0)
    splits = {
        name: make_items(n, 4, name, rng) for name, n in (("train", 200), ("dev", 60), ("test", 60))
    }
    data = TaskData(splits=splits, vocabulary={"label": ["c0", "c1", "c2", "c3"]})
    features = pooled_features(data.all_items(), True, rng)

    def run(workers: int) -> ProbeOutcome:
        settings = dataclasses.replace(SETTINGS, max_steps=150, workers=workers)
        return UtteranceClassification().run(
            ToyTask(None), data, features, UpstreamInfo("toy", 3, 6, 50.0), settings
        )

    sequential, parallel = sequential_and_parallel(run)
    assert len(sequential.trials) == 4
    assert sequential == parallel


def scene_task(root: Path) -> tuple[str, Path]:
    return "hear", multiclass_dir(root, per_class=6)


def event_task(root: Path) -> tuple[str, Path]:
    event_dir(root, files=4)
    return "hear.dcase2016_task2", root


@pytest.mark.parametrize("make_task", [scene_task, event_task])
def test_hear_grid_and_folds_give_identical_results_in_parallel(tmp_path: Path, make_task) -> None:
    task_name, root = make_task(tmp_path)
    store = FakeFeatureStore(informative=True)

    def run(workers: int) -> ProbeOutcome:
        task = TASKS.get(task_name)(root, {"hidden_dim": 32})
        protocol = PROTOCOLS.get(task.protocol)()
        settings = quick_settings(seeds=(0, 1), max_steps=9, workers=workers)
        return without_timings(protocol.run(task, task.load(), store, store.upstream, settings))

    sequential, parallel = sequential_and_parallel(run)
    assert [t["phase"] for t in sequential.trials] == ["grid"] * 8 + ["fold"]
    assert sequential == parallel
