"""Small VoiceBank-DEMAND and Libri2Mix trees in their real layouts, with speech-like
signals (harmonic tones switched on and off) that PESQ and STOI accept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile


def speech_like(rng: np.random.Generator, seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    pitch = rng.uniform(100, 250)
    syllables = (np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)) > 0).astype(float)
    voiced = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
    return (0.1 * voiced * syllables).astype(np.float32)


def _write(path: Path, wave: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave, rate, subtype="FLOAT")


def build_voicebank(
    root: Path, counts: dict[str, int], seconds: float = 2.0, rate: int = 48_000, seed: int = 0
) -> Path:
    """``root/VoiceBank-DEMAND`` with ``counts`` utterances for train (speakers p228, p230),
    dev (p226, p287) and test (p232); noisy = clean + white noise."""
    rng = np.random.default_rng(seed)
    corpus = root / "VoiceBank-DEMAND"
    speakers = {"train": ("p228", "p230"), "dev": ("p226", "p287"), "test": ("p232",)}
    suffix = "" if rate == 48_000 else "_16k"
    for split, count in counts.items():
        name = "testset_wav" if split == "test" else "trainset_28spk_wav"
        for n in range(count):
            key = f"{speakers[split][n % len(speakers[split])]}_{n:03d}"
            clean = speech_like(rng, seconds, rate)
            noisy = clean + 0.03 * rng.standard_normal(len(clean)).astype(np.float32)
            _write(corpus / f"clean_{name}{suffix}" / f"{key}.wav", clean, rate)
            _write(corpus / f"noisy_{name}{suffix}" / f"{key}.wav", noisy, rate)
    return corpus


def build_librimix(root: Path, counts: dict[str, int], seconds: float = 1.0, seed: int = 0) -> Path:
    """``root/Libri2Mix/wav16k/min/{train-100,dev,test}/{mix_clean,s1,s2}``."""
    rng = np.random.default_rng(seed)
    corpus = root / "Libri2Mix"
    folders = {"train": "train-100", "dev": "dev", "test": "test"}
    for split, count in counts.items():
        base = corpus / "wav16k" / "min" / folders[split]
        for n in range(count):
            key = f"{100 + n}-1-0000_{200 + n}-2-0001"
            first, second = speech_like(rng, seconds), 0.7 * speech_like(rng, seconds)
            _write(base / "s1" / f"{key}.wav", first, 16_000)
            _write(base / "s2" / f"{key}.wav", second, 16_000)
            _write(base / "mix_clean" / f"{key}.wav", first + second, 16_000)
    return corpus
