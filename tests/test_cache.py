"""The feature cache: exact pooled means, atomic resumable shards, corruption detection."""

import json

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
