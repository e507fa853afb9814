"""LibriMix (Cosentino et al., 2020): Libri2Mix clean mixtures, as SUPERB-SG's SS reads it.

Layout, as LibriMix's ``generate_librimix.sh`` writes it::

    <dir>/wav16k/min/train-100/{mix_clean,s1,s2}/<mixture id>.wav   13,900 mixtures
    <dir>/wav16k/min/dev/...                                       3,000
    <dir>/wav16k/min/test/...                                      3,000

(``wav8k`` for the 8 kHz version, which the audio policy resamples to 16 kHz.) s3prl
(``separation_stft/scripts/LibriMix/data_prepare.py``) lists each folder's wav files
sorted by name; an item is the ``mix_clean`` file with ``(s1, s2)`` as its label. Its v1
recipe validates on ``dev_1000``: ``subsample.py`` sorts the dev ids, shuffles them with
Python's ``random.seed(7)``, keeps the first 1,000 and sorts them again (``dev_subset``).
"""

from __future__ import annotations

import random
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.corpus_files import list_files
from bench.data import DataError, Item

HOW_TO_GET = (
    "generate Libri2Mix with https://github.com/JorisCos/LibriMix (generate_librimix.sh: it "
    "downloads LibriSpeech and WHAM! and writes Libri2Mix/wav16k/min/...), then pass the "
    "Libri2Mix folder as DIR"
)
#: bench split -> LibriMix folder
FOLDERS = {"train": "train-100", "dev": "dev", "test": "test"}
MIXTURES = {"train": 13_900, "dev": 3_000, "test": 3_000}
SOURCES = ("s1", "s2")


def split_dir(corpus_dir: Path, split: str, sample_rate: str = "16k") -> Path:
    return corpus_dir / f"wav{sample_rate}" / "min" / FOLDERS[split]


def read_split(corpus_dir: Path, split: str, sample_rate: str = "16k") -> list[Item]:
    folder = split_dir(corpus_dir, split, sample_rate)
    mixtures = folder / "mix_clean"
    if not mixtures.is_dir():
        raise DataError(f"{mixtures} is missing (Libri2Mix's {split} mixtures)")
    return [
        Item(path.stem, path, tuple(folder / source / path.name for source in SOURCES))
        for path in list_files(mixtures, (".wav",))
    ]


def dev_subset(items: list[Item], count: int = 1000, seed: int = 7) -> list[Item]:
    """s3prl's ``subsample.py``: ``count`` ids drawn with Python's ``random`` seeded ``seed``."""
    keys = sorted(item.key for item in items)
    random.Random(seed).shuffle(keys)
    kept = set(keys[:count])
    return sorted((item for item in items if item.key in kept), key=lambda item: item.key)


def verify_librimix(corpus_dir: Path, sample_rate: str = "16k") -> CorpusReport:
    report = CorpusReport(f"Libri2Mix ({corpus_dir})", HOW_TO_GET)
    if not report.require_dir(corpus_dir, "the Libri2Mix folder"):
        return report
    for split in FOLDERS:
        folder = split_dir(corpus_dir, split, sample_rate)
        if not report.require_dir(folder / "mix_clean", f"{split} mixtures"):
            continue
        items = read_split(corpus_dir, split, sample_rate)
        report.expect_count(f"{split} mixtures", len(items), MIXTURES[split])
        for position, source in enumerate(SOURCES):
            report.require_files(
                f"{split} {source} sources", ((i.key, i.label[position]) for i in items)
            )
    return report
