"""A small fake Audio SNIPS in s3prl's preprocessed layout (all.iob.snips.txt, slots.txt,
train/ valid/ test/ wav folders), each word a tone of its own pitch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE = 16_000
#: word -> its slot type ("O": none)
WORDS = {"PLAY": "O", "SOME": "O", "JAZZ": "genre", "ROCK": "genre", "IN": "O", "PARIS": "city"}
SLOT_TYPES = ("genre", "city")
SPEAKERS = {"train": ("Ivy", "Joey"), "valid": ("Amy",), "test": ("Emma",)}


def sentence(rng: np.random.Generator) -> list[str]:
    return ["PLAY", *(["SOME"] if rng.random() < 0.5 else []), str(rng.choice(["JAZZ", "ROCK"])),
            *(["IN", "PARIS"] if rng.random() < 0.6 else [])]  # fmt: skip


def speak(words: list[str], rng: np.random.Generator) -> np.ndarray:
    parts = [np.zeros(800)]
    for word in words:
        t = np.arange(round(0.18 * SAMPLE_RATE)) / SAMPLE_RATE
        parts.append(0.3 * np.sin(2 * np.pi * 250.0 * 1.35 ** list(WORDS).index(word) * t))
        parts.append(np.zeros(round(0.05 * SAMPLE_RATE)))
    audio = np.concatenate(parts)
    return audio + 0.005 * rng.standard_normal(len(audio))


def iob_line(utterance: str, words: list[str], intent: str = "PlayMusic") -> str:
    tags = [WORDS[w] for w in words]
    return f"{utterance} BOS {' '.join(words)} EOS\tO {' '.join(tags)} {intent}"


def build_snips(root: Path, per_speaker: int = 12, seed: int = 0) -> Path:
    """``root/SNIPS/`` with ``per_speaker`` utterances per voice and split; the transcript
    file also lists utterances of other voices, which have no audio (as in the real one)."""
    rng = np.random.default_rng(seed)
    corpus = root / "SNIPS"
    lines = []
    for split, speakers in SPEAKERS.items():
        for speaker in (*speakers, "Salli" if split != "train" else "Brian"):
            for n in range(per_speaker):
                utterance = f"{speaker}-snips-{split}-{n}"
                words = sentence(rng)
                lines.append(iob_line(utterance, words))
                if speaker in speakers:
                    path = corpus / split / f"{utterance}.wav"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    soundfile.write(path, speak(words, rng), SAMPLE_RATE, subtype="PCM_16")
    (corpus / "all.iob.snips.txt").write_text("\n".join(lines) + "\n")
    (corpus / "slots.txt").write_text("\n".join(["O", *SLOT_TYPES]))
    return root
