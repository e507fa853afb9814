"""Probes trained side by side in threads: same numbers as one after another, results in
job order, failures raised, torch's thread count restored."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _fakes import MemoryFeatures
from hear_fakes import FakeFeatureStore, event_dir, multiclass_dir, quick_settings
from test_protocols import SETTINGS, ToyFrameTask, ToyTask, make_items, pooled_features

from bench.data import Item, TaskData
from bench.hear.predictor import SeededDropout
from bench.parallel import (
    map_parallel,
    probe_workers,
    raise_if_cancelled,
    single_threaded_torch,
)
from bench.protocols.base import PROTOCOLS, ProbeOutcome, UpstreamInfo
from bench.protocols.frame import FrameClassification
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


def frame_sweep_data() -> tuple[TaskData, MemoryFeatures]:
    rng = np.random.default_rng(0)
    splits, sequences = {}, {}
    for split, n in (("train", 30), ("dev", 10), ("test", 10)):
        splits[split] = []
        for i in range(n):
            onset, label = rng.uniform(0.1, 0.8), ["up", "down"][i % 2]
            key = f"{split}{i}"
            splits[split].append(Item(key, Path(f"{key}.wav"), [(onset, onset + 0.4, label)]))
            frames = rng.standard_normal((60 + i, 2, 4)).astype(np.float16)
            centres = (np.arange(len(frames)) + 0.5) / 50.0
            frames[(centres >= onset) & (centres < onset + 0.4), 0, i % 2] += 3
            sequences[key] = frames
    return TaskData(splits=splits, vocabulary={"label": ["up", "down"]}), MemoryFeatures(
        sequences=sequences
    )


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """Busy processes competing for the cores while the block runs."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_sweeps_are_bit_identical_for_any_threads_workers_and_load(tmp_path: Path) -> None:
    """Issue 16: a rerun must give the same bits on any core count and load. Each protocol
    family (utterance, frame, HEAR) runs on 1 thread with 1 worker, on 2 threads with 2,
    and on 2 threads with 3 workers while other processes load the CPU."""
    rng = np.random.default_rng(0)
    splits = {n: make_items(k, 4, n, rng) for n, k in (("train", 120), ("dev", 40), ("test", 40))}
    pooled = TaskData(splits=splits, vocabulary={"label": ["c0", "c1", "c2", "c3"]})
    pooled_store = pooled_features(pooled.all_items(), True, rng)
    frames, frame_store = frame_sweep_data()
    root = multiclass_dir(tmp_path, per_class=6)
    hear_store = FakeFeatureStore(informative=True)

    def run(threads: int, workers: int) -> list[ProbeOutcome]:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            settings = dataclasses.replace(SETTINGS, max_steps=100, eval_every=25, workers=workers)
            utterance = UtteranceClassification().run(
                ToyTask(None), pooled, pooled_store, UpstreamInfo("toy", 3, 6, 50.0), settings
            )
            frame = FrameClassification().run(
                ToyFrameTask(None), frames, frame_store, UpstreamInfo("toy", 2, 4, 50.0),
                dataclasses.replace(settings, batch_size=4),
            )  # fmt: skip
            task = TASKS.get("hear")(root, {"hidden_dim": 32})
            hear = PROTOCOLS.get(task.protocol)().run(
                task, task.load(), hear_store, hear_store.upstream,
                quick_settings(seeds=(0, 1), max_steps=9, workers=workers),
            )  # fmt: skip
            return [utterance, frame, without_timings(hear)]
        finally:
            torch.set_num_threads(previous)

    reference = run(threads=1, workers=1)
    assert run(threads=2, workers=2) == reference
    with cpu_load(2):
        assert run(threads=2, workers=3) == reference
