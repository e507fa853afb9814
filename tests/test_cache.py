"""The feature cache: exact pooled means, atomic resumable shards, corruption detection."""

import json
import os

import numpy as np
import pytest
import torch
from _audio import write_tone
from _fakes import ToyUpstream

from bench.cache import CacheError, FeatureCache
from bench.data import Item
from bench.extract import Extractor, UpstreamOutputError, make_batches


def key_fields(upstream, kind="pooled"):
    return {
        "upstream": "toy",
        "weights_hash": upstream.weights_hash(),
        "hidden_sizes": upstream.hidden_sizes,
        "frame_rate": upstream.frame_rate,
        "sample_rate": 16000,
        "kind": kind,
    }


@pytest.fixture
def items(tmp_path):
    made = []
    for i in range(12):
        path = write_tone(
            tmp_path / "audio" / f"{i:02d}.wav", 200 + 50 * i, seconds=0.5 + 0.1 * i, seed=i
        )
        made.append(Item(key=f"u{i}", path=path, label=str(i % 3)))
    return made


def extractor(upstream, **kwargs):
    return Extractor(
        upstream, "toy", torch.device("cpu"), batch_seconds=3.0, show_progress=False, **kwargs
    )


def test_pooled_cache_holds_exact_per_layer_means(tmp_path, items):
    upstream = ToyUpstream()
    cache = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    assert len(cache.shards) > 2
    extractor(upstream).fill(cache)
    features = cache.load()
    pooled = features.pooled(items)
    ln_pooled = features.pooled(items, layer_norm=True)
    for item, row, ln_row in zip(items, pooled, ln_pooled, strict=True):
        import soundfile

        wave = torch.from_numpy(soundfile.read(item.path, dtype="float32")[0])[None]
        out = upstream(wave, torch.tensor([wave.shape[1]]))
        expected = torch.stack([h[0].mean(0) for h in out.hidden_states])
        expected_ln = torch.stack(
            [torch.nn.functional.layer_norm(h[0], (8,)).mean(0) for h in out.hidden_states]
        )
        np.testing.assert_allclose(row, expected.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ln_row, expected_ln.numpy(), rtol=1e-5, atol=1e-5)


def test_sequence_cache_is_float16_frames(tmp_path, items):
    upstream = ToyUpstream()
    cache = FeatureCache.open(
        tmp_path / "cache", key_fields(upstream, "sequence"), items, shard_seconds=2.0
    )
    extractor(upstream).fill(cache)
    sequences = cache.load().sequences(items)
    for item, frames in zip(items, sequences, strict=True):
        import soundfile

        n = soundfile.info(item.path).frames
        assert frames.dtype == np.float16 and frames.shape == (n // 320, 3, 8)


def test_second_run_extracts_nothing(tmp_path, items):
    upstream = ToyUpstream()
    cache = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    extractor(upstream).fill(cache)
    calls = upstream.calls
    again = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    stats = extractor(upstream).fill(again)
    assert (
        upstream.calls == calls
        and stats.shards_done == 0
        and stats.shards_cached == len(cache.shards)
    )


def test_interrupted_extraction_resumes_with_the_missing_shards(tmp_path, items):
    upstream = ToyUpstream()
    cache = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    full = extractor(upstream).fill(cache)
    reference = cache.load().pooled(items)
    # Simulate a kill after the first shard: later shards have no commit record.
    for shard in cache.shards[1:]:
        (cache.directory / f"shard-{shard.index:05d}.json").unlink()
    assert [s.index for s in cache.missing_shards()] == [s.index for s in cache.shards[1:]]
    resumed = extractor(upstream).fill(cache)
    assert resumed.shards_done == len(cache.shards) - 1 and resumed.shards_cached == 1
    assert full.shards_done == len(cache.shards)
    np.testing.assert_array_equal(cache.load().pooled(items), reference)


def test_corrupt_shard_is_detected_and_extracted_again(tmp_path, items, caplog):
    upstream = ToyUpstream()
    cache = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    extractor(upstream).fill(cache)
    reference = cache.load().pooled(items)
    data_file = cache.directory / "shard-00001.npy"
    raw = bytearray(data_file.read_bytes())
    raw[-5] ^= 0xFF  # flip bits in the data, same size
    data_file.write_bytes(bytes(raw))
    assert [s.index for s in cache.missing_shards()] == [1]
    assert "checksum mismatch" in caplog.text
    extractor(upstream).fill(cache)
    np.testing.assert_array_equal(cache.load().pooled(items), reference)


def test_loading_an_incomplete_cache_is_refused(tmp_path, items):
    upstream = ToyUpstream()
    cache = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    with pytest.raises(CacheError, match="not extracted yet"):
        cache.load()


def test_cache_key_follows_the_data_and_the_weights(tmp_path, items):
    upstream = ToyUpstream()
    first = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, 2.0).directory
    assert (
        FeatureCache.open(tmp_path / "cache", key_fields(upstream), items[:-1], 2.0).directory
        != first
    )
    write_tone(items[0].path, 999, seconds=0.7)  # the audio changes
    assert (
        FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, 2.0).directory != first
    )
    other = dict(key_fields(upstream), weights_hash="0" * 64)
    assert FeatureCache.open(tmp_path / "cache", other, items, 2.0).directory != first
    plan = json.loads((first / "plan.json").read_text())
    assert sum(len(shard["refs"]) for shard in plan) == len(items)


def test_nan_from_the_upstream_names_the_file(tmp_path, items):
    import soundfile

    poisoned = items[3].path
    first_sample = float(soundfile.read(poisoned, dtype="float32")[0][0])
    upstream = ToyUpstream(poison=first_sample)
    cache = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, 2.0)
    with pytest.raises(UpstreamOutputError, match=f"NaN/Inf at layer 1 for: .*{poisoned.name}"):
        extractor(upstream).fill(cache)


def test_batches_respect_the_padded_budget_and_equal_lengths():
    durations = [1.0, 1.0, 1.0, 2.0, 2.0, 3.0]
    assert make_batches(durations, batch_seconds=4.0) == [[0, 1, 2], [3, 4], [5]]
    for batch in make_batches(durations, batch_seconds=4.0):
        assert len(batch) * max(durations[i] for i in batch) <= 4.0
    assert make_batches([1.0, 1.0, 1.5, 1.5], batch_seconds=100, equal_lengths_only=True) == [
        [0, 1],
        [2, 3],
    ]


def extracted(tmp_path, items, root="cache"):
    upstream = ToyUpstream()
    cache = FeatureCache.open(tmp_path / root, key_fields(upstream), items, shard_seconds=2.0)
    extractor(upstream).fill(cache)
    return cache, upstream


def test_shards_swapped_with_their_records_are_refused_and_redone(tmp_path, items, caplog):
    cache, upstream = extracted(tmp_path, items)
    reference = cache.load().pooled(items)
    for suffix in (".npy", ".json"):
        first, second = (cache.directory / f"shard-{i:05d}{suffix}" for i in (0, 1))
        tmp = first.with_name("swap")
        first.rename(tmp), second.rename(first), tmp.rename(second)
    assert [s.index for s in cache.missing_shards()] == [0, 1]
    assert "commit record of shard 1, not 0" in caplog.text
    extractor(upstream).fill(cache)
    np.testing.assert_array_equal(cache.load().pooled(items), reference)


def test_a_shard_from_another_cache_is_refused(tmp_path, items):
    cache, _ = extracted(tmp_path, items)
    other, _ = extracted(tmp_path, items[:-1], root="other")
    for suffix in (".npy", ".json"):  # same index, another plan
        name = f"shard-00000{suffix}"
        (cache.directory / name).write_bytes((other.directory / name).read_bytes())
    problem = cache._verify(cache.shards[0])
    assert problem in ("commit record of another plan", "commit record lists other items")
    with pytest.raises(CacheError, match="commit record of another plan"):
        cache.read_shard(cache.shards[0])


def test_records_without_the_binding_are_redone(tmp_path, items):
    cache, _ = extracted(tmp_path, items)
    record_file = cache.directory / "shard-00002.json"
    record = json.loads(record_file.read_text())
    for key in ("format", "shard", "plan", "refs"):
        del record[key]
    record_file.write_text(json.dumps(record))
    assert [s.index for s in cache.missing_shards()] == [2]


@pytest.mark.parametrize("content", ["", "[", '[{"refs": [["a.wav", 0.0]]}]', "{}", "[1, 2]"])
def test_an_empty_or_truncated_plan_is_made_again(tmp_path, items, content, caplog):
    cache, upstream = extracted(tmp_path, items)
    reference = cache.load().pooled(items)
    (cache.directory / "plan.json").write_text(content)
    again = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    assert "planning again" in caplog.text
    assert again.plan_digest == cache.plan_digest and not again.missing_shards()
    np.testing.assert_array_equal(again.load().pooled(items), reference)


def test_a_shard_with_the_wrong_row_count_is_never_committed(tmp_path, items):
    upstream = ToyUpstream()
    cache = FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    shard = cache.shards[0]
    rows = np.zeros((len(shard.refs) + 1, 2, 3, 8), dtype=np.float32)
    with pytest.raises(CacheError, match=f"{len(shard.refs) + 1} rows for {len(shard.refs)}"):
        cache.write_shard(shard, rows)
    assert not list(cache.directory.glob("shard-*"))


def test_opening_a_cache_removes_temporaries_of_dead_processes_only(tmp_path, items):
    import subprocess
    import sys

    cache, upstream = extracted(tmp_path, items)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    from bench.fileio import _HOST

    stale = [
        cache.directory / f".shard-00001.npy.tmp-{dead_pid}",  # before host names were added
        cache.directory / f".shard-00001.npy.tmp-{dead_pid}@{_HOST}",
        cache.directory / f".key.json.tmp-{dead_pid}@{_HOST}",
    ]
    live = [
        cache.directory / f".shard-00002.npy.tmp-{os.getpid()}@{_HOST}",
        cache.directory / f".shard-00003.npy.tmp-{dead_pid}@another-host",  # may be alive there
        cache.directory / "notes.tmp-12",  # not bench's
    ]
    for path in stale + live:
        path.write_bytes(b"partial")
    FeatureCache.open(tmp_path / "cache", key_fields(upstream), items, shard_seconds=2.0)
    assert [p.exists() for p in stale + live] == [False] * len(stale) + [True] * len(live)
