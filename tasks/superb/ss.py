"""superb.ss: two-speaker source separation on Libri2Mix (SUPERB-SG SS).

Data (``--data-root DIR``): ``DIR/Libri2Mix/`` (or ``DIR`` itself, or the task option
``librimix_dir``) as LibriMix writes it (``bench.tasks.corpora.librimix``): the ``min``
mixtures of ``wav16k`` (``sample_rate: 8k`` reads ``wav8k``, resampled to 16 kHz), train
``train-100``, dev and test; mixtures ``mix_clean``, sources ``s1`` and ``s2``.

Protocol (``mask_estimation``), the ``recipe`` option's s3prl expert:

- ``separation_stft`` (default): the version s3prl names "the same as the SUPERB-SG
  paper": STFT of 512 points, 3 BLSTM layers of 896 units, dropout 0.5, ReLU masks, lr
  1e-4, end-impulse clean-up; dev is s3prl's ``dev_1000`` subset (seed 7).
- ``separation_stft2``: s3prl's second version: STFT of 1024 points, 256 units, dropout
  0.1, sigmoid masks on log1p magnitudes, lr 1e-3; dev is the whole dev set.

Both: PIT MSE to the non-negative phase-sensitive targets; AdamW, batch 8, 150,000 steps,
clipping 1; dev every 2,000 steps, the best SI-SDR improvement kept. Test metric: SI-SDR
improvement (dB) with the best assignment of estimates to speakers, per mixture and
averaged. bench sweeps ``SUPERB_LR_GRID`` (holding 1e-4 and 1e-3) and stops after 10
evaluations without improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.corpus_check import CorpusReport
from bench.data import TaskData
from bench.enhancement.recipe import SEPARATION_STFT, SEPARATION_STFT2, MaskRecipe
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora import librimix
from bench.tasks.superb.common import SUPERB_LR_GRID, SuperbTask
from bench.tasks.superb.ood_asr import SUPERB_SG_CITATION

RECIPES = {"separation_stft": SEPARATION_STFT, "separation_stft2": SEPARATION_STFT2}


@register_task
class SourceSeparation(SuperbTask):
    __doc__ = __doc__
    metadata = TaskMetadata(
        name="superb.ss",
        description="Two-speaker separation, Libri2Mix (16 kHz, min), SI-SDRi (SUPERB-SG SS)",
        corpus="Libri2Mix",
        data_layout="Libri2Mix/wav16k/min/{train-100,dev,test}/{mix_clean,s1,s2}/ as LibriMix "
        "writes it",
        main_metric="si_sdri",
        license="CC BY 4.0 (LibriSpeech), CC BY-NC 4.0 (WHAM! noise, unused by mix_clean)",
        homepage="https://github.com/JorisCos/LibriMix",
        citation=SUPERB_SG_CITATION,
    )
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID,
        batch_size=8,
        max_steps=150_000,
        eval_every=2000,
        patience=10,
        optimizer="adamw",
    )
    protocol = "mask_estimation"

    @dataclass(frozen=True)
    class Options:
        """librimix_dir: the Libri2Mix folder (default: ``DATA_ROOT/Libri2Mix``, else
        ``DATA_ROOT``); sample_rate: ``16k`` (s3prl's) or ``8k``; recipe:
        ``separation_stft`` (SUPERB-SG's) or ``separation_stft2``."""

        librimix_dir: str | None = None
        sample_rate: Literal["16k", "8k"] = "16k"
        recipe: Literal["separation_stft", "separation_stft2"] = "separation_stft"

    @property
    def mask_recipe(self) -> MaskRecipe:
        return RECIPES[self.options.recipe]

    def librimix_dir(self) -> Path:
        marker = f"wav{self.options.sample_rate}"
        return self.corpus_dir(self.options.librimix_dir, ("Libri2Mix",), marker)

    def corpus_dirs(self) -> list[Path]:
        return [self.librimix_dir()]

    def verify(self) -> CorpusReport:
        return librimix.verify_librimix(self.librimix_dir(), self.options.sample_rate)

    def read(self) -> TaskData:
        root, rate = self.librimix_dir(), self.options.sample_rate
        splits = {split: librimix.read_split(root, split, rate) for split in librimix.FOLDERS}
        if self.options.recipe == "separation_stft":
            splits["dev"] = librimix.dev_subset(splits["dev"])
        return TaskData(
            splits=splits,
            extras={"split_rule": f"{self.options.recipe} dev ({len(splits['dev'])})"},
        )
