"""A small fake LibriSpeech in the real layout, with a matching pronunciation lexicon.

Each word is a tone of its own pitch (with a short pause after it), so a probe on filterbank
frames can learn to recognise it: a word's phones are one phone per word here, its pitch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE = 16_000
#: word -> its pronunciation in the fake lexicon (phones of s3prl's set)
WORDS = {"ALPHA": "AE1 L", "BRAVO": "B R", "CHARLIE": "CH AA1", "DELTA": "D EH1", "ECHO": "EH0 K"}
WORD_SECONDS, PAUSE_SECONDS = 0.16, 0.06


def word_pitch(word: str) -> float:
    return 300.0 * 1.4 ** list(WORDS).index(word)


def speak(words: list[str], rng: np.random.Generator) -> np.ndarray:
    """Each word two half-tones (its two 'phones') then a pause, over faint noise."""
    parts = []
    for word in words:
        t = np.arange(round(WORD_SECONDS / 2 * SAMPLE_RATE)) / SAMPLE_RATE
        for factor in (1.0, 1.7):
            parts.append(0.3 * np.sin(2 * np.pi * word_pitch(word) * factor * t))
        parts.append(np.zeros(round(PAUSE_SECONDS * SAMPLE_RATE)))
    audio = np.concatenate([np.zeros(800), *parts])
    return audio + 0.005 * rng.standard_normal(len(audio))


def build_librispeech(
    root: Path,
    splits: dict[str, int] | None = None,
    speakers: int = 2,
    seed: int = 0,
) -> Path:
    """``root/LibriSpeech/<split>/<speaker>/<chapter>/`` with ``utterances`` per speaker per
    split, and ``root/librispeech-lexicon-*-g2p.txt``. Returns ``root``."""
    splits = splits or {"train-clean-100": 24, "dev-clean": 6, "test-clean": 6}
    rng = np.random.default_rng(seed)
    for s, (split, per_speaker) in enumerate(splits.items()):
        for k in range(speakers):
            speaker, chapter = str(100 * (s + 1) + k), str(10 + k)
            lines = []
            for n in range(per_speaker):
                words = list(rng.choice(list(WORDS), size=int(rng.integers(2, 5))))
                utterance = f"{speaker}-{chapter}-{n:04d}"
                write_flac(
                    root / "LibriSpeech" / split / speaker / chapter / f"{utterance}.flac",
                    speak(words, rng),
                )
                lines.append(f"{utterance} {' '.join(words)}")
            transcript = (
                root / "LibriSpeech" / split / speaker / chapter / f"{speaker}-{chapter}.trans.txt"
            )
            transcript.write_text("\n".join(lines) + "\n")
    write_lexicon(root)
    return root


def write_flac(path: Path, audio: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path


def write_lexicon(root: Path) -> None:
    """The two files s3prl's PR reads: most words in the first, one in the second, and a
    second pronunciation of ALPHA that must be ignored (the first listed wins)."""
    words = list(WORDS)
    first = [f"{w}\t{WORDS[w]}" for w in words[:-1]] + ["ALPHA\tAA0 L"]
    (root / "librispeech-lexicon-200k-g2p.txt").write_text("\n".join(first) + "\n")
    (root / "librispeech-lexicon-allothers-g2p.txt").write_text(f"{words[-1]} {WORDS[words[-1]]}\n")
