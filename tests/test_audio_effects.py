"""bench.audio_effects against the sox binary (sample for sample) and hand-computed cases."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bench.audio_effects import (
    SAMPLE_MAX,
    SUPERB_ASV_EFFECTS,
    Silence,
    SoxEffectError,
    apply_sox_effects,
    from_sox_samples,
    gain_output_precision,
    parse_samples,
    sox_gain,
    to_sox_samples,
)

SOX = shutil.which("sox")
needs_sox = pytest.mark.skipif(
    SOX is None,
    reason="the sox binary is not installed (apt-get install sox): the comparison with "
    "the reference implementation needs it",
)

RATES = (8000, 11025, 16000, 22050, 44100)
#: effect argument lists run through both sox and bench (gain, if any, comes first)
VARIANTS = (
    ["gain", "-3.0", "silence", "1", "0.1", "0.1%", "-1", "0.1", "0.1%"],  # s3prl's ASV chain
    ["silence", "1", "0.1", "0.1%", "-1", "0.1", "0.1%"],  # 16-bit precision: masked RMS
    ["silence", "1", "0.05", "0.3%", "1", "0.2", "0.5%"],  # stop at the first silence
    ["silence", "-l", "1", "0.05", "0.3%", "-2", "0.1", "1%"],  # leave silence, 2 periods
    ["gain", "-3.0", "silence", "0", "-1", "0.1", "-50d"],  # no start trim, dB threshold
    ["gain", "-6", "silence", "2", "20", "0.5%", "3", "400s", "0.2%"],  # sample counts
)


def bursts(rng: np.random.Generator, rate: int) -> np.ndarray:
    """16-bit noise bursts between silences of varied length and level (digital zero,
    near the 0.1 % threshold, well above it)."""
    parts = []
    for _ in range(rng.integers(3, 12)):
        length = int(rng.uniform(0.005, 0.6) * rate)
        kind = rng.integers(0, 4)
        if kind == 0:
            parts.append(np.zeros(length))
        elif kind == 1:
            parts.append(rng.normal(0, 10 ** rng.uniform(-4.5, -2.5), length))
        else:
            parts.append(rng.normal(0, 10 ** rng.uniform(-2, -0.5), length))
    return np.round(np.clip(np.concatenate(parts), -1, 1) * 32767).astype(np.int16)


def run_sox(tmp_path: Path, s16: np.ndarray, rate: int, args: list[str]) -> np.ndarray:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    soundfile.write(source, s16, rate, subtype="PCM_16")
    # 32-bit integer output: sox's own samples, no dither
    command = [SOX, "-D", str(source), "-b", "32", "-e", "signed-integer", str(target), *args]
    subprocess.run(command, check=True, capture_output=True)
    if soundfile.info(str(target)).frames == 0:
        return np.zeros(0, dtype=np.int32)
    return soundfile.read(target, dtype="int32")[0]


def run_bench(s16: np.ndarray, rate: int, args: list[str]) -> np.ndarray:
    samples, precision = s16.astype(np.int32) << 16, 16
    if args[0] == "gain":
        samples = sox_gain(samples, float(args[1]))
        precision = gain_output_precision(float(args[1]), precision)
        args = args[2:]
    assert args[0] == "silence"
    return Silence.parse(args[1:]).apply(samples, rate, precision)


@needs_sox
@pytest.mark.parametrize("seed", range(4))
def test_silence_and_gain_equal_sox_sample_for_sample(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    changed = 0
    for rate in RATES:
        s16 = bursts(rng, rate)
        for args in VARIANTS:
            expected = run_sox(tmp_path, s16, rate, args)
            got = run_bench(s16, rate, args)
            assert len(got) == len(expected), (rate, args)
            np.testing.assert_array_equal(got, expected, err_msg=f"{rate} Hz, {args}")
            changed += len(expected) != len(s16)
    assert changed >= len(RATES) * len(VARIANTS) // 2  # the signals do exercise the effect


@needs_sox
def test_superb_asv_chain_on_float_audio_equals_sox(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    s16 = bursts(rng, 16000)
    expected = run_sox(tmp_path, s16, 16000, VARIANTS[0])
    wave = soundfile.read(tmp_path / "in.wav", dtype="float32")[0]
    got = apply_sox_effects(wave, 16000, SUPERB_ASV_EFFECTS)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, from_sox_samples(expected))


def test_float_audio_maps_to_sox_samples_exactly() -> None:
    s16 = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    np.testing.assert_array_equal(to_sox_samples(s16 / 32768.0), s16.astype(np.int32) << 16)
    assert to_sox_samples(np.array([1.0, -1.5]))[0] == SAMPLE_MAX  # clipped


def test_gain_rounds_half_away_from_zero_and_clips() -> None:
    # 65536 * 10^(-3/20) = 46395.98...; 3 * 65536 * that = 139187.9...
    got = sox_gain(np.array([65536, -65536, 196608, 0]), -3.0)
    np.testing.assert_array_equal(got, [46396, -46396, 139188, 0])
    assert sox_gain(np.array([2**30 + 2**29]), 6.0)[0] == SAMPLE_MAX
    assert gain_output_precision(-3.0, 16) == 32 and gain_output_precision(0.0, 16) == 16


def test_silence_trims_a_tone_between_digital_silences() -> None:
    # 0.5 s zeros, 1 s of constant level, 0.5 s zeros at 16 kHz. The 20 ms (320-sample) RMS
    # rises above 0.1 % at the tone's first sample; after the tone it falls below once the
    # window holds only zeros: sample 24000 + 319. Everything after is a silence period.
    samples = np.zeros(32000, dtype=np.int32)
    samples[8000:24000] = 2**30
    spec = Silence.parse(["1", "0.1", "0.1%", "-1", "0.1", "0.1%"])
    assert spec.segments(samples, 16000) == [(8000, 24000 + 319)]
    np.testing.assert_array_equal(spec.apply(samples, 16000), samples[8000:24319])


def test_silence_removes_a_pause_in_the_middle_and_keeps_a_short_one() -> None:
    samples = np.zeros(48000, dtype=np.int32)
    samples[0:8000] = samples[12000:20000] = samples[22000:40000] = 2**29
    # A silence period is 0.15 s = 2400 samples below the threshold. The level is below
    # from 319 samples into each pause: 4000 - 319 = 3681 samples in the first pause (a
    # period: removed, then trimmed up to the next tone), 2000 - 319 = 1681 in the second
    # (kept), 7681 at the end (removed).
    segments = Silence.parse(["1", "0.1", "0.1%", "-1", "0.15", "0.1%"]).segments(samples, 16000)
    assert segments == [(0, 8319), (12000, 40319)]


def test_durations_follow_lsx_parsesamples() -> None:
    assert parse_samples("0.1", 16000) == 1600
    assert parse_samples("0.1", 11025) == 1103  # 1102.5 rounds up
    assert parse_samples("1600s", 16000) == 1600
    assert parse_samples("20", 16000) == 20  # a plain number is a sample count
    assert parse_samples("1:30.5", 100) == 9050
    with pytest.raises(SoxEffectError, match="duration"):
        parse_samples("abc", 16000)


def test_bad_effects_are_refused_with_the_reason() -> None:
    with pytest.raises(SoxEffectError, match=r"between 0\.0 and 100\.0"):
        Silence.parse(["1", "0.1", "150%"])
    with pytest.raises(SoxEffectError, match=r"less than 0\.0 dB"):
        Silence.parse(["1", "0.1", "3d"])
    with pytest.raises(SoxEffectError, match="resampling is not reproduced"):
        apply_sox_effects(np.zeros(100), 8000, SUPERB_ASV_EFFECTS)
    with pytest.raises(SoxEffectError, match="mono"):
        apply_sox_effects(np.zeros((100, 2)), 16000, SUPERB_ASV_EFFECTS)
    with pytest.raises(SoxEffectError, match="not reproduced"):
        apply_sox_effects(np.zeros(100), 16000, [("reverb",)])
