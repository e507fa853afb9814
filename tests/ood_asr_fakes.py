"""Small fake Common Voice locales and SBCSAE trees in the real layouts.

Speech is tones: each letter its own pitch, a pause between words, so a probe on filterbank
frames can learn to spell it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

LETTERS = "ABCD"
LETTER_SECONDS, PAUSE_SECONDS = 0.12, 0.08
CV_HEADER = (
    "client_id",
    "path",
    "sentence",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accent",
    "locale",
    "segment",
)


def speak(text: str, rate: int, rng: np.random.Generator) -> np.ndarray:
    parts = [np.zeros(rate // 20)]
    for character in text.upper():
        if character in LETTERS:
            t = np.arange(round(LETTER_SECONDS * rate)) / rate
            pitch = 300.0 * 1.5 ** LETTERS.index(character)
            parts.append(0.3 * np.sin(2 * np.pi * pitch * t))
        else:
            parts.append(np.zeros(round(PAUSE_SECONDS * rate)))
    parts.append(np.zeros(rate // 20))
    audio = np.concatenate(parts)
    return (audio + 0.003 * rng.standard_normal(len(audio))).astype(np.float32)


def random_sentence(rng: np.random.Generator) -> str:
    words = ["".join(rng.choice(list(LETTERS), size=int(rng.integers(1, 3)))) for _ in range(2)]
    return " ".join(words)


def write_mp3(path: Path, audio: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, format="MP3")
    return path


def build_common_voice(
    root: Path, locale: str = "es", counts: dict[str, int] | None = None, seed: int = 0
) -> Path:
    """``root/cv-corpus-7.0-2021-07-21/<locale>/{train,dev,test}.tsv`` and ``clips/*.mp3``
    (48 kHz). Sentences are lower case with punctuation (normalisation spells them in
    capitals without it); every fourth clip has another accent (left out for es)."""
    counts = counts or {"train": 24, "dev": 6, "test": 6}
    rng = np.random.default_rng(seed)
    locale_dir = root / "cv-corpus-7.0-2021-07-21" / locale
    for split, count in counts.items():
        rows = ["\t".join(CV_HEADER)]
        for n in range(count):
            sentence = random_sentence(rng)
            clip = f"common_voice_{locale}_{split}{n:03d}.mp3"
            write_mp3(locale_dir / "clips" / clip, speak(sentence, 48_000, rng), 48_000)
            accent = "mexicano" if n % 4 else "andino"
            written = sentence.lower().replace(" ", ", ", 1) + "."
            rows.append(f"client{n % 3}\t{clip}\t{written}\t2\t0\t\t\t{accent}\t{locale}\t")
        (locale_dir / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def build_sbcsae(root: Path, per_recording: int = 3, seed: int = 0) -> Path:
    """``root/SBCSAE/mp3/NN.mp3`` (22.05 kHz) and ``trn/SBC0NN.trn`` for all 60 recordings,
    with ``per_recording`` usable utterances each plus lines the preprocessing leaves out
    (overlap marks, a too-long line, an overlapping pair)."""
    rng = np.random.default_rng(seed)
    corpus = root / "SBCSAE"
    rate = 22_050
    (corpus / "trn").mkdir(parents=True, exist_ok=True)
    for number in range(1, 61):
        audio, lines, clock = [], [], 0.0
        for _ in range(per_recording):
            sentence = random_sentence(rng)
            wave = speak(sentence, rate, rng)
            start, end = clock, clock + len(wave) / rate
            lines.append(f"{start:.2f} {end:.2f}\tJOHN:\t{sentence.lower()}, =")
            audio.append(wave)
            clock = end
        gap = np.zeros(rate)  # one second of silence for the lines left out
        audio.append(gap)
        lines.append(f"{clock:.2f} {clock + 0.5:.2f}\tMARY:\t[overlapping] talk")
        lines.append(f"{clock:.2f} {clock + 16:.2f}\tMARY:\ta b")
        total = np.concatenate(audio)
        write_mp3(corpus / "mp3" / f"{number:02d}.mp3", total, rate)
        (corpus / "trn" / f"SBC{number:03d}.trn").write_text("\n".join(lines) + "\n")
    return root
