"""Fresh random waveform crops before the encoder, the encoder run in the training loop.

s3prl's SID and ASV loaders crop every training read: an utterance longer than
``max_timestep`` (128,000 samples, 8 s) is cut to a random window (``random.randint(0,
length - max_timestep)``) and the upstream sees only the window. A feature cache cannot
hold a fresh window per read, so ``WaveformCrops`` reads and encodes them as a probe asks:
the audio through the task's sox chain (``bench.audio_effects``) or its float gain, as
extraction reads it, the offset drawn
from the caller's generator (one per probe, so stacked probes stay independent), crops
of equal length encoded together (so no encoder ever sees padding). It gives the frames
(rounded to float16 as the sequence cache stores them) or the per-layer means (as the
pooled cache holds them for whole items, ``bench.extract.pooled_means``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.audio_effects import audio_loader
from bench.data import Item
from bench.extract import _check_output, pad_batch, pooled_means
from bench.frames.sources import _threads
from bench.upstreams.base import UpstreamOutput

#: s3prl's ``max_timestep`` of SID and ASV: 128,000 samples at 16 kHz
CROP_SECONDS = 8.0


class WaveformCrops:
    """The training items of one probe fold, read as fresh crops (module doc)."""

    def __init__(
        self,
        items: Sequence[Item],
        upstream: Any,
        effects: Sequence[Sequence[str]] = (),
        device: str = "cpu",
        crop_seconds: float = CROP_SECONDS,
        cropped: Sequence[bool] | None = None,
        gain_db: float = 0.0,
    ):
        self.items = list(items)
        #: the task's float gain where it has no sox chain, as extraction applies it
        self.gain = np.float32(10.0 ** (gain_db / 20.0))
        #: which items are cropped (None: all longer than a crop; KS crops only _silence_)
        self.cropped = None if cropped is None else list(cropped)
        self.device = torch.device(device)  # the probe's: s3prl runs both on one device
        self.upstream = upstream.to(self.device).eval()
        self.crop_samples = round(crop_seconds * upstream.sample_rate)
        self.loader = audio_loader(upstream.sample_rate, effects)
        self.threads = torch.get_num_threads()
        #: seconds spent reading and encoding crops
        self.seconds = 0.0

    def __len__(self) -> int:
        return len(self.items)

    def crop(self, wave: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
        """A random window of ``crop_samples`` of a longer wave (offsets 0 ... len - crop)."""
        if len(wave) <= self.crop_samples:
            return wave
        start = int(torch.randint(len(wave) - self.crop_samples + 1, (1,), generator=generator))
        return wave[start : start + self.crop_samples]

    def encoded(
        self, index: Sequence[int], generators: Sequence[torch.Generator | None]
    ) -> list[tuple[list[int], UpstreamOutput]]:
        """The crops of ``items[index]`` (row r's offset from ``generators[r]``) through the
        encoder: (rows, output) per group of equal-length crops."""
        began = time.perf_counter()
        waves = []
        for i, generator in zip(index, generators, strict=True):
            wave = self.loader.load(*self.items[i].audio_ref)
            wave = wave if self.gain == 1.0 else wave * self.gain
            waves.append(
                wave if self.cropped and not self.cropped[i] else self.crop(wave, generator)
            )
        by_length: dict[int, list[int]] = {}
        for row, wave in enumerate(waves):
            by_length.setdefault(len(wave), []).append(row)
        groups = []
        for rows in by_length.values():
            wavs, lengths = pad_batch([waves[row] for row in rows])
            with torch.inference_mode(), _threads(self.threads):
                output = self.upstream(wavs.to(self.device), lengths.to(self.device))
            _check_output(output, [self.items[index[row]].audio_ref for row in rows], "upstream")
            groups.append((rows, output))
        self.seconds += time.perf_counter() - began
        return groups

    def frames(
        self, index: Sequence[int], generators: Sequence[torch.Generator | None]
    ) -> list[Tensor]:
        """Each crop's ``[T, L, D]`` frames, float16-rounded, as float32 on the CPU."""
        frames: list[Tensor] = [torch.empty(0)] * len(index)
        for rows, output in self.encoded(index, generators):
            stacked = torch.stack([h.to(torch.float16) for h in output.hidden_states], dim=2)
            for position, (row, length) in enumerate(
                zip(rows, output.lengths.tolist(), strict=True)
            ):
                frames[row] = stacked[position, :length].float().cpu()
        return frames

    def pooled(
        self,
        index: Sequence[int],
        generators: Sequence[torch.Generator | None],
        layer_norm: bool = False,
    ) -> Tensor:
        """``[B, L, D]``: each crop's per-layer mean over its frames (raw or layer-normed)."""
        pooled: list[Tensor] = [torch.empty(0)] * len(index)
        for rows, output in self.encoded(index, generators):
            means = torch.from_numpy(pooled_means(output)[:, int(layer_norm)])
            for position, row in enumerate(rows):
                pooled[row] = means[position]
        return torch.stack(pooled)
