"""superb.se: speech enhancement on VoiceBank-DEMAND (SUPERB-SG SE).

Data (``--data-root DIR``): ``DIR/VoiceBank-DEMAND/`` (or ``DIR`` itself, or the task
option ``voicebank_dir``) holding the four unpacked wav archives
(``bench.tasks.corpora.voicebank``): dev is training speakers p226 and p287, as s3prl
prepares it.

Protocol (``mask_estimation``), s3prl's ``downstream/enhancement_stft`` with
``cfg_voicebank.yaml`` (the version s3prl names comparable to SUPERB-SG): STFT of 512
points, Hann window of 512, hop the upstream's frame period; 3 BLSTM layers of 896 units,
dropout 0.5, a ReLU mask; PIT MSE to the non-negative phase-sensitive target; AdamW, lr
1e-4, batch 8, 150,000 steps, clipping 1; dev every 1,250 steps, the best wide-band PESQ
kept. Test metrics: PESQ (wide band), STOI and SI-SDR improvement (dB), per utterance and
averaged, after s3prl's end-impulse clean-up. bench sweeps ``SUPERB_LR_GRID`` (holding
1e-4) and stops after 10 evaluations without improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.data import TaskData
from bench.enhancement.recipe import ENHANCEMENT_STFT
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora import voicebank
from bench.tasks.superb.common import SUPERB_LR_GRID, SuperbTask
from bench.tasks.superb.ood_asr import SUPERB_SG_CITATION

HOMEPAGE = "https://datashare.ed.ac.uk/handle/10283/2791"


@register_task
class SpeechEnhancement(SuperbTask):
    __doc__ = __doc__
    metadata = TaskMetadata(
        name="superb.se",
        description="Speech enhancement, VoiceBank-DEMAND, PESQ (SUPERB-SG SE)",
        corpus="VoiceBank-DEMAND",
        data_layout="VoiceBank-DEMAND/ with {clean,noisy}_trainset_28spk_wav/ and "
        "{clean,noisy}_testset_wav/ as the archives unpack",
        main_metric="pesq",
        license="CC BY 4.0",
        homepage=HOMEPAGE,
        citation=SUPERB_SG_CITATION,
    )
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID,
        batch_size=8,
        max_steps=150_000,
        eval_every=1250,
        patience=10,
        optimizer="adamw",
    )
    protocol = "mask_estimation"
    mask_recipe = ENHANCEMENT_STFT

    @dataclass(frozen=True)
    class Options:
        """voicebank_dir: the folder holding the unpacked archives (default:
        ``DATA_ROOT/VoiceBank-DEMAND``, else ``DATA_ROOT``)."""

        voicebank_dir: str | None = None

    def voicebank_dir(self) -> Path:
        return self.corpus_dir(
            self.options.voicebank_dir, ("VoiceBank-DEMAND",), "noisy_testset_wav"
        )

    def corpus_dirs(self) -> list[Path]:
        return [self.voicebank_dir()]

    def verify(self) -> CorpusReport:
        return voicebank.verify_voicebank(self.voicebank_dir())

    def read(self) -> TaskData:
        root = self.voicebank_dir()
        return TaskData(splits={s: voicebank.read_split(root, s) for s in voicebank.SPLITS})
