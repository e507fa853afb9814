"""A small fake CoVoST 2 en-de tree in the real layout: the split lists CoVoST's
``get_covost_splits.py`` writes, over Common Voice English mp3 clips (48 kHz).

Speech is tones (``ood_asr_fakes.speak``); each English word of letters A-D has a fixed
German translation, so the pairs are learnable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ood_asr_fakes import random_sentence, speak, write_mp3

HEADER = ("path", "sentence", "translation", "client_id")
GERMAN = {"A": "ein", "B": "Baum", "C": "Clown", "D": "Dach"}


def translate(sentence: str) -> str:
    """Each word's letters translated one by one, the sentence ending in a full stop."""
    words = [" ".join(GERMAN[c] for c in word) for word in sentence.split()]
    return ", ".join(words) + "."


def build_covost2(
    root: Path,
    counts: dict[str, int] | None = None,
    extra_rows: dict[str, list[tuple[str, str, str]]] | None = None,
    seed: int = 0,
) -> Path:
    """``root/covost_v2/covost_v2.en_de.<split>.tsv`` and
    ``root/cv-corpus-4-2019-12-10/en/clips/*.mp3``; ``extra_rows``: more (clip, sentence,
    translation) rows per split, their clips written too."""
    counts = counts or {"train": 12, "dev": 3, "test": 3}
    rng = np.random.default_rng(seed)
    lists = root / "covost_v2"
    lists.mkdir(parents=True, exist_ok=True)
    clips = root / "cv-corpus-4-2019-12-10" / "en" / "clips"
    for split, count in counts.items():
        rows = []
        for n in range(count):
            sentence = random_sentence(rng)
            rows.append(
                (f"common_voice_en_{split}{n:03d}.mp3", sentence.lower(), translate(sentence))
            )
        rows += (extra_rows or {}).get(split, [])
        lines = ["\t".join(HEADER)]
        for number, (clip, sentence, translation) in enumerate(rows):
            write_mp3(clips / clip, speak(sentence, 48_000, rng), 48_000)
            lines.append(f"{clip}\t{sentence}\t{translation}\tclient{number % 3}")
        (lists / f"covost_v2.en_de.{split}.tsv").write_text("\n".join(lines) + "\n", "utf-8")
    return root
