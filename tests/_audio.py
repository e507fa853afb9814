"""Audio files for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE = 16_000


def write_tone(
    path: Path,
    freq: float,
    seconds: float = 1.0,
    rate: int = SAMPLE_RATE,
    channels: int = 1,
    seed: int = 0,
) -> Path:
    """A sine tone with a little noise, as a 16-bit wav."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave, rate, subtype="PCM_16")
    return path
