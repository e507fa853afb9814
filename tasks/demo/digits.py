"""The demo phone-recognition corpus: spoken digit sequences in the LibriSpeech layout.

espeak-ng voices (``tasks.demo.speech``) read sequences of three to five digit words
("THREE SEVEN ONE ..."). The corpus is written as LibriSpeech unpacks, read by the real
reader (``bench.tasks.corpora.librispeech``), with a pronunciation lexicon in the format of
s3prl's g2p lexicons (``WORD PH1 PH2 ...``, CMUdict pronunciations with stress)::

    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    digits-lexicon.txt

Splits follow the keyword demo's voices: 24 train voices (train-clean-100), 6 dev
(dev-clean), 10 test (test-clean), all distinct.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

from bench.tasks.corpora.librispeech import CORPUS_DIR
from bench.tasks.demo.generate import demo_voices
from bench.tasks.demo.sounds import SAMPLE_RATE, background_noise
from bench.tasks.demo.speech import Espeak
from bench.tasks.demo.tasks import DIGITS_LEXICON

#: CMUdict's pronunciations; ZERO's second one shows that the first listed wins
LEXICON = (
    ("ZERO", "Z IH1 R OW0"),
    ("ZERO", "Z IY1 R OW0"),
    ("ONE", "W AH1 N"),
    ("TWO", "T UW1"),
    ("THREE", "TH R IY1"),
    ("FOUR", "F AO1 R"),
    ("FIVE", "F AY1 V"),
    ("SIX", "S IH1 K S"),
    ("SEVEN", "S EH1 V AH0 N"),
    ("EIGHT", "EY1 T"),
    ("NINE", "N AY1 N"),
)
DIGITS = tuple(dict.fromkeys(word for word, _ in LEXICON))
#: voice split of ``demo_voices`` -> LibriSpeech split, and utterances per voice
SPLITS = {"train": ("train-clean-100", 24), "dev": ("dev-clean", 12), "test": ("test-clean", 12)}
CHAPTER = "1"


def digit_utterance(
    espeak: Espeak, voice, words: list[str], rng: np.random.Generator
) -> np.ndarray:
    """The words spoken by ``voice``, with short random pauses around, over faint noise."""
    speech = espeak.say(" ".join(words).lower(), voice)
    speech = speech / (np.abs(speech).max() + 1e-9) * rng.uniform(0.3, 0.9)
    before, after = (round(rng.uniform(0.05, 0.3) * SAMPLE_RATE) for _ in range(2))
    audio = background_noise(before + len(speech) + after, rng, level=rng.uniform(0.002, 0.01))
    audio[before : before + len(speech)] += speech
    return np.clip(audio, -1, 1)


def build_digits(root: Path, seed: int = 4321) -> None:
    rng = np.random.default_rng(seed)
    espeak = Espeak()
    voices = demo_voices(np.random.default_rng(1234))  # the keyword demo's speakers
    (root / DIGITS_LEXICON).write_text("".join(f"{w} {p}\n" for w, p in LEXICON))
    for voice_split, (split, per_voice) in SPLITS.items():
        for number, voice in enumerate(voices[voice_split]):
            speaker = f"{1000 * (1 + list(SPLITS).index(voice_split)) + number}"
            chapter_dir = root / CORPUS_DIR / split / speaker / CHAPTER
            chapter_dir.mkdir(parents=True)
            lines = []
            for k in range(per_voice):
                words = [DIGITS[i] for i in rng.integers(len(DIGITS), size=int(rng.integers(3, 6)))]
                utterance = f"{speaker}-{CHAPTER}-{k:04d}"
                audio = digit_utterance(espeak, voice, words, rng)
                soundfile.write(
                    chapter_dir / f"{utterance}.flac", audio, SAMPLE_RATE, subtype="PCM_16"
                )
                lines.append(f"{utterance} {' '.join(words)}\n")
            (chapter_dir / f"{speaker}-{CHAPTER}.trans.txt").write_text("".join(lines))


def build_digits_in_fresh_process(root: Path) -> None:
    """``build_digits`` in a child process: espeak-ng output is the same bytes every time
    only from a fresh engine (see ``generate.build_speech_commands_in_fresh_process``)."""
    child = subprocess.run(
        [sys.executable, "-m", __name__, str(root)], capture_output=True, text=True
    )
    if child.returncode != 0:
        detail = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "no output"
        raise RuntimeError(f"generating the demo digits corpus in {root} failed: {detail}")


if __name__ == "__main__":  # the child of build_digits_in_fresh_process
    build_digits(Path(sys.argv[1]))
