"""Reading audio for the encoders: one policy for every reader.

Policy: multi-channel audio is downmixed to mono by averaging channels, and audio at
another sample rate is resampled to the upstream's rate with soxr (high quality). Both
are reported once per extraction (``AudioLoader.summary``), never per file. Empty,
unreadable, truncated or non-finite audio is an ``AudioError`` naming the file and the
cause (the operating system's, e.g. "permission denied", where libsndfile only says
"System error.").

Truncation: libsndfile quietly shortens a WAV whose data chunk is cut off to what the file
holds, so a WAV's header is checked against the file's size; other formats are checked
by the number of frames actually decoded.
"""

from __future__ import annotations

import os
import struct
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
        raise AudioError(f"{path}: cannot read audio ({_reason(path, error)})") from None
    _check_wav_length(path)
    return AudioInfo(sample_rate=info.samplerate, frames=info.frames, channels=info.channels)


def _reason(path: Path | str, error: Exception) -> str:
    """Why a file could not be opened or decoded: the OS's cause when there is one."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as os_error:
        return _os_cause(os_error)
    reason = getattr(error, "error_string", None) or str(error).split(":")[-1]
    return reason.removeprefix("Error : ").strip() or type(error).__name__


def _os_cause(error: OSError) -> str:
    return (error.strerror or type(error).__name__).lower()


def _check_wav_length(path: Path | str) -> None:
    """A RIFF/WAVE file must hold the data its header declares."""
    try:
        declared = wav_data_extent(path)
        size = os.path.getsize(path)
    except OSError as error:
        raise AudioError(f"{path}: cannot read audio ({_os_cause(error)})") from None
    if declared is None:
        return
    start, length, byte_rate = declared
    if start + length > size:
        held = max(0, size - start)
        raise AudioError(
            f"{path}: truncated: the header declares {length:,} bytes of audio "
            f"({length / byte_rate:.3f} s), the file holds {held:,} ({held / byte_rate:.3f} s)"
        )


def wav_data_extent(path: Path | str) -> tuple[int, int, int] | None:
    """(offset, declared length, bytes per second) of a WAV file's data chunk; None for
    anything else and for lengths left open by streaming writers (0 or 0xFFFFFFFF)."""
    with open(path, "rb") as handle:
        riff = handle.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return None
        byte_rate = 0
        while len(header := handle.read(8)) == 8:
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"fmt " and length >= 16:
                fmt = handle.read(16)
                if len(fmt) < 16:
                    return None  # libsndfile reports such a header itself
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
                handle.seek(length - 16 + (length & 1), os.SEEK_CUR)
            elif chunk == b"data":
                if length in (0, 0xFFFFFFFF) or byte_rate <= 0:
                    return None
                return handle.tell(), length, byte_rate
            else:
                handle.seek(length + (length & 1), os.SEEK_CUR)
    return None


#: frames decoded per read: a damaged header may declare billions of frames, so memory
#: follows what the file holds, not what it claims
READ_BLOCK_FRAMES = 1 << 24


def _read_frames(handle: soundfile.SoundFile, wanted: int) -> np.ndarray:
    """Up to ``wanted`` frames ``[n, channels]``; fewer when the file ends first."""
    blocks = []
    while wanted > 0:
        block = handle.read(min(wanted, READ_BLOCK_FRAMES), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        blocks.append(block)
        wanted -= block.shape[0]
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros((0, handle.channels), np.float32)


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
        _check_wav_length(path)
        try:
            with soundfile.SoundFile(str(path)) as handle:
                rate = handle.samplerate
                first = round(start * rate)
                last = handle.frames if end is None else min(round(end * rate), handle.frames)
                handle.seek(min(first, handle.frames))
                wanted = max(0, last - first)
                samples = _read_frames(handle, wanted)
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise AudioError(f"{path}: cannot read audio ({_reason(path, error)})") from None
        if samples.shape[0] == 0:
            segment = "" if start == 0 and end is None else f" in segment [{start}, {end}] s"
            raise AudioError(f"{path}: no samples{segment} (empty or truncated file)")
        if samples.shape[0] < wanted:
            raise AudioError(
                f"{path}: truncated: decoded {samples.shape[0]:,} of the {wanted:,} frames "
                "the header declares"
            )
        if samples.shape[1] > 1:
            self.downmixed += 1
        wave = samples.mean(axis=1, dtype=np.float32)
        if not np.isfinite(wave).all():
            raise AudioError(f"{path}: audio contains NaN or infinite samples")
        if rate != self.target_rate:
            self.resampled_from[rate] += 1
            wave = soxr.resample(wave, rate, self.target_rate, quality="HQ").astype(np.float32)
            if len(wave) == 0:
                raise AudioError(
                    f"{path}: {samples.shape[0]} sample(s) at {rate} Hz is too short to "
                    f"resample to {self.target_rate} Hz"
                )
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
