"""superb.ic: intent classification on Fluent Speech Commands (SUPERB IC).

Data (``--data-root DIR``): ``DIR/fluent_speech_commands_dataset/`` as the archive unpacks
(``data/{train,valid,test}_data.csv``, ``wavs/speakers/...``), or the task option
``dataset_dir``.

Splits and labels (``bench.tasks.corpora.fluent_commands``): the three CSVs (valid is
dev); three label slots, action (6), object (14) and location (4), each slot's classes in
order of first appearance in the training CSV. An utterance counts as right only when
all three slots are.

Protocol, from s3prl's ``downstream/fluent_commands`` (config.yaml, expert.py): head
Linear(D, 256) -> mean pool -> Linear(6 + 14 + 4), the sum of the three slots'
cross-entropies; Adam, lr 1e-4, batch 32, 200,000 steps, gradient clipping 1, dev
accuracy every 5,000 steps (``eval_step``), the best kept. bench sweeps ``SUPERB_LR_GRID``,
selects on dev accuracy and stops early: dev every 1,000 steps, after 10 evaluations
without improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.data import TaskData
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora.fluent_commands import (
    DATASET_DIR,
    read_fluent_commands,
    verify_fluent_commands,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID, SuperbTask


@register_task
class IntentClassification(SuperbTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.ic",
        description="Intent classification, Fluent Speech Commands, 3 slots (SUPERB IC)",
        corpus="Fluent Speech Commands",
        data_layout=f"{DATASET_DIR}/ (data/*_data.csv, wavs/speakers/)",
        main_metric="accuracy",
        license="Fluent Speech Commands Public License (academic research)",
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    protocol = "utterance_classification"
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=32, max_steps=200_000, eval_every=1000, patience=10
    )

    @dataclass(frozen=True)
    class Options:
        """dataset_dir: the unpacked fluent_speech_commands_dataset, when not under --data-root."""

        dataset_dir: str | None = None

    def root(self) -> Path:
        return self.corpus_dir(self.options.dataset_dir, (DATASET_DIR,), "data/train_data.csv")

    def corpus_dirs(self) -> list[Path]:
        return [self.root()]

    def verify(self) -> CorpusReport:
        return verify_fluent_commands(self.root())

    def read(self) -> TaskData:
        return read_fluent_commands(self.root())
