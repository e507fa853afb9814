"""Reading audio for the encoders: one policy for every reader.

Policy: multi-channel audio is downmixed to mono by averaging channels, and audio at
another sample rate is resampled to the upstream's rate with soxr (high quality). Both
are reported once per extraction (``AudioLoader.summary``), never per file. Empty,
unreadable or non-finite audio is an ``AudioError`` naming the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: Path | str) -> AudioInfo:
    """Header information, without decoding the samples."""
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(f"{path}: cannot read audio ({_reason(error)})") from None
    return AudioInfo(sample_rate=info.samplerate, frames=info.frames, channels=info.channels)


def _reason(error: Exception) -> str:
    return str(error).split(":")[-1].strip() or type(error).__name__


def segment_duration(info: AudioInfo, start: float, end: float | None) -> float:
    stop = info.duration if end is None else min(end, info.duration)
    return max(0.0, stop - start)


class AudioLoader:
    """Loads mono float32 audio at ``target_rate``, counting conversions for one summary line."""

    def __init__(self, target_rate: int):
        self.target_rate = target_rate
        self.resampled_from: Counter[int] = Counter()
        self.downmixed = 0

    def load(self, path: Path | str, start: float = 0.0, end: float | None = None) -> np.ndarray:
        try:
            with soundfile.SoundFile(str(path)) as handle:
                rate = handle.samplerate
                first = round(start * rate)
                last = handle.frames if end is None else min(round(end * rate), handle.frames)
                handle.seek(min(first, handle.frames))
                samples = handle.read(max(0, last - first), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise AudioError(f"{path}: cannot read audio ({_reason(error)})") from None
        if samples.shape[0] == 0:
            segment = "" if start == 0 and end is None else f" in segment [{start}, {end}] s"
            raise AudioError(f"{path}: no samples{segment} (empty or truncated file)")
        if samples.shape[1] > 1:
            self.downmixed += 1
        wave = samples.mean(axis=1, dtype=np.float32)
        if not np.isfinite(wave).all():
            raise AudioError(f"{path}: audio contains NaN or infinite samples")
        if rate != self.target_rate:
            self.resampled_from[rate] += 1
            wave = soxr.resample(wave, rate, self.target_rate, quality="HQ").astype(np.float32)
        return wave

    def summary(self) -> str | None:
        """One line on the conversions applied so far, or None when there were none."""
        parts = [
            f"resampled {count} file(s) from {rate} Hz to {self.target_rate} Hz"
            for rate, count in sorted(self.resampled_from.items())
        ]
        if self.downmixed:
            parts.append(f"downmixed {self.downmixed} multi-channel file(s) to mono")
        return "; ".join(parts) or None
