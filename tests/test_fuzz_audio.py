"""Property-based fuzzing of the audio readers (bench.audio): a clear error or the right audio.

- Any bytes at all: ``AudioError`` naming the file, or finite mono float32 samples.
- A valid file cut at any byte: ``AudioError``, or exactly the uncut file's audio (a cut
  that only removes trailing chunks); never a shortened clip.
- A valid file with bytes flipped in its header: never a crash, and never more or fewer
  samples than the header declares.

The default run tries a fast sample (``EXAMPLES``); ``-m soak`` runs the campaign
(``SOAK_EXAMPLES``).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.audio import AudioError, AudioLoader, audio_info

EXAMPLES, SOAK_EXAMPLES = 60, 3000
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SOAK = settings(FAST, max_examples=SOAK_EXAMPLES, derandomize=False)

FORMATS = [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")]
RATES = [8000, 16000, 22050, 44100]


def _encode(samples: np.ndarray, rate: int, container: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=container, subtype=subtype)
    return buffer.getvalue()


@st.composite
def audio_files(draw) -> tuple[bytes, str]:
    container, subtype = draw(st.sampled_from(FORMATS))
    rate = draw(st.sampled_from(RATES))
    channels = draw(st.integers(1, 2))
    frames = draw(st.integers(64, 3000))  # shorter ones may not survive resampling
    seed = draw(st.integers(0, 2**32 - 1))
    samples = np.random.default_rng(seed).uniform(-0.9, 0.9, (frames, channels))
    return _encode(samples, rate, container, subtype), container.lower()


def _read(data: bytes, suffix: str) -> tuple[str, np.ndarray | str]:
    """("ok", samples) or ("error", message); anything else escapes and fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz.{suffix}"
        path.write_bytes(data)
        try:
            info = audio_info(path)
            wave = AudioLoader(16000).load(path)
        except AudioError as error:
            assert str(error).startswith(f"{path}: ")
            return "error", str(error)
        assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) > 0
        assert np.isfinite(wave).all()
        expected = round(info.frames * 16000 / info.sample_rate)
        assert abs(len(wave) - expected) <= 1  # what the header declares, resampled
        return "ok", wave


def any_bytes_property(data: bytes, suffix: str) -> None:
    _read(data, suffix)


def truncation_property(file: tuple[bytes, str], cut_fraction: float) -> None:
    data, suffix = file
    status, whole = _read(data, suffix)
    assert status == "ok"
    cut = int(len(data) * cut_fraction)
    status, result = _read(data[:cut], suffix)
    if status == "ok":
        np.testing.assert_array_equal(result, whole)


def header_flip_property(file: tuple[bytes, str], position: int, bit: int) -> None:
    data, suffix = file
    damaged = bytearray(data)
    damaged[position % min(len(data), 64)] ^= 1 << bit
    _read(bytes(damaged), suffix)


RIFF_PREFIXES = st.sampled_from([b"", b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC"])


@FAST
@given(prefix=RIFF_PREFIXES, body=st.binary(max_size=512), suffix=st.sampled_from(["wav", "flac"]))
def test_any_bytes_give_an_error_or_audio(prefix, body, suffix):
    any_bytes_property(prefix + body, suffix)


@FAST
@given(file=audio_files(), cut_fraction=st.floats(0, 1, exclude_max=True))
def test_a_cut_file_gives_an_error_or_the_whole_audio(file, cut_fraction):
    truncation_property(file, cut_fraction)


@FAST
@given(file=audio_files(), position=st.integers(0, 63), bit=st.integers(0, 7))
def test_a_damaged_header_never_crashes(file, position, bit):
    header_flip_property(file, position, bit)


@pytest.mark.soak
@SOAK
@given(prefix=RIFF_PREFIXES, body=st.binary(max_size=4096), suffix=st.sampled_from(["wav", "flac"]))
def test_any_bytes_campaign(prefix, body, suffix):
    any_bytes_property(prefix + body, suffix)


@pytest.mark.soak
@SOAK
@given(file=audio_files(), cut_fraction=st.floats(0, 1, exclude_max=True))
def test_cut_file_campaign(file, cut_fraction):
    truncation_property(file, cut_fraction)


@pytest.mark.soak
@SOAK
@given(file=audio_files(), position=st.integers(0, 63), bit=st.integers(0, 7))
def test_damaged_header_campaign(file, position, bit):
    header_flip_property(file, position, bit)
