"""Fault injection: kills, signals, corrupt and swapped shards, full disks, concurrent first use.

Every trial asserts the same thing: after the fault, bench either says clearly that
something is wrong or gives the result of an uninterrupted run, bit for bit; a shard it
calls complete is always the right one, and what a killed process left behind is cleaned
up when the cache is opened again.

Campaign sizes (``-m soak``) and the sample in the default run: see each test's trial
count (``TRIALS`` / ``SOAK_TRIALS``). Kill points are drawn with a seeded generator from
the calls bench's cache, file, audio and extraction code make (``_fault_child.py``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _audio import write_tone
from _fakes import ToyUpstream

from bench.cache import CacheError, FeatureCache
from bench.data import Item
from bench.extract import Extractor

CHILD = Path(__file__).with_name("_fault_child.py")
SHARD_SECONDS, BATCH_SECONDS = 1.5, 2.0


def key_fields(kind: str) -> dict:
    upstream = ToyUpstream()
    return {
        "upstream": "toy",
        "weights_hash": upstream.weights_hash(),
        "hidden_sizes": upstream.hidden_sizes,
        "frame_rate": upstream.frame_rate,
        "sample_rate": 16000,
        "kind": kind,
    }


def make_items(folder: Path, count: int = 10) -> list[Item]:
    return [
        Item(
            key=f"u{i}",
            path=write_tone(folder / f"{i:02d}.wav", 200 + 40 * i, 0.3 + 0.07 * i, seed=i),
        )
        for i in range(count)
    ]


def open_cache(root: Path, items: list[Item], kind: str) -> FeatureCache:
    return FeatureCache.open(root, key_fields(kind), items, SHARD_SECONDS)


def fill(cache: FeatureCache) -> None:
    Extractor(ToyUpstream(), "toy", torch.device("cpu"), BATCH_SECONDS, show_progress=False).fill(
        cache
    )


def features(cache: FeatureCache, items: list[Item]) -> list[np.ndarray]:
    loaded = cache.load()
    if cache.key.kind == "pooled":
        return [loaded.pooled(items), loaded.pooled(items, layer_norm=True)]
    return [np.array(frames) for frames in loaded.sequences(items)]


def assert_same(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def shard_arrays(cache: FeatureCache) -> dict[int, np.ndarray]:
    return {
        shard.index: np.array(np.load(cache.directory / f"shard-{shard.index:05d}.npy"))
        for shard in cache.shards
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Items, and the uninterrupted reference for both cache kinds."""
    root = tmp_path_factory.mktemp("fault-corpus")
    items = make_items(root / "audio")
    reference = {}
    for kind in ("pooled", "sequence"):
        cache = open_cache(root / "reference", items, kind)
        fill(cache)
        reference[kind] = (features(cache, items), shard_arrays(cache))
    return items, reference


def run_child(tmp_path: Path, items: list[Item], root: Path, kind: str, kill_at: int, sig: str):
    job = {
        "items": [[item.key, str(item.path)] for item in items],
        "root": str(root),
        "kind": kind,
        "shard_seconds": SHARD_SECONDS,
        "batch_seconds": BATCH_SECONDS,
        "kill_at": kill_at,
        "signal": sig,
    }
    job_file = tmp_path / f"job-{kind}-{kill_at}.json"
    job_file.write_text(json.dumps(job))
    return subprocess.run(
        [sys.executable, str(CHILD), str(job_file)], capture_output=True, text=True, timeout=300
    )


def count_calls(tmp_path: Path, items: list[Item], kind: str) -> int:
    done = run_child(tmp_path, items, tmp_path / "count", kind, 0, "SIGKILL")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])["calls"]


def kill_trials(tmp_path, corpus, kind: str, sig: str, trials: int, seed: int) -> list[int]:
    items, reference = corpus
    expected_features, expected_shards = reference[kind]
    calls = count_calls(tmp_path, items, kind)
    points = sorted(np.random.default_rng(seed).choice(np.arange(1, calls + 1), trials, False))
    for point in points:
        root = tmp_path / f"cache-{point}"
        done = run_child(tmp_path, items, root, kind, int(point), sig)
        assert done.returncode == -getattr(signal, sig), (point, done.stderr)
        cache = open_cache(root, items, kind)  # cleans up after the dead child
        leftovers = [p.name for p in root.rglob(".*") if ".tmp-" in p.name]
        assert leftovers == [], point
        complete = [s.index for s in cache.shards if s not in cache.missing_shards()]
        for index in complete:  # a shard called complete is the right one
            np.testing.assert_array_equal(
                np.load(cache.directory / f"shard-{index:05d}.npy"), expected_shards[index]
            )
        fill(cache)
        assert_same(features(cache, items), expected_features)
        shutil.rmtree(root)
    return [int(p) for p in points]


# -- kill -9 and SIGTERM at seeded points of extraction ----------------------------------------

TRIALS = {"SIGKILL": 3, "SIGTERM": 1}
SOAK_TRIALS = {"SIGKILL": 40, "SIGTERM": 15}


@pytest.mark.parametrize("kind", ["pooled", "sequence"])
def test_kill_at_seeded_points_resumes_to_the_same_features(tmp_path, corpus, kind):
    kill_trials(tmp_path, corpus, kind, "SIGKILL", TRIALS["SIGKILL"], seed=17)


def test_sigterm_during_extraction_resumes_to_the_same_features(tmp_path, corpus):
    kill_trials(tmp_path, corpus, "sequence", "SIGTERM", TRIALS["SIGTERM"], seed=3)


@pytest.mark.soak
@pytest.mark.parametrize("kind", ["pooled", "sequence"])
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_kill_campaign(tmp_path, corpus, kind, sig):
    kill_trials(tmp_path, corpus, kind, sig, SOAK_TRIALS[sig], seed=2024)


# -- corrupt, truncated, swapped and foreign shards --------------------------------------------


def _flip_byte(cache, rng, shard):
    data = cache.directory / f"shard-{shard:05d}.npy"
    raw = bytearray(data.read_bytes())
    raw[int(rng.integers(len(raw)))] ^= 1 << int(rng.integers(8))
    data.write_bytes(bytes(raw))


def _truncate(suffix):
    def damage(cache, rng, shard):
        path = cache.directory / f"shard-{shard:05d}{suffix}"
        raw = path.read_bytes()
        path.write_bytes(raw[: int(rng.integers(len(raw)))])

    return damage


def _swap(cache, rng, shard):
    other = (shard + 1) % len(cache.shards)
    for suffix in (".npy", ".json"):
        a, b = (cache.directory / f"shard-{i:05d}{suffix}" for i in (shard, other))
        spare = a.with_name("spare")
        a.rename(spare)
        b.rename(a)
        spare.rename(b)


def _delete_data(cache, rng, shard):
    (cache.directory / f"shard-{shard:05d}.npy").unlink()


def _empty_plan(cache, rng, shard):
    (cache.directory / "plan.json").write_text("")


DAMAGE = {
    "flip a bit": _flip_byte,
    "truncate the array": _truncate(".npy"),
    "truncate the record": _truncate(".json"),
    "swap two shards with their records": _swap,
    "delete the array": _delete_data,
    "empty the plan": _empty_plan,
}


def corruption_trials(tmp_path, corpus, trials: int, seed: int) -> None:
    items, reference = corpus
    rng = np.random.default_rng(seed)
    names = sorted(DAMAGE)
    for trial in range(trials):
        kind = ("pooled", "sequence")[trial % 2]
        expected = reference[kind][0]
        root = tmp_path / f"trial-{trial}"
        cache = open_cache(root, items, kind)
        fill(cache)
        damage = names[int(rng.integers(len(names)))]
        DAMAGE[damage](cache, rng, int(rng.integers(len(cache.shards))))
        cache = open_cache(root, items, kind)
        try:
            got = features(cache, items)
        except CacheError:  # clear: the damaged shard is not used
            pass
        else:
            assert_same(got, expected)
        fill(cache)
        assert_same(features(cache, items), expected)
        shutil.rmtree(root)


def test_damaged_caches_are_detected_and_redone(tmp_path, corpus):
    corruption_trials(tmp_path, corpus, trials=len(DAMAGE), seed=5)


@pytest.mark.soak
def test_damage_campaign(tmp_path, corpus):
    corruption_trials(tmp_path, corpus, trials=120, seed=99)


# -- a full disk --------------------------------------------------------------------------------


class _FullDisk:
    """``open`` for bench.fileio whose files take ``room`` bytes in all, then ENOSPC."""

    def __init__(self, room: int):
        self.room = room

    def __call__(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 - wrapped and returned
        if "w" not in mode:
            return handle
        disk = self
        write = handle.write

        def limited(data):
            if len(data) > disk.room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            disk.room -= len(data)
            return write(data)

        handle.write = limited
        return handle


def _no_temporaries(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".*") if ".tmp-" in p.name]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_a_full_disk_fails_cleanly_and_resumes(tmp_path, corpus, monkeypatch, fraction):
    """The disk fills at ``fraction`` of the bytes the cache needs (plan, key, shards, records)."""
    import bench.fileio

    items, reference = corpus
    measure = _FullDisk(1 << 40)
    monkeypatch.setattr(bench.fileio, "open", measure, raising=False)
    fill(open_cache(tmp_path / "measure", items, "sequence"))
    needed = (1 << 40) - measure.room
    monkeypatch.setattr(bench.fileio, "open", _FullDisk(int(needed * fraction)), raising=False)
    root = tmp_path / "cache"
    with pytest.raises(OSError, match="No space left on device"):
        fill(open_cache(root, items, "sequence"))
    assert _no_temporaries(root) == []  # the failed write removed its temporary
    monkeypatch.undo()  # space again
    cache = open_cache(root, items, "sequence")
    fill(cache)
    assert_same(features(cache, items), reference["sequence"][0])


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 24 KiB tmpfs where the platform allows mounting one (root, no seccomp
    block); else the test is skipped (the simulated full disk above always runs)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_a_really_full_filesystem_fails_cleanly_and_resumes(tmp_path, corpus, small_filesystem):
    items, reference = corpus
    root = small_filesystem / "cache"
    with pytest.raises(OSError) as error:
        fill(open_cache(root, items, "sequence"))  # about 40 KiB in 4 KiB pages
    assert error.value.errno == errno.ENOSPC
    assert _no_temporaries(root) == []
    moved = tmp_path / "bigger"  # the user makes room: here, a bigger disk
    shutil.copytree(root, moved)
    cache = open_cache(moved, items, "sequence")
    assert 0 < len(cache.missing_shards()) < len(cache.shards)  # some shards were kept
    fill(cache)
    assert_same(features(cache, items), reference["sequence"][0])


# -- concurrent first use -----------------------------------------------------------------------


def test_two_processes_fill_one_fresh_cache(tmp_path, corpus):
    items, reference = corpus
    root = tmp_path / "shared"
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(_job(tmp_path, items, root, name))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for child in children:
        _, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, stderr
    cache = open_cache(root, items, "sequence")
    assert cache.missing_shards() == []
    assert_same(features(cache, items), reference["sequence"][0])
    assert _no_temporaries(root) == []


def _job(tmp_path: Path, items: list[Item], root: Path, name: str) -> Path:
    job = {
        "items": [[item.key, str(item.path)] for item in items],
        "root": str(root),
        "kind": "sequence",
        "shard_seconds": SHARD_SECONDS,
        "batch_seconds": BATCH_SECONDS,
        "kill_at": 0,
    }
    path = tmp_path / f"job-{name}.json"
    path.write_text(json.dumps(job))
    return path


PREPARE_DEMO = """
import sys
from pathlib import Path
from bench.tasks.demo.tasks import DemoInstruments
DemoInstruments(Path(sys.argv[1])).prepare()
"""


def test_concurrent_first_use_of_a_demo_data_root(tmp_path, demo_root):
    from test_demo_data import tree_digest

    root = tmp_path / "data"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE_DEMO, str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=600)
        assert child.returncode == 0, stderr
    instruments = "hear/demo_instruments-v1.0.0-full"
    assert tree_digest(root / instruments) == tree_digest(demo_root / instruments)
    assert sorted(p.name for p in (root / "hear").iterdir()) == [
        ".demo_instruments-v1.0.0-full.lock",
        "demo_instruments-v1.0.0-full",
    ]


def test_a_killed_demo_generation_is_cleaned_up_and_redone(tmp_path, demo_root):
    from test_demo_data import tree_digest

    root = tmp_path / "data"
    hear = root / "hear"
    child = subprocess.Popen([sys.executable, "-c", PREPARE_DEMO, str(root)])
    started = time.monotonic()
    while not (hear.is_dir() and any(".partial-" in p.name for p in hear.iterdir())):
        assert child.poll() is None and time.monotonic() - started < 600
        time.sleep(0.02)
    child.kill()
    child.wait()
    assert any(".partial-" in p.name for p in hear.iterdir())  # what kill -9 leaves
    done = subprocess.run([sys.executable, "-c", PREPARE_DEMO, str(root)], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert not any(".partial-" in p.name for p in hear.iterdir())
    instruments = "hear/demo_instruments-v1.0.0-full"
    assert tree_digest(root / instruments) == tree_digest(demo_root / instruments)


@pytest.mark.slow
def test_two_runs_on_one_fresh_workspace(tmp_path):
    """Fresh workspace, demo data, feature cache and MLflow store, two runs at once: both
    finish, with the same result, and leave nothing half-written behind."""
    from bench.records import read_records

    workspace = tmp_path / "workspace"
    command = [
        *(sys.executable, "-m", "bench", "run", "--task", "demo.instruments"),
        *("--upstream", "fbank_no_cmvn", f"paths.workspace={workspace}"),
        f"tracking.uri=sqlite:///{workspace / 'mlflow.db'}",
        *("runtime.progress=false", "probe.seeds=[0]", "probe.max_steps=20"),
        'task_options={"demo.instruments": {"grid_points": 1, "hidden_dim": 16}}',
    ]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=900)
        assert run.returncode == 0, stderr
    records = [r for r in read_records(workspace / "records") if r.task == "demo.instruments"]
    assert records and all(r.metrics == records[0].metrics for r in records)
    leftovers = [p for p in workspace.rglob(".*") if ".tmp-" in p.name or ".partial-" in p.name]
    assert leftovers == []


@pytest.mark.soak
def test_sigterm_to_bench_run_during_extraction(demo_root, tmp_path):
    """``bench run`` gets SIGTERM mid-extraction: exit 143 with one message, no record, no
    temporaries; running again gives the metrics of an uninterrupted run. (Three demo runs:
    a soak test; the extraction-level SIGTERM trials run by default.)"""
    from bench.errors import EXIT_TERMINATED
    from bench.records import read_records

    def command(workspace: Path) -> list[str]:
        return [
            *(sys.executable, "-m", "bench", "run", "--task", "demo.instruments"),
            *("--data-root", str(demo_root), f"paths.workspace={workspace}"),
            *("tracking.enabled=false", "runtime.progress=false", "extract.shard_seconds=10"),
            *("probe.seeds=[0]", "probe.max_steps=20"),
            'task_options={"demo.instruments": {"grid_points": 1, "hidden_dim": 16}}',
        ]

    interrupted = tmp_path / "interrupted"
    run = subprocess.Popen(command(interrupted), stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    while not list(interrupted.glob("cache/*/*/shard-00001.json")):
        assert run.poll() is None, "the run finished before it could be stopped"
        assert time.monotonic() - started < 300
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == EXIT_TERMINATED, stderr
    assert "Traceback" not in stderr
    assert not list(interrupted.glob("records/**/*.json"))
    assert _no_temporaries(interrupted) == []
    subprocess.run(command(interrupted), check=True, capture_output=True)
    subprocess.run(command(tmp_path / "uninterrupted"), check=True, capture_output=True)
    resumed, reference = (
        next(r for r in read_records(w / "records") if r.task == "demo.instruments")
        for w in (interrupted, tmp_path / "uninterrupted")
    )
    assert resumed.metrics == reference.metrics
