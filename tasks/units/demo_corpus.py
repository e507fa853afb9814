"""The demo unit corpus: espeak-ng syllable sequences, phone-aligned by the synthesiser itself.

For ``demo.units`` and ``demo.units_abx`` (``bench.tasks.units.demo``). Eight of the keyword
demo's voices read five sequences of six CV syllables each ("PAH TEE GAH ..."): stop
consonants between vowels recur in the same context, which within-context ABX needs. Every phone's start is espeak-ng's own phoneme event
(``espeakINITIALIZE_PHONEME_EVENTS``: each event names the phoneme, in espeak's phoneme
mnemonics, and gives the sample where it starts). The corpus is written in the layouts the
real tasks read::

    LibriSpeech/dev-clean/<speaker>/1/<speaker>-1-<nnnn>.flac, <speaker>-1.trans.txt
    dev-clean.tsv     Spin's frame-label file: one phone per 10 ms frame
    dev-clean.item    Libri-Light's ABX item file: one token per phone, with its context

Stress marks are dropped (``'i:`` -> ``i:``); espeak's pauses and the audio around the
speech are ``sil``.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.tasks.corpora.librispeech import CORPUS_DIR
from bench.tasks.corpora.phone_alignments import LABEL_RATE, SILENCE
from bench.tasks.demo.generate import demo_voices
from bench.tasks.demo.sounds import SAMPLE_RATE, background_noise
from bench.tasks.demo.speech import ESPEAK_RATE, Espeak, SpeechSynthesisError
from bench.tasks.units.demo import ALIGNMENTS, ITEMS, SPLIT

VOICES, UTTERANCES_PER_VOICE, SYLLABLES, CHAPTER = 8, 5, 6, "1"
#: stop consonants before "ah" (espeak's A:) or, less often, "ee" (i:)
CONSONANTS, VOWELS, VOWEL_ODDS = ("P", "T", "K", "B", "D", "G"), ("AH", "EE"), (0.75, 0.25)
_PHONEME_EVENTS = 0x0001  # espeakINITIALIZE_PHONEME_EVENTS
_EVENT_END, _EVENT_PHONEME = 0, 7  # espeakEVENT_LIST_TERMINATED, espeakEVENT_PHONEME


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    """espeak-ng's ``espeak_EVENT`` (speak_lib.h)."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


class TimedEspeak(Espeak):
    """``Espeak`` that also keeps each phoneme event: ``(start sample at 22,050 Hz, name)``."""

    def __init__(self) -> None:
        super().__init__()
        try:
            import espeakng_loader

            data_path = espeakng_loader.get_data_path().encode()
        except ImportError:
            data_path = None
        if self._lib.espeak_Initialize(2, 0, data_path, _PHONEME_EVENTS) != ESPEAK_RATE:
            raise SpeechSynthesisError("espeak-ng failed to initialise with phoneme events")
        self._lib.espeak_SetSynthCallback(self._callback)
        self.phonemes: list[tuple[int, str]] = []

    def _collect(self, samples, count, events) -> int:  # type: ignore[no-untyped-def]
        event = ctypes.cast(events, ctypes.POINTER(_Event))
        index = 0
        while events and event[index].type != _EVENT_END:
            if event[index].type == _EVENT_PHONEME:
                name = bytes(event[index].id.string).split(b"\0")[0].decode()
                self.phonemes.append((int(event[index].sample), name))
            index += 1
        return super()._collect(samples, count, events)


def phone_label(name: str) -> str:
    """espeak's mnemonic without stress marks; its pauses (``_``, ``_:``) are silence."""
    label = name.lstrip("',")
    return SILENCE if not label or label.startswith("_") else label


@dataclass(frozen=True)
class Phone:
    label: str
    onset: float
    offset: float


def aligned_utterance(
    espeak: TimedEspeak, voice, words: list[str], rng: np.random.Generator
) -> tuple[np.ndarray, list[Phone]]:
    """16 kHz audio (speech between short pauses, over faint noise) and its phones."""
    espeak.phonemes = []
    speech = espeak.say(" ".join(words).lower(), voice)
    speech = speech / (np.abs(speech).max() + 1e-9) * rng.uniform(0.3, 0.9)
    before, after = (round(rng.uniform(0.1, 0.25) * SAMPLE_RATE) for _ in range(2))
    audio = background_noise(before + len(speech) + after, rng, level=rng.uniform(0.002, 0.01))
    audio[before : before + len(speech)] += speech
    lead, total = before / SAMPLE_RATE, len(audio) / SAMPLE_RATE
    starts = [lead + sample / ESPEAK_RATE for sample, _ in espeak.phonemes]
    ends = [*starts[1:], lead + len(speech) / SAMPLE_RATE]
    phones = [Phone(SILENCE, 0.0, starts[0] if starts else total)]
    for (_, name), onset, offset in zip(espeak.phonemes, starts, ends, strict=True):
        if offset > onset:
            phones.append(Phone(phone_label(name), onset, offset))
    phones.append(Phone(SILENCE, ends[-1] if ends else total, total))
    return np.clip(audio, -1, 1), phones


def frame_labels(phones: list[Phone], num_frames: int) -> list[str]:
    """The phone holding each 10 ms frame's centre (as MFA TextGrids are read)."""
    labels, current = [], 0
    for frame in range(num_frames):
        centre = (frame + 0.5) / LABEL_RATE
        while current < len(phones) - 1 and centre >= phones[current].offset:
            current += 1
        labels.append(phones[current].label)
    return labels


def item_lines(utterance: str, speaker: str, phones: list[Phone]) -> list[str]:
    """One ABX token per non-silence phone, its neighbours as context."""
    lines = []
    for before, phone, after in zip(phones, phones[1:], phones[2:], strict=False):
        if phone.label != SILENCE:
            lines.append(
                f"{utterance} {phone.onset:.4f} {phone.offset:.4f} {phone.label} "
                f"{before.label} {after.label} {speaker}"
            )
    return lines


def build_units_demo(root: Path, seed: int = 2468) -> None:
    rng = np.random.default_rng(seed)
    espeak = TimedEspeak()
    voices = demo_voices(np.random.default_rng(1234))["test"][:VOICES]
    frames, items = [], ["#file_ID onset offset #phone prev-phone next-phone speaker"]
    for number, voice in enumerate(voices):
        speaker = str(5000 + number)
        chapter_dir = root / CORPUS_DIR / SPLIT / speaker / CHAPTER
        chapter_dir.mkdir(parents=True)
        transcript = []
        for k in range(UTTERANCES_PER_VOICE):
            words = [
                CONSONANTS[c] + VOWELS[v]
                for c, v in zip(
                    rng.integers(len(CONSONANTS), size=SYLLABLES),
                    rng.choice(len(VOWELS), size=SYLLABLES, p=VOWEL_ODDS),
                    strict=True,
                )
            ]
            utterance = f"{speaker}-{CHAPTER}-{k:04d}"
            audio, phones = aligned_utterance(espeak, voice, words, rng)
            soundfile.write(chapter_dir / f"{utterance}.flac", audio, SAMPLE_RATE, subtype="PCM_16")
            transcript.append(f"{utterance} {' '.join(words)}\n")
            num_frames = int(len(audio) / SAMPLE_RATE * LABEL_RATE)
            frames.append(f"{utterance}\t{','.join(frame_labels(phones, num_frames))}\n")
            items += item_lines(utterance, speaker, phones)
        (chapter_dir / f"{speaker}-{CHAPTER}.trans.txt").write_text("".join(transcript))
    (root / ALIGNMENTS).write_text("".join(frames))
    (root / ITEMS).write_text("\n".join(items) + "\n")


def build_units_demo_in_fresh_process(root: Path) -> None:
    """``build_units_demo`` in a child process (espeak-ng is deterministic only from a
    fresh engine, as ``bench.tasks.demo.digits`` explains)."""
    child = subprocess.run(
        [sys.executable, "-m", __name__, str(root)], capture_output=True, text=True
    )
    if child.returncode != 0:
        detail = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "no output"
        raise RuntimeError(f"generating the demo unit corpus in {root} failed: {detail}")


if __name__ == "__main__":  # the child of build_units_demo_in_fresh_process
    build_units_demo(Path(sys.argv[1]))
