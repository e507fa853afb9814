"""The sox effects SUPERB's loaders apply, reproduced sample for sample in numpy.

s3prl 0.4.18 reads Speech Commands (KS) and VoxCeleb1 for verification (ASV) through
``torchaudio.sox_effects.apply_effects_file`` with these chains (``SUPERB_KS_EFFECTS``,
``SUPERB_ASV_EFFECTS``)::

    channels 1, rate 16000, gain -3.0                                   (KS, ASV)
    silence 1 0.1 0.1% -1 0.1 0.1%                                      (ASV only)

``apply_sox_effects`` runs such a chain the way libsox 14.4.2 does: samples are sox's
32-bit integers (a 16-bit file's sample s is s << 16), ``gain`` multiplies and rounds half
away from zero with clipping, and ``silence`` follows ``src/silence.c`` exactly, including
its running RMS sum in double precision. ``channels`` and ``rate`` are accepted where they
change nothing (mono audio already at that rate), which is the case for both corpora;
anything else raises. tests/test_audio_effects.py compares every path with the sox binary.

The ``silence`` effect, as silence.c implements it (mono):

- Level: the RMS of a sliding window of ``rate / 50`` samples (20 ms) that includes the
  current sample; the window starts empty (zeros) and is emptied again on every restart.
  The RMS is truncated to an integer sample value, masked to the signal's precision (the
  bits a 16-bit file really has; a non-integer gain makes it 32 bits), and compared as a
  fraction of full scale (``%``: times 100; ``d``: in dB) with ``>``.
- ``above_periods duration threshold`` (trim the start): drop audio until a run of
  ``duration`` consecutive samples above the threshold; with ``above_periods`` = k the
  first k - 1 such runs are dropped too, the k-th is kept and copying starts.
- ``below_periods duration threshold`` (while copying): a run of ``duration`` consecutive
  samples below the threshold is a silence period; shorter runs are kept. At the
  ``|below_periods|``-th period the run is dropped and the effect stops (positive) or, for
  a negative count, empties the RMS window and trims again (so every silence of at least
  ``duration`` is removed, and after it audio is dropped until the next run of ``duration``
  samples above the start threshold). Earlier periods are kept. At the end of the input, a
  pending below-threshold run shorter than ``duration`` is kept.
- ``-l`` (leave silence): below-threshold samples are copied as they come and also held;
  the held count is not reset by louder samples, and held samples are written again when
  a non-final period is found or the input ends. silence.c does exactly that, so bench does.

Durations follow ``lsx_parsesamples``: a time of ``t`` seconds is ``int(rate * t + 0.5)``
samples; a plain integer with a trailing ``s`` is a sample count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from bench.audio import AudioError, AudioLoader

#: s3prl 0.4.18 ``downstream/speech_commands/dataset.py`` ``EFFECTS``
SUPERB_KS_EFFECTS: tuple[tuple[str, ...], ...] = (
    ("channels", "1"),
    ("rate", "16000"),
    ("gain", "-3.0"),
)
#: s3prl 0.4.18 ``downstream/sv_voxceleb1/dataset.py`` ``EFFECTS`` (also
#: ``problem/asv/superb_asv.py``)
SUPERB_ASV_EFFECTS: tuple[tuple[str, ...], ...] = (
    *SUPERB_KS_EFFECTS,
    ("silence", "1", "0.1", "0.1%", "-1", "0.1", "0.1%"),
)

SAMPLE_MAX = 2**31 - 1  # SOX_SAMPLE_MAX
SAMPLE_MIN = -(2**31)  # SOX_SAMPLE_MIN
#: libsox's M_LN10, as dB_to_linear uses it
_LN10 = 2.30258509299404568402
#: RMS blocks computed at a time (the running sum is sequential; see _RunningRms)
_BLOCK = 1 << 11


class SoxEffectError(ValueError):
    """An effect or argument this module does not reproduce, or a malformed one."""


# -- sample conversion ------------------------------------------------------------------------


def to_sox_samples(wave: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as sox's int32 samples (SOX_FLOAT_64BIT_TO_SAMPLE: times 2^31,
    rounded half away from zero, clipped). Exact for audio read from 16- or 24-bit files."""
    scaled = np.asarray(wave, dtype=np.float64) * (SAMPLE_MAX + 1.0)
    rounded = np.where(scaled < 0, np.ceil(scaled - 0.5), np.floor(scaled + 0.5))
    return np.clip(rounded, SAMPLE_MIN, SAMPLE_MAX).astype(np.int32)


def from_sox_samples(samples: np.ndarray) -> np.ndarray:
    """sox's int32 samples as float32 in [-1, 1) (SOX_SAMPLE_TO_FLOAT: divided by 2^31)."""
    return (np.asarray(samples, dtype=np.float64) / (SAMPLE_MAX + 1.0)).astype(np.float32)


def _round_clip(values: np.ndarray) -> np.ndarray:
    """SOX_ROUND_CLIP_COUNT: round half away from zero, saturate at the int32 range."""
    rounded = np.where(values < 0, np.trunc(values - 0.5), np.trunc(values + 0.5))
    rounded = np.where(values <= SAMPLE_MIN - 0.5, SAMPLE_MIN, rounded)
    rounded = np.where(values >= SAMPLE_MAX + 0.5, SAMPLE_MAX, rounded)
    return rounded.astype(np.int32)


# -- gain ---------------------------------------------------------------------------------------


def gain_factor(gain_db: float) -> float:
    """sox's dB_to_linear, evaluated in the same order."""
    return math.exp(gain_db * _LN10 * 0.05)


def sox_gain(samples: np.ndarray, gain_db: float) -> np.ndarray:
    """The ``gain DB`` effect (no options): multiply, round half away from zero, clip."""
    return _round_clip(np.asarray(samples, dtype=np.int32) * gain_factor(gain_db))


def gain_output_precision(gain_db: float, precision: int) -> int:
    """Bits of precision after ``gain``: unchanged by an integer factor, else 32 (gain.c)."""
    factor = gain_factor(gain_db)
    return precision if factor == math.floor(factor) else 32


# -- silence ------------------------------------------------------------------------------------


def parse_samples(text: str, rate: float) -> int:
    """``lsx_parsesamples`` as ``silence`` calls it (default unit: samples): a time when the
    text has a colon or a dot or ends in ``t`` (``0.1``, ``1:30.5``), rounded to
    ``int(rate * t + 0.5)`` samples; else a sample count (``1600``, ``1600s``)."""
    body = text[:-1] if text.endswith(("t", "s")) else text
    is_time = ":" in body or "." in body or text.endswith("t")
    whole, dot, fraction = body.partition(".")
    parts = whole.split(":")
    well_formed = (
        len(parts) <= 3
        and all(p.isdigit() for p in parts[1:])
        and (parts[0].isdigit() or (parts[0] == "" and dot))
        and (not dot or fraction.isdigit())
        and not (text.endswith("s") and is_time)
    )
    if not well_formed:
        raise SoxEffectError(f"silence: cannot read the duration {text!r}")
    if not is_time:
        return int(float(body) + 0.5)
    samples = 0  # an unsigned integer in sox: each step truncates
    for index, part in enumerate(parts):
        samples = int(samples + rate * int(part or 0))
        if index < len(parts) - 1:
            samples *= 60
    if dot:
        samples = int(samples + (rate * float("." + fraction) + 0.5))
    return samples


def _parse_threshold(text: str) -> tuple[float, str]:
    unit = text[-1] if text[-1] in "%d" else "%"
    number = text[:-1] if text[-1] in "%d" else text
    try:
        value = float(number)
    except ValueError:
        raise SoxEffectError(f"silence: cannot read the threshold {text!r}") from None
    if unit == "%" and not 0.0 <= value <= 100.0:
        raise SoxEffectError("silence threshold should be between 0.0 and 100.0 %")
    if unit == "d" and value >= 0.0:
        raise SoxEffectError("silence threshold should be less than 0.0 dB")
    return value, unit


@dataclass(frozen=True)
class Threshold:
    value: float
    #: "%" (percent of full scale), "d" (dB) or "" (unset: any non-zero level is above)
    unit: str

    def above(self, rms: np.ndarray, precision: int) -> np.ndarray:
        """silence.c ``aboveThreshold`` on integer RMS values."""
        mask = np.int32(-1 << (32 - precision)) if precision < 32 else np.int32(-1)
        scaled = (rms & mask).astype(np.float64) / SAMPLE_MAX
        if self.unit == "%":
            scaled = scaled * 100
        elif self.unit == "d":
            with np.errstate(divide="ignore", invalid="ignore"):
                scaled = np.log10(scaled) * 20
        return scaled > self.value


@dataclass(frozen=True)
class Silence:
    """The arguments of ``silence [-l] above_periods [duration threshold] [below_periods
    duration threshold]``; see the module doc for what they do."""

    above_periods: int
    above_duration: str = "0"
    above_threshold: Threshold = Threshold(0.0, "")
    below_periods: int = 0
    below_duration: str = "0"
    below_threshold: Threshold = Threshold(0.0, "")
    leave_silence: bool = False

    @classmethod
    def parse(cls, args: Sequence[str]) -> Silence:
        args = list(args)
        leave = bool(args) and args[0] == "-l"
        args = args[1:] if leave else args
        if not args or not args[0].lstrip("-").isdigit():
            raise SoxEffectError(f"silence: expected above_periods first, got {args}")
        above_periods = int(args.pop(0))
        if above_periods < 0:
            raise SoxEffectError("silence: periods must not be negative")
        fields: dict = {"above_periods": above_periods, "leave_silence": leave}
        if above_periods > 0:
            if len(args) < 2:
                raise SoxEffectError("silence: above_periods needs a duration and a threshold")
            fields["above_duration"] = args.pop(0)
            fields["above_threshold"] = Threshold(*_parse_threshold(args.pop(0)))
        if args:
            if len(args) != 3 or not args[0].lstrip("-").isdigit():
                raise SoxEffectError(
                    f"silence: expected below_periods duration threshold, got {args}"
                )
            fields["below_periods"] = int(args[0])
            fields["below_duration"] = args[1]
            fields["below_threshold"] = Threshold(*_parse_threshold(args[2]))
        return cls(**fields)

    def segments(
        self, samples: np.ndarray, rate: float, precision: int = 32
    ) -> list[np.ndarray | tuple[int, int]]:
        """What the effect outputs, as pieces of the input in output order: ``(start,
        stop)`` ranges, or index arrays (only ``-l`` writes samples out of order)."""
        return _SilenceRun(self, np.asarray(samples, dtype=np.int32), rate, precision).run()

    def apply(self, samples: np.ndarray, rate: float, precision: int = 32) -> np.ndarray:
        """The effect's output samples (int32)."""
        samples = np.asarray(samples, dtype=np.int32)
        return assemble(samples, self.segments(samples, rate, precision))


def assemble(samples: np.ndarray, pieces: Sequence[np.ndarray | tuple[int, int]]) -> np.ndarray:
    """Concatenate the pieces of ``samples`` that ``Silence.segments`` returned."""
    parts = [samples[p[0] : p[1]] if isinstance(p, tuple) else samples[p] for p in pieces]
    return np.concatenate(parts) if parts else samples[:0].copy()


def _merged(pieces: list[np.ndarray | tuple[int, int]]) -> list[np.ndarray | tuple[int, int]]:
    """Adjacent ranges joined, empty ones dropped."""
    merged: list[np.ndarray | tuple[int, int]] = []
    for piece in pieces:
        if isinstance(piece, tuple) and piece[0] == piece[1]:
            continue
        last = merged[-1] if merged else None
        if isinstance(piece, tuple) and isinstance(last, tuple) and last[1] == piece[0]:
            merged[-1] = (last[0], piece[1])
        else:
            merged.append(piece)
    return merged


class _RunningRms:
    """silence.c's windowed RMS since the last ``clear``, as integer sample values.

    sox keeps the window's sum of squares as a running double sum (subtract the square
    leaving the window, add the new one), so its rounding depends on the whole history
    since the last clear; that recurrence is sequential and is computed here in Python
    floats (C doubles), only as far as the state machine reads. The rest is numpy.
    """

    def __init__(self, samples: np.ndarray, window: int):
        as_float = samples.astype(np.float64)
        self.squares = as_float * as_float
        self.sums = np.empty_like(self.squares)
        self.window = window
        self.clear(0)

    def clear(self, origin: int) -> None:
        self.origin = self.done = origin
        self.total = 0.0

    def levels(self, start: int, stop: int) -> np.ndarray:
        """RMS at samples ``start .. stop - 1`` (``start >= origin``), each sample in its
        own window."""
        if stop > self.done:
            self._extend(stop)
        with np.errstate(invalid="ignore"):
            rms = np.sqrt(self.sums[start:stop] / float(self.window))
        # C's double -> int32 conversion truncates; out of range or NaN gives INT_MIN (x86)
        invalid = ~(rms < 2.0**31)
        return np.where(invalid, SAMPLE_MIN, np.trunc(np.where(invalid, 0.0, rms))).astype(np.int32)

    def _extend(self, stop: int) -> None:
        squares, window, start = self.squares, self.window, self.done
        total, out = self.total, []
        warm_end = min(stop, self.origin + window)
        for new in squares[start:warm_end].tolist():  # the window still holds zeros
            total += new
            out.append(total)
        first = max(start, warm_end)
        if first < stop:
            leaving = squares[first - window : stop - window].tolist()
            for old, new in zip(leaving, squares[first:stop].tolist(), strict=True):
                total = total - old + new
                out.append(total)
        self.sums[start:stop] = out
        self.total, self.done = total, stop


def _first_run(flags: np.ndarray, length: int, carry: int = 0) -> tuple[int | None, int]:
    """Offset of the first run of ``length`` consecutive True values in ``flags``, where
    ``carry`` True values came just before it (the offset is then negative), or None; and
    the run of True values at its end (carry for the next block)."""
    carry = min(carry, length - 1)
    values = np.concatenate((np.ones(carry, dtype=np.int64), flags.astype(np.int64)))
    counts = np.concatenate(([0], np.cumsum(values)))
    full = np.flatnonzero(counts[length:] - counts[:-length] == length)
    if len(full):
        return int(full[0]) - carry, 0
    falses = np.flatnonzero(~flags)
    trailing = len(flags) - 1 - int(falses[-1]) if len(falses) else carry + len(flags)
    return None, trailing


class _SilenceRun:
    """One pass of the effect over one signal (mono)."""

    def __init__(self, spec: Silence, samples: np.ndarray, rate: float, precision: int):
        self.spec, self.samples, self.precision = spec, samples, precision
        self.size = len(samples)
        window = int(rate / 50)
        if window < 1:
            raise SoxEffectError(f"silence: sample rate {rate} is too low")
        self.rms = _RunningRms(samples, window)
        self.above_duration = max(1, parse_samples(spec.above_duration, rate))
        self.below_duration = max(1, parse_samples(spec.below_duration, rate))
        self.pieces: list[np.ndarray | tuple[int, int]] = []

    def _flags(self, start: int, stop: int, threshold: Threshold, want_above: bool) -> np.ndarray:
        above = threshold.above(self.rms.levels(start, stop), self.precision)
        return above if want_above else ~above

    def _blocks(self, start: int, length: int):
        """Consecutive (start, stop) blocks from ``start`` to the end of the input."""
        while start < self.size:
            stop = min(self.size, start + max(_BLOCK, length))
            yield start, stop
            start = stop

    def _find_run(self, start: int, length: int, threshold: Threshold, above: bool) -> int | None:
        """First run of ``length`` samples on the given side of ``threshold`` at or after
        ``start``, reading the RMS only as far as needed."""
        carry = 0
        for begin, stop in self._blocks(start, length):
            found, carry = _first_run(self._flags(begin, stop, threshold, above), length, carry)
            if found is not None:
                return begin + found
        return None

    def _find_nth(self, start: int, count: int, threshold: Threshold) -> int | None:
        """Index of the ``count``-th below-threshold sample at or after ``start`` (``-l``)."""
        for begin, stop in self._blocks(start, count):
            below = np.flatnonzero(self._flags(begin, stop, threshold, want_above=False))
            if len(below) >= count:
                return begin + int(below[count - 1])
            count -= len(below)
        return None

    def run(self) -> list[np.ndarray | tuple[int, int]]:
        position = 0
        trimming = self.spec.above_periods > 0
        while position < self.size:
            if trimming:
                position = self._trim(position)
                if position is None:
                    break
            position = self._copy(position)
            if position is None:
                break
            trimming = True
        return _merged(self.pieces)

    def _trim(self, position: int) -> int | None:
        """Drop audio up to the ``above_periods``-th run above the start threshold, keep that
        run; the position after it, or None at the end of the input."""
        periods = max(1, self.spec.above_periods)  # after a restart: 0 behaves as 1
        for _ in range(periods):
            found = self._find_run(
                position, self.above_duration, self.spec.above_threshold, above=True
            )
            if found is None:
                return None
            position = found + self.above_duration
        self.pieces.append((position - self.above_duration, position))
        return position

    def _copy(self, position: int) -> int | None:
        """Copy until the final silence period; the position to trim from after a restart,
        or None when the effect has ended."""
        spec = self.spec
        if spec.below_periods == 0:
            self.pieces.append((position, self.size))
            return None
        periods, duration = abs(spec.below_periods), self.below_duration
        for period in range(1, periods + 1):
            if spec.leave_silence:
                end, held = self._copy_leaving_silence(position, duration)
            else:
                found = self._find_run(position, duration, spec.below_threshold, above=False)
                end = None if found is None else found + duration
                held = None if found is None else (found, end)
                self.pieces.append((position, self.size if found is None else found))
            if end is None:
                return None
            assert held is not None
            if period < periods:
                self.pieces.append(held)  # a non-final period: the held run is written
                position = end
        if spec.below_periods > 0:
            return None
        self.rms.clear(end)
        return end

    def _copy_leaving_silence(
        self, position: int, duration: int
    ) -> tuple[int | None, np.ndarray | tuple[int, int] | None]:
        """``-l``: everything is copied; the ``duration``-th below sample ends a period."""
        last = self._find_nth(position, duration, self.spec.below_threshold)
        if last is None:
            self.pieces.append((position, self.size))
            below = self._flags(position, self.size, self.spec.below_threshold, want_above=False)
            self.pieces.append(position + np.flatnonzero(below))  # drained again at the end
            return None, None
        self.pieces.append((position, last + 1))
        below = self._flags(position, last + 1, self.spec.below_threshold, want_above=False)
        return last + 1, position + np.flatnonzero(below)


# -- chains -------------------------------------------------------------------------------------


def apply_sox_effects(
    wave: np.ndarray,
    sample_rate: int,
    effects: Sequence[Sequence[str]],
    precision: int = 16,
) -> np.ndarray:
    """Run a sox effect chain (as s3prl lists it) on mono float audio; float32 out.

    ``precision``: the bits the source file has (16 for the WAV corpora); it decides what
    ``silence`` measures when no non-integer gain came before it.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise SoxEffectError(f"expected mono audio, got an array of shape {wave.shape}")
    samples = to_sox_samples(wave)
    for name, *args in effects:
        if name == "channels":
            if args != ["1"]:
                raise SoxEffectError(f"channels {' '.join(args)}: only 'channels 1' on mono audio")
        elif name == "rate":
            if len(args) != 1 or float(args[0]) != sample_rate:
                raise SoxEffectError(
                    f"rate {' '.join(args)}: the audio is at {sample_rate} Hz; resampling is "
                    "not reproduced (both SUPERB corpora are already at 16 kHz)"
                )
        elif name == "gain":
            if len(args) != 1:
                raise SoxEffectError(f"gain {' '.join(args)}: only 'gain DB' is reproduced")
            samples = sox_gain(samples, float(args[0]))
            precision = gain_output_precision(float(args[0]), precision)
        elif name == "silence":
            samples = Silence.parse(args).apply(samples, sample_rate, precision)
        else:
            raise SoxEffectError(f"sox effect {name!r} is not reproduced")
    return from_sox_samples(samples)


# -- reading audio through a chain -----------------------------------------------------------

EffectChain = tuple[tuple[str, ...], ...]


def chain_name(effects: Sequence[Sequence[str]]) -> str:
    """A chain as sox's command line writes it: ``gain -3.0, silence 1 0.1 0.1% ...``."""
    return ", ".join(" ".join(effect) for effect in effects)


def chain_rate(effects: Sequence[Sequence[str]]) -> int | None:
    """The rate a chain's ``rate`` effect sets (the rate its later effects run at)."""
    rates = [int(float(args[0])) for name, *args in effects if name == "rate" and args]
    return rates[-1] if rates else None


class EffectsLoader:
    """``bench.audio.AudioLoader`` with a sox chain applied to every read: the file read at
    the chain's rate (soxr where the file is at another; the SUPERB corpora are not), the
    chain run (``apply_sox_effects``), then resampled to ``target_rate`` if that differs.
    The reference loaders apply the chain to the file before anything else, so a segment
    read here gets the chain applied to the segment: exact for point-wise chains (gain),
    not for ``silence`` (whose tasks read whole files)."""

    def __init__(self, target_rate: int, effects: Sequence[Sequence[str]]):
        self.effects: EffectChain = tuple(tuple(effect) for effect in effects)
        self.target_rate = int(target_rate)
        self.rate = chain_rate(self.effects) or self.target_rate
        self._loader = AudioLoader(self.rate)

    def load_at_chain_rate(
        self, path: Path | str, start: float = 0.0, end: float | None = None
    ) -> np.ndarray:
        """The effected audio at the chain's rate (its length is what s3prl filters on)."""
        wave = self._loader.load(path, start, end)
        try:
            return apply_sox_effects(wave, self.rate, self.effects)
        except SoxEffectError as error:
            raise AudioError(f"{path}: {error}") from None

    def load(self, path: Path | str, start: float = 0.0, end: float | None = None) -> np.ndarray:
        wave = self.load_at_chain_rate(path, start, end)
        if len(wave) == 0:
            raise AudioError(
                f"{path}: no audio is left after the sox effects {chain_name(self.effects)}"
            )
        if self.rate != self.target_rate:
            wave = soxr.resample(wave, self.rate, self.target_rate, quality="HQ").astype(np.float32)
        return wave

    def summary(self) -> str | None:
        return self._loader.summary()


def audio_loader(
    target_rate: int, effects: Sequence[Sequence[str]] | None = None
) -> AudioLoader | EffectsLoader:
    """The loader extraction reads a cache's audio with: ``EffectsLoader`` for a chain,
    else ``bench.audio.AudioLoader``."""
    if effects:
        return EffectsLoader(target_rate, effects)
    return AudioLoader(target_rate)
