"""superb.vc: any-to-one voice conversion on VCC2020 (SUPERB-SG VC). Known, not run by bench.

s3prl's ``downstream/a2o-vc-vcc2020`` recipe (SUPERB's VC column): for each of the four
task-1 target speakers (TEF1, TEF2, TEM1, TEM2) a Taco2-AR head (``config_taco2_ar.yaml``:
Tacotron 2's encoder, 3 convolutions and a BLSTM of 1024 units, then an autoregressive
decoder, a 2-layer prenet of 256 over the previous frame and 2 LSTMP cells of 1024; AdamW, lr
1e-4, batch 6, 10,000 steps with 4,000 warm-up steps) maps the upstream's weighted-sum
features of any source speaker to the target's 80-bin log-mel spectrogram (24 kHz, FFT 1024,
hop 256, 80 to 7600 Hz). Train and dev are the recipe's lists (``E_train_list.txt``: E10001-E10060 and
E20001-E20050; ``E_dev_list.txt``: E10061-E10070); test converts the 25 evaluation sentences
(E30001-E30025) of the four source speakers SEF1, SEF2, SEM1, SEM2. A pretrained Parallel
WaveGAN (``vocoder_download.sh``: ``pwg_task1/``) turns the spectrograms into audio, which
pretrained evaluators score: MCD (dB, lower is better; WORLD/SPTK analysis and DTW against
the target's ground truth, f0 ranges from ``data/f0.yaml``), CER/WER of the ASR model
``facebook/wav2vec2-large-960h-lv60-self``, and the ASV acceptance rate of Resemblyzer's
``VoiceEncoder`` at the equal-error threshold of ``data/thresholds.yaml``. SUPERB averages
the MCD of the four target speakers.

Why bench does not run it: the vocoder and the evaluators are pretrained models that cannot
be fetched here, and the vocoder is a pickled checkpoint (``*.pkl``), which bench does not
load. The task is registered so that ``bench list`` and the ``superb-sg`` suite name it:
a suite run skips it and says why; ``bench run --task superb.vc`` and ``bench prepare
superb.vc`` fail with ``UNAVAILABLE`` (docs/superb.md, "VC").
"""

from __future__ import annotations

from bench.data import DataError, TaskData
from bench.task import Schedule, Task, TaskMetadata, register_task
from bench.tasks.superb.ood_asr import SUPERB_SG_CITATION

RECIPE = "s3prl's downstream/a2o-vc-vcc2020"
#: what the recipe needs that bench cannot provide (also in docs/superb.md)
NEEDS = (
    "the VCC2020 corpus as the recipe's data/data_download.sh lays it out: DIR/vcc2020/ "
    "with one folder of E*.wav per speaker (sources SEF1 SEF2 SEM1 SEM2, targets TEF1 TEF2 "
    "TEM1 TEM2) and prompts/Eng_transcriptions.txt",
    "a pretrained Parallel WaveGAN vocoder for VCC2020 task 1 (vocoder_download.sh: pwg_task1/ "
    "with its *.pkl checkpoint, config.yml and stats.h5)",
    "the evaluator models: the ASR model facebook/wav2vec2-large-960h-lv60-self (CER, WER) and "
    "Resemblyzer's VoiceEncoder (ASV acceptance), and WORLD/SPTK analysis for MCD",
)
UNAVAILABLE = (
    f"bench does not run superb.vc yet: {RECIPE} needs (1) {NEEDS[0]}; (2) {NEEDS[1]}; "
    f"(3) {NEEDS[2]}. See docs/superb.md, VC"
)
VCC2020_CITATION = (
    "Yi et al., Voice Conversion Challenge 2020: Intra-lingual semi-parallel and "
    "cross-lingual voice conversion, Joint Workshop for the Blizzard Challenge and VCC 2020"
)


@register_task
class VoiceConversion(Task):
    __doc__ = __doc__
    metadata = TaskMetadata(
        name="superb.vc",
        description="Any-to-one voice conversion, VCC2020 task 1, MCD (SUPERB-SG VC); "
        "not run by bench: needs a pretrained vocoder and evaluator models",
        corpus="VCC2020",
        data_layout="vcc2020/{SEF1,SEF2,SEM1,SEM2,TEF1,TEF2,TEM1,TEM2}/E*.wav and "
        "vcc2020/prompts/ as s3prl's data_download.sh lays them out, plus a Parallel WaveGAN "
        "checkpoint and the evaluator models",
        main_metric="mcd",
        higher_is_better=False,
        homepage="https://github.com/nii-yamagishilab/VCC2020-database",
        citation=f"{SUPERB_SG_CITATION}; {VCC2020_CITATION}",
    )
    # config_taco2_ar.yaml, for the record: bench trains nothing for this task
    schedule = Schedule(
        lr_grid=(1e-4,), batch_size=6, max_steps=10_000, eval_every=1_000, optimizer="adamw"
    )
    protocol = "voice_conversion"
    unavailable = UNAVAILABLE

    def prepare(self) -> None:
        raise DataError(UNAVAILABLE)

    def load(self) -> TaskData:
        raise DataError(UNAVAILABLE)
