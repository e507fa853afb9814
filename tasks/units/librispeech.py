"""``units.librispeech``: PNMI, purities and bitrate of units on LibriSpeech dev-clean.

As Spin, R-Spin and DinoSR evaluate acoustic units: the utterances of one LibriSpeech
split that have a frame-level phone alignment (``alignments``: Spin's frame-label file or
a folder of MFA TextGrids, see ``bench.tasks.corpora.phone_alignments``), scored with
``bench.protocols.units``. Units are the upstream's own where it has them (``units=auto``
or ``own``), else k-means on ``layer`` fitted on ``fit_utterances`` utterances of
``fit_split`` (default the evaluated split itself: the labels are never used to fit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.data import DataError, Fold, Item, TaskData
from bench.task import Schedule, Task, TaskMetadata, register_task
from bench.tasks.corpora.librispeech import CORPUS_DIR, read_split
from bench.tasks.corpora.phone_alignments import LABEL_RATE, read_alignments


def utterance_items(
    root: Path, split: str, utterances: Sequence[str], source: str
) -> tuple[list[Item], int]:
    """The utterances ``source`` names that ``split`` has (read by the LibriSpeech reader,
    grouped by speaker, unlabelled), and how many it lacks."""
    available = {item.key: item for item in read_split(root / CORPUS_DIR, split)}
    items = [replace(available[u], label=None) for u in utterances if u in available]
    if not items:
        raise DataError(
            f"none of the {len(utterances)} utterances of {source} is in "
            f"{root / CORPUS_DIR / split} ({len(available)} utterances there)"
        )
    return items, len(utterances) - len(items)


def fit_items(root: Path, scored: list[Item], options: Any) -> list[Item]:
    """The k-means fitting set: ``fit_utterances`` of ``fit_split`` (default: the scored)."""
    fit_split = options.fit_split or options.split
    fit = scored if fit_split == options.split else read_split(root / CORPUS_DIR, fit_split)
    return fit[: options.fit_utterances]


@register_task
class LibriSpeechUnits(Task):
    metadata = TaskMetadata(
        name="units.librispeech",
        description="Discrete-unit quality: PNMI, phone and cluster purity, bitrate (Spin's protocol)",
        corpus="LibriSpeech (dev-clean) with frame-level phone alignments",
        data_layout=f"{CORPUS_DIR}/<split>/<speaker>/<chapter>/<utterance>.flac (openslr.org/12), "
        "plus task option alignments=<frame-label file or MFA TextGrid folder>",
        main_metric="pnmi",
        license="CC BY 4.0",
        homepage="https://www.openslr.org/12",
        citation="Chang, Liu, Glass. Self-supervised Fine-tuning for Improved Content "
        "Representations by Speaker-invariant Clustering. Interspeech 2023.",
    )
    #: nothing is trained; the schedule only satisfies the runner
    schedule = Schedule(lr_grid=(0.0,), max_steps=0, eval_every=1, patience=1)
    protocol = "units"
    label_rate = LABEL_RATE

    @dataclass(frozen=True)
    class Options:
        alignments: str | None = None
        split: str = "dev-clean"
        #: auto (the upstream's own units, else k-means) | own | kmeans
        units: str = "auto"
        #: the layer k-means clusters (default the last); own units use their own layer
        layer: int | None = None
        num_units: int = 100
        fit_split: str | None = None
        fit_utterances: int = 1000
        max_fit_frames: int = 500_000
        keep_stress: bool = False

    def alignments_path(self) -> Path:
        if not self.options.alignments:
            raise DataError(
                f"{self.metadata.name} needs task option alignments=PATH: a frame-label file "
                "(Spin's dev-clean.tsv) or a folder of MFA TextGrids; see docs/units.md"
            )
        return Path(self.options.alignments)

    def load(self) -> TaskData:
        root = self.require_data_root()
        alignments = read_alignments(self.alignments_path(), self.options.keep_stress)
        phones = sorted({phone for labels in alignments.values() for phone in labels})
        index = {phone: i for i, phone in enumerate(phones)}
        items, missing = utterance_items(
            root, self.options.split, sorted(alignments), str(self.options.alignments)
        )
        test = [
            replace(item, label=tuple(index[phone] for phone in alignments[item.key]))
            for item in items
        ]
        return TaskData(
            splits={"train": fit_items(root, test, self.options), "test": test},
            vocabulary={"phone": phones},
            folds=(Fold("units", ("train",), (), ("test",)),),
            extras={"aligned_without_audio": missing},
        )
