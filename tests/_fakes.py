"""Small stand-ins for tests: a deterministic toy upstream and an in-memory feature store."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bench.data import Item
from bench.upstreams.base import Upstream, UpstreamOutput


class ToyUpstream(Upstream):
    """Three layers of 8 dims at 50 Hz computed from frame energy and spectrum; no parameters.

    ``poison`` makes it return NaN for inputs whose first sample is exactly that value.
    """

    frame_rate = 50.0
    hidden_sizes = (8, 8, 8)

    def __init__(self, poison: float | None = None):
        super().__init__()
        self.poison = poison
        self.calls = 0

    def num_frames(self, num_samples: int) -> int:
        return num_samples // 320

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.calls += 1
        frames = wavs[:, : (wavs.shape[1] // 320) * 320].reshape(len(wavs), -1, 320)
        spectrum = torch.fft.rfft(frames, dim=-1).abs()[..., 1:161]
        bands = spectrum.reshape(*spectrum.shape[:2], 8, 20).mean(-1).log1p()
        states = [bands, bands * 2 + 1, torch.tanh(bands)]
        if self.poison is not None:
            bad = wavs[:, 0] == self.poison
            states[1] = torch.where(
                bad[:, None, None], torch.full_like(states[1], float("nan")), states[1]
            )
        lengths = torch.tensor([self.num_frames(int(n)) for n in wav_lens])
        return UpstreamOutput(states, lengths)


class RecordingUpstream(ToyUpstream):
    """The toy upstream, remembering every waveform it is given (valid samples only)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        self.seen += [w[: int(n)].numpy().copy() for w, n in zip(wavs, wav_lens, strict=True)]
        return super().forward(wavs, wav_lens)


class MemoryFeatures:
    """A FeatureStore over arrays held in memory, keyed by item key."""

    def __init__(
        self,
        pooled: dict[str, np.ndarray] | None = None,
        sequences: dict[str, np.ndarray] | None = None,
    ):
        self._pooled = pooled or {}
        self._sequences = sequences or {}

    def pooled(self, items: Sequence[Item], layer_norm: bool = False) -> np.ndarray:
        return np.stack([self._pooled[item.key] for item in items])

    def sequences(self, items: Sequence[Item]) -> list[np.ndarray]:
        return [self._sequences[item.key] for item in items]
