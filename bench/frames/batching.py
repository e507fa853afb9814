"""Training batches of frame-level tasks, as s3prl's recipes draw them.

A batch rule turns the training items into an endless, reproducible sequence of batches
(lists of item positions). Batch ``k`` depends only on the rule, the items and the seed,
so it can be recomputed anywhere: every probe of a sweep and every frame source (cache or
encoder stream) sees the same batches in the same order, and a resumed run continues
with exactly the batch it would have drawn.

- ``SlidingWindows`` (s3prl's ``downstream/ctc`` readers, SUPERB PR): items sorted by
  label length, longest first; each epoch visits every position once in random order and
  takes the ``batch_size`` items from there (the last full window near the end), halved
  when its first utterance is longer than 300,000 samples (18.75 s).
- ``LengthBuckets`` (s3prl's ``downstream/asr/dataset.py``, SUPERB ASR): items sorted by
  duration, longest first, cut into buckets of ``batch_size``; a bucket whose longest
  utterance exceeds 2,000 samples (0.125 s: every real one) is split into two halves; a
  last partial bucket is kept, unsplit, when it holds at least two items. Each epoch
  visits the buckets in random order.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Batch = list[int]


def _longest_first(sizes: Sequence[float]) -> list[int]:
    """Positions by decreasing size, ties in position order (a stable sort)."""
    return sorted(range(len(sizes)), key=lambda i: -sizes[i])


class BatchSchedule:
    """Batch ``k`` of an endless sequence of epochs, each a fixed list of candidate batches
    visited in an order drawn from ``(seed, epoch)``."""

    def __init__(self, epoch_batches: list[Batch], seed: int):
        if not epoch_batches:
            raise ValueError("no training batches: the training split is too small")
        self._batches = epoch_batches
        self._seed = seed
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # probes in threads share a schedule
        self.batches_per_epoch = len(epoch_batches)

    def _order(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._orders:
                if len(self._orders) > 8:  # probes move forward: keep the recent epochs
                    self._orders.pop(min(self._orders))
                rng = np.random.default_rng([self._seed, epoch])
                self._orders[epoch] = rng.permutation(self.batches_per_epoch)
            return self._orders[epoch]

    def batch(self, k: int) -> Batch:
        """The ``k``-th batch (from 0)."""
        epoch, position = divmod(k, self.batches_per_epoch)
        return self._batches[int(self._order(epoch)[position])]


@dataclass(frozen=True)
class SlidingWindows:
    """s3prl's PR batching (see the module docstring)."""

    halve_above_seconds: float = 300_000 / 16_000

    def schedule(
        self,
        label_lengths: Sequence[int],
        durations: Sequence[float],
        batch_size: int,
        seed: int,
    ) -> BatchSchedule:
        order = _longest_first(label_lengths)
        count = len(order)
        windows = []
        for position in range(count):
            start = max(0, min(count - batch_size, position))
            window = order[start : start + batch_size]
            if len(window) > 1 and durations[window[0]] > self.halve_above_seconds:
                window = window[: len(window) // 2]
            windows.append(window)
        return BatchSchedule(windows, seed)


@dataclass(frozen=True)
class LengthBuckets:
    """s3prl's ASR batching (see the module docstring)."""

    halve_above_seconds: float = 2_000 / 16_000

    def schedule(
        self,
        label_lengths: Sequence[int],
        durations: Sequence[float],
        batch_size: int,
        seed: int,
    ) -> BatchSchedule:
        order = _longest_first(durations)
        buckets: list[Batch] = []
        for start in range(0, len(order), batch_size):
            bucket = order[start : start + batch_size]
            if len(bucket) < batch_size:
                if len(bucket) > 1:
                    buckets.append(bucket)
                continue
            if batch_size >= 2 and max(durations[i] for i in bucket) > self.halve_above_seconds:
                buckets += [bucket[: batch_size // 2], bucket[batch_size // 2 :]]
            else:
                buckets.append(bucket)
        return BatchSchedule(buckets, seed)


BatchRule = SlidingWindows | LengthBuckets
