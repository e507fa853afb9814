"""Synthetic sounds for the demo tasks: instrument notes and timed sound events.

Everything is drawn from a caller-supplied ``numpy.random.Generator``, so a seed fixes
the whole corpus.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

SAMPLE_RATE = 16_000

INSTRUMENTS = ("flute", "clarinet", "strings", "pluck", "bell")
EVENT_CLASSES = ("beep", "buzz", "chirp")


def midi_to_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _time(duration: float) -> np.ndarray:
    return np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE


def _envelope(n: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, flat sustain, linear release (seconds)."""
    envelope = np.ones(n)
    a, r = max(1, round(attack * SAMPLE_RATE)), max(1, round(release * SAMPLE_RATE))
    envelope[:a] = np.linspace(0, 1, a)
    envelope[-r:] *= np.linspace(1, 0, r)
    return envelope


def _harmonics(
    freq: float, t: np.ndarray, amplitudes: dict[int, float], vibrato: float = 0.0
) -> np.ndarray:
    phase = 2 * np.pi * freq * (t + vibrato * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5))
    return sum(a * np.sin(k * phase) for k, a in amplitudes.items() if k * freq < SAMPLE_RATE / 2)


def _karplus_strong(freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """A plucked string: a noise burst through a comb filter with a two-tap average,
    y[i] = x[i] + 0.498 (y[i - P] + y[i - P - 1])."""
    period = max(2, round(SAMPLE_RATE / freq))
    excitation = np.zeros(n)
    excitation[:period] = rng.uniform(-1, 1, period)
    feedback = np.zeros(period + 2)
    feedback[0], feedback[period], feedback[period + 1] = 1.0, -0.498, -0.498
    return lfilter([1.0], feedback, excitation)


def instrument_note(instrument: str, rng: np.random.Generator, duration: float = 1.0) -> np.ndarray:
    """One note of ``instrument`` at a random pitch (MIDI 48-79) with a random envelope."""
    freq = midi_to_hz(rng.uniform(48, 79))
    t = _time(duration)
    if instrument == "flute":
        tone = _harmonics(freq, t, {1: 1.0, 2: 0.15, 3: 0.05}, vibrato=0.004)
        tone += 0.05 * rng.standard_normal(len(t))
        envelope = _envelope(len(t), rng.uniform(0.05, 0.15), 0.1)
    elif instrument == "clarinet":
        tone = _harmonics(freq, t, {k: 1.0 / k for k in range(1, 16, 2)})
        envelope = _envelope(len(t), rng.uniform(0.02, 0.08), 0.08)
    elif instrument == "strings":
        tone = _harmonics(freq, t, {k: 1.0 / k for k in range(1, 20)}, vibrato=0.006)
        envelope = _envelope(len(t), rng.uniform(0.1, 0.3), 0.15)
    elif instrument == "pluck":
        tone = _karplus_strong(freq, len(t), rng)
        envelope = _envelope(len(t), 0.002, 0.05)
    elif instrument == "bell":
        modulation = rng.uniform(1.5, 3.0) * np.exp(-3 * t) * np.sin(2 * np.pi * 1.4 * freq * t)
        tone = np.sin(2 * np.pi * freq * t + modulation)
        envelope = np.exp(-rng.uniform(2, 5) * t) * _envelope(len(t), 0.002, 0.05)
    else:
        raise ValueError(f"unknown instrument {instrument!r}")
    note = tone * envelope
    return note / (np.abs(note).max() + 1e-9) * rng.uniform(0.3, 0.8)


def sound_event(label: str, rng: np.random.Generator) -> np.ndarray:
    """A short event: a beep (high tone), a buzz (low square wave) or a chirp (rising sweep)."""
    if label == "beep":
        t = _time(rng.uniform(0.2, 0.4))
        tone = np.sin(2 * np.pi * rng.uniform(1500, 3000) * t)
    elif label == "buzz":
        t = _time(rng.uniform(0.25, 0.6))
        tone = np.sign(np.sin(2 * np.pi * rng.uniform(100, 200) * t)) * 0.6
    elif label == "chirp":
        t = _time(rng.uniform(0.25, 0.5))
        start, stop = rng.uniform(400, 800), rng.uniform(3000, 5000)
        tone = np.sin(2 * np.pi * (start * t + (stop - start) * t**2 / (2 * t[-1])))
    else:
        raise ValueError(f"unknown event class {label!r}")
    return tone * _envelope(len(t), 0.01, 0.02) * rng.uniform(0.3, 0.7)


def background_noise(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Half white, half low-passed (one-pole) noise at RMS ``level``."""
    white = rng.standard_normal(n)
    low = lfilter([0.03], [1.0, -0.97], white)
    noise = low / (low.std() + 1e-9) + white / (white.std() + 1e-9)
    return level * noise / (noise.std() + 1e-9)
