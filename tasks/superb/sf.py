"""superb.sf: end-to-end slot filling on Audio SNIPS (SUPERB SF).

Data (``--data-root DIR``): ``DIR/SNIPS/`` as s3prl prepares it (or the task option
``snips_dir``): ``all.iob.snips.txt``, ``slots.txt`` and ``train/``, ``valid/``, ``test/``
wav folders (``bench.tasks.corpora.snips``). Task options: ``snips_dir``, ``slots_file``
(default ``SNIPS/slots.txt``), ``train_speakers``, ``valid_speakers``, ``test_speakers``
(default: SUPERB's 8 / 4 / 4 voices). Splits: train, dev (``valid/``), test.

Targets (``bench.ctc.text.SlotTranscription``): the words spelled in s3prl's character
vocabulary (space, A-Z, ``'``), each slot between ``B-<slot>`` and ``E-<slot>`` tags, then
``<eos>``: 31 characters and specials plus two tags per slot type of ``slots.txt``.

Protocol, from s3prl's ``downstream/ctc/snips.yaml`` and ``expert.py``: SpecAugment on
the weighted sum of layers (the runner's ``specaug`` block: time warp 5, 4 feature masks
of [0, 50), 2 time masks of [0, 40)) -> Linear(D, 1024) -> 2-layer BLSTM of 1024 units,
dropout 0.2 -> Linear(2048, V), CTC (blank ``<pad>``, ``zero_infinity``); Adam, lr 1e-4,
200,000 steps, gradient clipping 1; batches of 32 neighbours in target length, halved
when the first is longer than 18.75 s (``bench.frames.batching.SlidingWindows``, s3prl's
bucketing of ``downstream/ctc``); dev slot-type F1 every 2,000 steps, the best kept.
Metrics (``bench.metrics.slots``) on the greedy transcripts: slot-type F1 (the main one,
higher is better) and slot-value CER, in percent. bench sweeps ``SUPERB_LR_GRID`` (which
holds 1e-4) and stops early after 10 evaluations without improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.ctc.recipe import CTCRecipe, RecurrentHead, SpecAugment
from bench.ctc.text import SlotTranscription, slot_tokens
from bench.data import DataError, TaskData
from bench.frames.batching import SlidingWindows
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora.snips import (
    CORPUS_DIR,
    SLOTS,
    SPEAKERS,
    TRANSCRIPTS,
    read_slots,
    read_split,
    read_transcripts,
    verify_snips,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID, SuperbTask

#: bench split -> Audio SNIPS split folder
SPLIT_DIRS = {"train": "train", "dev": "valid", "test": "test"}


class SlotFillingTask(SuperbTask):
    """An Audio SNIPS-layout task (shared with demo tasks in the same layout)."""

    protocol = "ctc_recognition"
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=32, max_steps=200_000, eval_every=2000, patience=10
    )
    ctc_recipe = CTCRecipe(
        head=RecurrentHead(spec_augment=SpecAugment()), batching=SlidingWindows(), accumulate=1
    )

    @dataclass(frozen=True)
    class Options:
        """snips_dir: the SNIPS folder; slots_file: the slot types (default
        ``SNIPS/slots.txt``); *_speakers: the voices of each split (SUPERB's by default)."""

        snips_dir: str | None = None
        slots_file: str | None = None
        train_speakers: tuple[str, ...] = SPEAKERS["train"]
        valid_speakers: tuple[str, ...] = SPEAKERS["valid"]
        test_speakers: tuple[str, ...] = SPEAKERS["test"]

    def root(self) -> Path:
        return self.corpus_dir(self.options.snips_dir, (CORPUS_DIR,), TRANSCRIPTS)

    def slots_file(self) -> Path:
        if self.options.slots_file:
            return Path(self.options.slots_file).expanduser()
        return self.root() / SLOTS

    def speakers(self) -> dict[str, tuple[str, ...]]:
        """Audio SNIPS split folder -> its voices."""
        return {
            "train": tuple(self.options.train_speakers),
            "valid": tuple(self.options.valid_speakers),
            "test": tuple(self.options.test_speakers),
        }

    def corpus_dirs(self) -> list[Path]:
        return [self.root()]

    def verify(self) -> CorpusReport:
        return verify_snips(self.root(), self.speakers(), self.slots_file())

    def read(self) -> TaskData:
        transcripts = read_transcripts(self.root() / TRANSCRIPTS)
        speakers = self.speakers()
        splits = {
            split: read_split(self.root(), folder, speakers[folder], transcripts).items
            for split, folder in SPLIT_DIRS.items()
        }
        for split, items in splits.items():
            self.transcription().check(items, f"{split} ({SPLIT_DIRS[split]}/)")
        return TaskData(splits=splits)

    def load(self) -> TaskData:
        data = self.read()
        durations = self.durations(item.path for item in data.all_items())
        empty = sorted(str(path) for path, seconds in durations.items() if seconds <= 0)
        if empty:
            raise DataError(f"{self.metadata.name}: audio with no samples: {', '.join(empty[:5])}")
        return data

    @cached_property
    def _transcription(self) -> SlotTranscription:
        return SlotTranscription(slot_tokens(read_slots(self.slots_file())))

    def transcription(self) -> SlotTranscription:
        return self._transcription


@register_task
class SlotFilling(SlotFillingTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.sf",
        description="Slot filling, Audio SNIPS, slot-type F1 and slot-value CER (SUPERB SF)",
        corpus="Audio SNIPS",
        data_layout=f"{CORPUS_DIR}/ ({TRANSCRIPTS}, {SLOTS}, train/, valid/, test/)",
        main_metric="slot_f1",
        higher_is_better=True,
        license=(
            "text from the SNIPS NLU benchmark, speech from Amazon Polly "
            "(aws-samples/aws-lex-noisy-spoken-language-understanding, see its LICENSE)"
        ),
        homepage=HOMEPAGE,
        citation=CITATION,
    )
