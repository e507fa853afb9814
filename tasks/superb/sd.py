"""superb.sd: speaker diarization of two-speaker Libri2Mix mixtures (SUPERB SD).

Data (``--data-root DIR``): the Kaldi-style directories ``DIR/train``, ``DIR/dev`` and
``DIR/test`` that s3prl's LibriMix fork prepares (``scripts/prepare_diarization.py``;
s3prl keeps them in ``downstream/diarization/data``, which ``DIR/data/`` may also be), or
the task option ``kaldi_dir``;
see ``bench.tasks.corpora.kaldi_diarization``. Task options: ``kaldi_dir``, ``train``,
``dev``, ``test`` (directory names). Items are recordings; Libri2Mix has 13,900 training,
3,000 dev and 3,000 test mixtures.

Protocol (``bench.protocols.diarization``), from s3prl's ``downstream/diarization``:
labels at the upstream's frame rate in chunks of 2,000 frames, 2 speakers; weighted sum
-> 1-layer LSTM of 512 -> Linear(512, 2), permutation-invariant BCE; Adam, lr 1e-4, batch
8 with 4 accumulation steps, 30,000 steps, gradient clipping 1; dev frame accuracy every
500 steps, the best kept (s3prl keeps its dev-best by accuracy, so bench selects the
learning rate by it too). Metric: DER (%) on test as s3prl's ``score.sh`` and dscore
compute it (no collar, overlap scored), the lowest over thresholds 0.3-0.7 and median
filters 1 and 11, as SUPERB reports it; also ``der_dev_tuned`` (the setting chosen on dev)
and ``accuracy``. bench sweeps ``SUPERB_LR_GRID`` (which holds 1e-4) and stops early after
10 evaluations without improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.data import TaskData
from bench.metrics.diarization import require_scorer
from bench.protocols.diarization_recipe import DiarizationRecipe
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora.kaldi_diarization import (
    diarization_items,
    read_kaldi_dir,
    verify_kaldi_dirs,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID, SuperbTask


class DiarizationTask(SuperbTask):
    """A task on Kaldi-style diarization directories (shared with the demo)."""

    protocol = "speaker_diarization"
    selection_metric = "accuracy"
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=8, max_steps=30_000, eval_every=500, patience=10
    )
    diarization_recipe = DiarizationRecipe()

    @dataclass(frozen=True)
    class Options:
        """kaldi_dir: the folder holding the split directories; train, dev, test: their
        names."""

        kaldi_dir: str | None = None
        train: str = "train"
        dev: str = "dev"
        test: str = "test"

    def root(self) -> Path:
        return self.corpus_dir(self.options.kaldi_dir, ("data",), self.options.test)

    def split_dirs(self) -> dict[str, str]:
        return {"train": self.options.train, "dev": self.options.dev, "test": self.options.test}

    def corpus_dirs(self) -> list[Path]:
        return [self.root() / name for name in self.split_dirs().values()]

    def verify(self) -> CorpusReport:
        return verify_kaldi_dirs(self.root(), self.split_dirs())

    def prepare(self) -> None:
        require_scorer(self.metadata.name)
        super().prepare()

    def read(self) -> TaskData:
        return TaskData(
            splits={
                split: diarization_items(read_kaldi_dir(self.root() / name))
                for split, name in self.split_dirs().items()
            }
        )


@register_task
class SpeakerDiarization(DiarizationTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.sd",
        description="Speaker diarization, Libri2Mix (2 speakers), DER (SUPERB SD)",
        corpus="Libri2Mix (LibriSpeech train-clean-100, dev-clean, test-clean mixtures)",
        data_layout="train/, dev/, test/ Kaldi directories (wav.scp, segments, utt2spk, "
        "reco2dur, rttm)",
        main_metric="der",
        higher_is_better=False,
        license="CC BY 4.0 (LibriSpeech); Libri2Mix scripts MIT",
        homepage=HOMEPAGE,
        citation=CITATION,
    )
