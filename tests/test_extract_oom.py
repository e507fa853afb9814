"""CUDA out of memory during extraction: the batch is retried in halves before failing."""

import numpy as np
import pytest
import torch
from _audio import write_tone
from _fakes import ToyUpstream

from bench.cache import FeatureCache
from bench.data import Item
from bench.extract import Extractor, UpstreamOutputError


class OutOfMemoryAbove(ToyUpstream):
    """Runs out of (pretend) GPU memory on batches of more than ``limit`` utterances."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.batch_sizes: list[int] = []

    def forward(self, wavs, wav_lens):
        self.batch_sizes.append(len(wavs))
        if len(wavs) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(wavs, wav_lens)


@pytest.fixture
def items(tmp_path):
    return [
        Item(f"u{i}", write_tone(tmp_path / f"{i}.wav", 300 + 40 * i, seconds=0.5), str(i % 2))
        for i in range(8)
    ]


def extract(upstream, items, tmp_path, name):
    fields = {
        "upstream": name,
        "weights_hash": upstream.weights_hash(),
        "hidden_sizes": upstream.hidden_sizes,
        "frame_rate": upstream.frame_rate,
        "sample_rate": 16000,
        "kind": "pooled",
    }
    cache = FeatureCache.open(tmp_path / "cache", fields, items, shard_seconds=100.0)
    Extractor(upstream, name, torch.device("cpu"), batch_seconds=100.0, show_progress=False).fill(
        cache
    )
    return cache.load().pooled(items)


def test_an_out_of_memory_batch_is_retried_in_halves_to_the_same_features(items, tmp_path):
    tight = OutOfMemoryAbove(limit=2)
    pooled = extract(tight, items, tmp_path, "tight")
    assert tight.batch_sizes[0] == 8 and max(tight.batch_sizes[1:]) <= 4
    assert sorted(b for b in tight.batch_sizes if b <= 2) == [2, 2, 2, 2]
    reference = extract(ToyUpstream(), items, tmp_path, "roomy")
    np.testing.assert_allclose(pooled, reference, rtol=1e-6, atol=1e-6)


def test_out_of_memory_on_one_utterance_fails_naming_it(items, tmp_path):
    with pytest.raises(UpstreamOutputError, match=r"0\.wav: upstream 'none' ran out of GPU memory"):
        extract(OutOfMemoryAbove(limit=0), items, tmp_path, "none")
