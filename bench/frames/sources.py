"""Where frame-level probes get their features: the cache, or the frozen encoder itself.

Both sources implement ``FrameSource``: the frame count and audio duration of every item
(known before any frame is read, so batches can be planned), and ``batch(items)``: the
items' frames, zero-padded, as ``[B, T, L, D]`` float16 with L the source's ``layers``,
and their lengths.

- ``CachedFrames``: the float16 sequence cache (``bench.cache``, memory-mapped shards),
  filled once by extraction. Also a ``FeatureStore`` (``sequences``) for the protocols
  that read whole sequences.
- ``StreamedFrames``: the encoder runs on each batch as it is asked for. Its frames are
  converted to float16 exactly as extraction stores them, so a probe trained on the same
  batches from either source sees the same numbers, up to the encoder's own batch
  dependence (none for padding-invariant encoders beyond floating-point noise).

``iterate`` reads the audio of the next batch in a background thread while the current
one is used.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from bench.audio_effects import audio_loader
from bench.cache import AudioRef, FeatureCache
from bench.data import Item
from bench.extract import _check_output, make_batches, pad_batch
from bench.upstreams.base import Upstream

FrameBatch = tuple[Tensor, Tensor]  # frames [B, T, L, D] float16, lengths [B]


class FrameSource(Protocol):
    kind: ClassVar[str]
    #: the upstream layers the frames hold, in order
    layers: tuple[int, ...]

    def frame_counts(self, items: Sequence[Item]) -> list[int]: ...

    def durations(self, items: Sequence[Item]) -> list[float]: ...

    def batch(self, items: Sequence[Item]) -> FrameBatch: ...

    def iterate(self, batches: Iterable[Sequence[Item]]) -> Iterator[FrameBatch]: ...


def pad_frames(sequences: Sequence[np.ndarray | Tensor]) -> FrameBatch:
    """``[B, T, L, D]`` float16, zero-padded, and the lengths ``[B]``."""
    lengths = torch.tensor([len(s) for s in sequences])
    padded = np.zeros((len(sequences), int(lengths.max()), *sequences[0].shape[1:]), np.float16)
    for row, frames in enumerate(sequences):
        padded[row, : len(frames)] = np.asarray(frames)
    return torch.from_numpy(padded), lengths


def _durations_by_ref(cache: FeatureCache) -> dict[AudioRef, float]:
    return {
        ref: duration
        for shard in cache.shards
        for ref, duration in zip(shard.refs, shard.durations, strict=True)
    }


class StoredSequences:
    """A ``FrameSource`` over any ``FeatureStore``'s sequences (e.g. a protocol called
    directly with an in-memory store); durations are taken as frames / ``frame_rate``."""

    kind: ClassVar[str] = "cache"

    def __init__(self, store: Any, frame_rate: float, num_layers: int):
        self.layers = tuple(range(num_layers))
        self._store = store
        self._frame_rate = frame_rate

    def sequences(self, items: Sequence[Item]) -> list[np.ndarray]:
        return self._store.sequences(items)

    def frame_counts(self, items: Sequence[Item]) -> list[int]:
        return [len(frames) for frames in self.sequences(items)]

    def durations(self, items: Sequence[Item]) -> list[float]:
        return [n / self._frame_rate for n in self.frame_counts(items)]

    def batch(self, items: Sequence[Item]) -> FrameBatch:
        return pad_frames(self.sequences(items))

    def iterate(self, batches: Iterable[Sequence[Item]]) -> Iterator[FrameBatch]:
        return (self.batch(items) for items in batches)


def as_frame_source(features: Any, frame_rate: float, num_layers: int) -> FrameSource:
    """``features`` itself when it is a ``FrameSource``, else its sequences as one."""
    if hasattr(features, "batch") and hasattr(features, "frame_counts"):
        return features
    return StoredSequences(features, frame_rate, num_layers)


class CachedFrames(StoredSequences):
    """Frames from a complete sequence cache holding ``layers``; durations are the audio's."""

    def __init__(self, cache: FeatureCache, layers: Sequence[int]):
        features = cache.load()
        super().__init__(features, cache.key.frame_rate, len(layers))
        self.layers = tuple(layers)
        self._durations = _durations_by_ref(cache)

    def pooled(self, items: Sequence[Item], layer_norm: bool = False) -> np.ndarray:
        return self._store.pooled(items, layer_norm)

    def durations(self, items: Sequence[Item]) -> list[float]:
        return [self._durations[item.audio_ref] for item in items]


class StreamedFrames:
    """Frames computed by ``upstream`` for every batch asked for.

    Each batch is split into forwards of at most ``batch_seconds`` of padded audio; an
    encoder whose output depends on padding gets forwards of equal-length utterances only
    (``equal_lengths_only``) or of lengths within ``max_padding`` of the longest, as
    extraction batches them.
    """

    kind: ClassVar[str] = "stream"

    def __init__(
        self,
        upstream: Upstream,
        upstream_name: str,
        device: torch.device,
        cache_plan: FeatureCache,
        layers: Sequence[int],
        batch_seconds: float,
        equal_lengths_only: bool = False,
        max_padding: float | None = None,
        gain_db: float = 0.0,
    ):
        self.upstream = upstream.to(device).eval()
        self.name = upstream_name
        self.device = device
        self.layers = tuple(layers)
        self.batch_seconds = batch_seconds
        self.equal_lengths_only = equal_lengths_only
        self.max_padding = max_padding
        self.gain = np.float32(10.0 ** (gain_db / 20.0))
        self._durations = _durations_by_ref(cache_plan)
        self._loader = audio_loader(upstream.sample_rate, cache_plan.key.effects)
        #: the encoder's threads: the training loop runs single-threaded (``bench.stacking``),
        #: but a stream trains every probe in one stack, so its forward may take them all
        self.threads = torch.get_num_threads()
        #: seconds spent in the encoder, for the record's timings
        self.forward_seconds = 0.0

    def durations(self, items: Sequence[Item]) -> list[float]:
        return [self._durations[item.audio_ref] for item in items]

    def frame_counts(self, items: Sequence[Item]) -> list[int]:
        rate = self.upstream.sample_rate
        return [self.upstream.num_frames(round(d * rate)) for d in self.durations(items)]

    def read(self, items: Sequence[Item]) -> list[np.ndarray]:
        waves = [self._loader.load(*item.audio_ref) for item in items]
        return waves if self.gain == 1.0 else [wave * self.gain for wave in waves]

    def encode(self, items: Sequence[Item], waves: Sequence[np.ndarray]) -> FrameBatch:
        """The frames of ``items`` from their audio."""
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        seconds = [len(waves[i]) / self.upstream.sample_rate for i in order]
        sequences: list[Tensor | None] = [None] * len(waves)
        groups = make_batches(
            seconds, self.batch_seconds, self.equal_lengths_only, max_padding=self.max_padding
        )
        for group in groups:
            rows = [order[i] for i in group]
            wavs, lengths = pad_batch([waves[i] for i in rows])
            began = time.perf_counter()
            with torch.inference_mode(), _threads(self.threads):
                output = self.upstream(wavs.to(self.device), lengths.to(self.device))
            _check_output(output, [items[i].audio_ref for i in rows], self.name)
            stacked = torch.stack(
                [output.hidden_states[layer].to(torch.float16) for layer in self.layers], dim=2
            ).cpu()
            self.forward_seconds += time.perf_counter() - began
            for position, (row, length) in enumerate(
                zip(rows, output.lengths.tolist(), strict=True)
            ):
                sequences[row] = stacked[position, :length]
        return pad_frames(sequences)  # type: ignore[arg-type]

    def batch(self, items: Sequence[Item]) -> FrameBatch:
        return self.encode(items, self.read(items))

    def iterate(self, batches: Iterable[Sequence[Item]]) -> Iterator[FrameBatch]:
        """Each batch's frames; the next batch's audio is read while this one runs."""
        batches = iter(batches)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-stream") as reader:
            current = next(batches, None)
            pending = reader.submit(self.read, current) if current is not None else None
            while current is not None:
                waves = pending.result()
                following = next(batches, None)
                pending = reader.submit(self.read, following) if following is not None else None
                yield self.encode(current, waves)
                current = following


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
