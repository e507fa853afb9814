"""Builds demo.sd's corpus: two-voice espeak-ng conversations in s3prl's Kaldi layout.

bench writes ``train/``, ``dev/`` and ``test/`` offline and deterministically, the
directories SUPERB SD reads (``bench.tasks.corpora.kaldi_diarization``): each recording is
a conversation of a low and a high espeak-ng voice taking turns of a few filler words,
with pauses, and now and then the next turn starting before the last one ends (overlapped
speech, as Libri2Mix has). Dev and test use voices that training does not. A turn's times
are where its synthesised audio is placed, trimmed of espeak-ng's leading and trailing
silence, so the reference RTTM is exact.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.tasks.demo.generate import build_in_fresh_process
from bench.tasks.demo.sounds import SAMPLE_RATE, background_noise
from bench.tasks.demo.speech import Espeak, Voice

WORDS = (
    "the", "big", "old", "river", "garden", "yellow", "window", "we", "saw", "went", "near",
    "market", "doctor", "basket", "then", "there", "with", "silver", "ticket", "orange",
)  # fmt: skip
#: split -> (low voices, high voices): a recording pairs one of each
VOICES = {
    "train": (
        (Voice("en-us", "m1", 25, 160), Voice("en-us", "m3", 30, 150), Voice("en", "m2", 20, 170)),
        (Voice("en-us", "f2", 75, 160), Voice("en-us", "f4", 80, 150), Voice("en", "f1", 70, 170)),
    ),
    "dev": ((Voice("en-gb-x-rp", "m5", 28, 155),), (Voice("en-gb-x-rp", "f3", 78, 155),)),
    "test": ((Voice("en-029", "m7", 22, 165),), (Voice("en-us-nyc", "f5", 72, 160),)),
}
RECORDINGS = {"train": 32, "dev": 8, "test": 8}
TURNS_PER_RECORDING = (4, 7)
SEED = 2020


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float


@dataclass(frozen=True)
class Conversation:
    """One recording: its name, 16 kHz audio and speaker turns."""

    name: str
    audio: np.ndarray
    turns: tuple[Turn, ...]


def write_kaldi_dir(directory: Path, conversations: Sequence[Conversation]) -> Path:
    """A Kaldi diarization directory: ``wav/<name>.wav``, wav.scp, segments (one per turn),
    utt2spk, reco2dur and rttm, as ``prepare_diarization.py`` writes them."""
    (directory / "wav").mkdir(parents=True)
    files: dict[str, list[str]] = {
        name: [] for name in ("wav.scp", "segments", "utt2spk", "reco2dur", "rttm")
    }
    for conversation in conversations:
        name = conversation.name
        soundfile.write(
            directory / "wav" / f"{name}.wav",
            np.clip(conversation.audio, -1, 1),
            SAMPLE_RATE,
            subtype="PCM_16",
        )
        files["wav.scp"].append(f"{name} wav/{name}.wav")
        files["reco2dur"].append(f"{name} {len(conversation.audio) / SAMPLE_RATE:.3f}")
        for number, turn in enumerate(conversation.turns):
            segment = f"{name}_{turn.speaker}_{number:03d}"
            files["segments"].append(f"{segment} {name} {turn.start:.3f} {turn.end:.3f}")
            files["utt2spk"].append(f"{segment} {turn.speaker}")
            files["rttm"].append(
                f"SPEAKER {name} 1 {turn.start:.3f} {turn.end - turn.start:.3f} "
                f"<NA> <NA> {turn.speaker} <NA> <NA>"
            )
    for file_name, lines in files.items():
        (directory / file_name).write_text("".join(f"{line}\n" for line in lines))
    return directory


def _trimmed(audio: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """``audio`` without its leading and trailing near-silence."""
    (loud,) = np.nonzero(np.abs(audio) > floor)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def _conversation(
    name: str,
    voices: tuple[Voice, Voice],
    say: Callable[[str, Voice], np.ndarray],
    rng: np.random.Generator,
) -> Conversation:
    placed: list[tuple[float, np.ndarray, str]] = []
    time = float(rng.uniform(0.2, 0.6))
    speaker = int(rng.integers(2))
    for _ in range(int(rng.integers(*TURNS_PER_RECORDING, endpoint=True))):
        voice = voices[speaker]
        words = " ".join(str(w) for w in rng.choice(WORDS, size=int(rng.integers(2, 5))))
        speech = _trimmed(say(words, voice))
        placed.append((time, speech, f"{voice.language}-{voice.variant}"))
        seconds = len(speech) / SAMPLE_RATE
        overlap = rng.random() < 0.25
        time += seconds - float(rng.uniform(0.2, 0.5)) if overlap else seconds
        time += 0.0 if overlap else float(rng.uniform(0.15, 0.8))
        speaker = 1 - speaker
    length = max(start + len(speech) / SAMPLE_RATE for start, speech, _ in placed) + 0.3
    audio = background_noise(int(length * SAMPLE_RATE), rng, level=0.003)
    turns = []
    for start, speech, speaker_name in placed:
        first = round(start * SAMPLE_RATE)
        audio[first : first + len(speech)] += speech
        end = (first + len(speech)) / SAMPLE_RATE
        turns.append(Turn(speaker_name, round(first / SAMPLE_RATE, 3), round(end, 3)))
    return Conversation(name, audio.astype(np.float32), tuple(turns))


def build_diarization_demo(root: Path, seed: int = SEED) -> None:
    """``root/{train,dev,test}/`` (see the module doc)."""
    rng = np.random.default_rng(seed)
    espeak = Espeak()
    for split, count in RECORDINGS.items():
        lows, highs = VOICES[split]
        conversations = [
            _conversation(
                f"{split}_conv{n:03d}",
                (lows[n % len(lows)], highs[(n // len(lows)) % len(highs)]),
                espeak.say,
                rng,
            )
            for n in range(count)
        ]
        write_kaldi_dir(root / split, conversations)


def build_diarization_demo_in_fresh_process(root: Path) -> None:
    """``build_diarization_demo`` in a child process (``build_in_fresh_process``)."""
    build_in_fresh_process(__name__, root, "diarization")


if __name__ == "__main__":  # the child of build_diarization_demo_in_fresh_process
    build_diarization_demo(Path(sys.argv[1]))
