"""superb.sid: speaker identification on VoxCeleb1 (SUPERB SID).

Data (``--data-root DIR``): ``DIR/VoxCeleb1/`` with ``iden_split.txt`` and the wavs under
``dev/wav/`` and ``test/wav/`` (s3prl's layout) or one merged ``wav/``; see
``bench.tasks.corpora.voxceleb1``. Task options: ``voxceleb1_dir``, ``split_file``.

Splits and labels: iden_split.txt, 1 = train (138,361), 2 = dev (6,904), 3 = test (8,251);
the label is the speaker id, 1,251 classes in sorted order (s3prl's ``int(id) - 10001``).

Protocol, from s3prl's ``downstream/voxceleb1`` (config.yaml, dataset.py, expert.py):
head Linear(D, 256) -> mean pool -> Linear(1251), cross-entropy; Adam, lr 1e-4, batch 8
with 4 accumulation steps (bench: batch 32, the same mean gradient), 200,000 steps,
gradient clipping 1, dev accuracy every 5,000 steps; no gain. Training utterances are
cropped to a random 8 s (``max_timestep: 128000``) at every step; dev and test are whole.

How bench honours the random crops with a pooled cache: every training utterance longer
than ``crop_seconds`` becomes up to ``crops_per_utterance`` fixed crops of that length
(``ceil(duration / crop_seconds)`` of them at most), evenly spaced from the start to the
end; shorter ones stay whole. The crops of one utterance share a ``group``, so a training
draw picks an utterance uniformly and then one of its crops, as s3prl picks an utterance
and then a crop position. Dev and test are whole utterances. The random crop's continuum of
positions becomes K positions; K = 4 by default (an utterance of d > 8 s costs
min(K, ceil(d / 8)) x 8 s of extraction instead of d).

Option ``training_crops: waveform`` (the reference profile's) is s3prl's instead: training
items are whole utterances and every training read takes a fresh random window of at most
``crop_seconds`` of the waveform, which the encoder runs on in the training loop
(protocol ``utterance_classification.waveform_crops``, ``bench.frames.crops``): an encoder
forward of up to 32 x 8 s per update (s3prl's cost, about 14,000 h of encoder input over
200,000 updates). Dev and test stay whole utterances from the pooled cache.
bench sweeps ``SUPERB_LR_GRID`` and stops early: dev every 1,000 steps, after 10 without
improvement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.corpus_check import CorpusReport
from bench.data import DataError, Item, TaskData
from bench.protocols.utterance import WAVEFORM_CROPS_PROTOCOL
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora.voxceleb1 import (
    CORPUS_DIR,
    CORPUS_DIR_VARIANTS,
    SPLIT_FILE,
    WavIndex,
    read_iden_split,
    speaker_of,
    verify_voxceleb1,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID, SuperbTask

VOXCELEB_LICENSE = "CC BY-SA 4.0 (VoxCeleb1 metadata; audio from YouTube)"
#: option ``training_crops``: bench's fixed crops, or fresh waveform crops (module doc)
TRAINING_CROPS = ("fixed", "waveform")


def crop_segments(
    duration: float, crop_seconds: float, max_crops: int
) -> list[tuple[float, float]] | None:
    """Evenly spaced ``crop_seconds`` segments covering an utterance; None when it is no
    longer than one crop (it stays whole)."""
    if duration <= crop_seconds:
        return None
    count = max(1, min(max_crops, math.ceil(duration / crop_seconds)))
    if count == 1:
        start = (duration - crop_seconds) / 2
        return [(start, start + crop_seconds)]
    step = (duration - crop_seconds) / (count - 1)
    return [(k * step, k * step + crop_seconds) for k in range(count)]


class VoxCeleb1Task(SuperbTask):
    """Where VoxCeleb1 and its iden_split.txt are (shared by SID and ASV)."""

    options: VoxCeleb1Options

    def root(self) -> Path:
        return self.corpus_dir(self.options.voxceleb1_dir, CORPUS_DIR_VARIANTS, SPLIT_FILE)

    def split_file(self) -> Path:
        return (
            Path(self.options.split_file) if self.options.split_file else self.root() / SPLIT_FILE
        )

    def corpus_dirs(self) -> list[Path]:
        return [self.root()]


@dataclass(frozen=True)
class VoxCeleb1Options:
    """voxceleb1_dir: the VoxCeleb1 folder; split_file: iden_split.txt (default: in it)."""

    voxceleb1_dir: str | None = None
    split_file: str | None = None


@register_task
class SpeakerIdentification(VoxCeleb1Task):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.sid",
        description="Speaker identification, VoxCeleb1, 1,251 speakers (SUPERB SID)",
        corpus="VoxCeleb1",
        data_layout=f"{CORPUS_DIR}/ (iden_split.txt; dev/wav/ and test/wav/, or wav/)",
        main_metric="accuracy",
        license=VOXCELEB_LICENSE,
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    protocol = "utterance_classification"
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=32, max_steps=200_000, eval_every=1000, patience=10
    )

    @dataclass(frozen=True)
    class Options(VoxCeleb1Options):
        """crops_per_utterance (K) and crop_seconds: the fixed training crops;
        training_crops: fixed | waveform (module doc)."""

        crops_per_utterance: int = 4
        crop_seconds: float = 8.0
        training_crops: str = "fixed"

    def __init__(self, data_root: Path | None, options: Mapping[str, Any] | None = None):
        super().__init__(data_root, options)
        if self.options.training_crops == "waveform":  # the encoder in the training loop
            self.protocol = WAVEFORM_CROPS_PROTOCOL  # type: ignore[misc]

    def verify(self) -> CorpusReport:
        if self.options.training_crops not in TRAINING_CROPS:
            raise DataError(
                f"{self.metadata.name}: training_crops must be one of {', '.join(TRAINING_CROPS)}, "
                f"got {self.options.training_crops!r}"
            )
        if self.options.crops_per_utterance < 1 or self.options.crop_seconds <= 0:
            raise DataError(
                f"{self.metadata.name}: crops_per_utterance must be >= 1 and crop_seconds > 0"
            )
        return verify_voxceleb1(self.root())

    def read(self) -> TaskData:
        index = WavIndex(self.root())
        entries = read_iden_split(self.split_file())
        splits: dict[str, list[Item]] = {"train": [], "dev": [], "test": []}
        for split, relative in entries:
            splits[split].append(
                Item(key=relative, path=index.path(relative), label=speaker_of(relative))
            )
        speakers = sorted({speaker_of(relative) for _, relative in entries})
        return TaskData(splits=splits, vocabulary={"label": speakers})

    def load(self) -> TaskData:
        data = self.read()
        if self.options.training_crops == "waveform":  # whole: the protocol crops them
            return data
        train = data.splits["train"]
        durations = self.durations(item.path for item in train)
        data.splits["train"] = [
            crop for item in train for crop in self._crops(item, durations[item.path])
        ]
        return data

    def _crops(self, item: Item, duration: float) -> list[Item]:
        segments = crop_segments(
            duration, self.options.crop_seconds, self.options.crops_per_utterance
        )
        if segments is None:
            return [Item(item.key, item.path, item.label, group=item.key)]
        return [
            Item(
                f"{item.key}#{k}",
                item.path,
                item.label,
                start=round(start, 3),
                end=round(end, 3),
                group=item.key,
            )
            for k, (start, end) in enumerate(segments)
        ]
