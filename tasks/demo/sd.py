"""demo.sd: speaker diarization of synthetic two-voice conversations (SUPERB SD protocol).

The corpus (``bench.tasks.demo.diarization``) is generated on first use under
``<paths.data>/demo/sd/`` as Kaldi directories, read by the real reader and scored exactly
as superb.sd is (DER needs the ``diarization`` extra: pyannote.metrics, which is why demo.sd
is not in ``--suite demo``). SUPERB's recipe with a demo-sized schedule: no gradient
accumulation, a smaller LSTM (64 units), 200 updates at one learning rate.
"""

from __future__ import annotations

from pathlib import Path

from bench.protocols.diarization_recipe import DiarizationRecipe
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.demo.tasks import GENERATED, DemoData
from bench.tasks.superb.sd import DiarizationTask


@register_task
class DemoDiarization(DemoData, DiarizationTask):
    """A low and a high espeak-ng voice taking turns, Kaldi layout (SUPERB SD protocol)."""

    metadata = TaskMetadata(
        name="demo.sd",
        description="Speaker diarization of synthetic two-voice conversations (SUPERB SD protocol)",
        corpus="espeak-ng conversations in s3prl's Kaldi diarization layout",
        data_layout="sd/ (train/, dev/, test/ Kaldi directories)",
        main_metric="der",
        higher_is_better=False,
        license=GENERATED,
    )
    schedule = Schedule(lr_grid=(1e-2,), batch_size=8, max_steps=200, eval_every=50, patience=3)
    diarization_recipe = DiarizationRecipe(hidden_size=64, accumulate=1)

    def root(self) -> Path:
        return DemoData.root(self) / "sd"

    def prepare(self) -> None:
        from bench.tasks.demo.diarization import build_diarization_demo_in_fresh_process
        from bench.tasks.demo.generate import build_once

        build_once(self.root(), build_diarization_demo_in_fresh_process)
        super().prepare()
