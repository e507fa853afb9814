"""superb.st: speech translation, CoVoST 2 English -> German, BLEU (SUPERB-SG ST).

Data (``--data-root DIR``): CoVoST 2's en-de split lists ``covost_v2.en_de.{train,dev,test}.tsv``
in ``DIR/covost_v2/`` (or ``DIR`` itself, or the task option ``covost_dir``) and Common Voice
4's English clips in ``DIR/cv-corpus-4-2019-12-10/en/clips/`` (or ``clips_dir``); both are
manual downloads bench does not make (``bench.tasks.corpora.covost2``: how to get them, and s3prl's
cleaning and target normalisation, applied to every split).

Protocol (``speech_translation``, ``bench.protocols.translation``), s3prl's
``downstream/speech_translation`` (``config.yaml``; its head is fairseq's ``s2t_transformer``,
here in plain PyTorch: ``bench.translation.recipe`` lists every fact with its source): a
sentencepiece character vocabulary of the training targets; weighted sum -> 2 stride-2 GLU
convolutions -> 3 + 3 pre-norm transformer layers (512, 8 heads, FFN 2,048, dropout 0.1);
label smoothing 0.1; Adam, lr 1e-3, 10,000 warm-up updates then s3prl's inverse-square-root
factor, 32,000 updates of 8 accumulated batches of at most 10,000 frames, clipping 10; dev
every 2,000 updates; beam 20, at most 400 tokens, length-normalised scores; case-sensitive
detokenised corpus BLEU (sacrebleu, 13a) on test with the dev-best state. bench sweeps
``ST_LR_GRID`` (holding 1e-3) and stops after 10 evaluations without improvement.

Where bench differs from s3prl/fairseq (the ``reference`` profile is ``reference
(approximate)`` for these): frames past 6,000 are cut after the encoder (s3prl cuts the
waveform before it); the subsampler zeroes padding between its convolutions (fairseq's reads
the neighbours' padding, so its outputs depend on the batch); missing clips are an error
(s3prl skips them); bench reads the mp3 clips and resamples them with its audio policy
(s3prl: torchaudio); fairseq's epoch iterator and dropout draw other random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.data import Item, TaskData
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora import covost2
from bench.tasks.superb.common import SuperbTask
from bench.tasks.superb.ood_asr import SUPERB_SG_CITATION
from bench.translation.recipe import S2T_TRANSFORMER
from bench.translation.vocabulary import require_translation_packages

HOMEPAGE = "https://github.com/facebookresearch/covost"
COVOST_DIR = "covost_v2"
COMMON_VOICE_DIR = "cv-corpus-4-2019-12-10"
#: three learning rates on a log scale around s3prl's 1e-3 (a transformer diverges far above)
ST_LR_GRID = (1e-4, 1e-3, 1e-2)


@register_task
class SpeechTranslation(SuperbTask):
    __doc__ = __doc__
    metadata = TaskMetadata(
        name="superb.st",
        description="Speech translation, CoVoST 2 En->De, BLEU (SUPERB-SG ST)",
        corpus="CoVoST 2 (en-de) over Common Voice 4 English",
        data_layout="covost_v2/covost_v2.en_de.{train,dev,test}.tsv (get_covost_splits.py) and "
        "cv-corpus-4-2019-12-10/en/clips/ as the archive unpacks",
        main_metric="bleu",
        higher_is_better=True,
        license="CC0 1.0 (CoVoST 2, Common Voice)",
        homepage=HOMEPAGE,
        citation=SUPERB_SG_CITATION,
    )
    schedule = Schedule(
        lr_grid=ST_LR_GRID,
        batch_size=10_000,  # frames per batch: fairseq's max_tokens
        max_steps=32_000,
        eval_every=2_000,
        patience=10,
        optimizer="adam",
    )
    protocol = "speech_translation"
    translation_recipe = S2T_TRANSFORMER

    @dataclass(frozen=True)
    class Options:
        """covost_dir: the folder of ``covost_v2.en_de.{train,dev,test}.tsv`` (default:
        ``DATA_ROOT/covost_v2``, else ``DATA_ROOT``); clips_dir: Common Voice 4's English
        clips (default: ``DATA_ROOT/cv-corpus-4-2019-12-10/en/clips``)."""

        covost_dir: str | None = None
        clips_dir: str | None = None

    def covost_dir(self) -> Path:
        marker = covost2.split_file(Path(), "train").name
        return self.corpus_dir(self.options.covost_dir, (COVOST_DIR,), marker)

    def clips_dir(self) -> Path:
        if self.options.clips_dir:
            return Path(self.options.clips_dir).expanduser()
        return self.corpus_dir(None, (COMMON_VOICE_DIR,), "en/clips") / "en" / "clips"

    def corpus_dirs(self) -> list[Path]:
        return [self.covost_dir(), self.clips_dir()]

    def verify(self) -> CorpusReport:
        require_translation_packages(self.metadata.name)
        return covost2.verify_covost2(self.covost_dir(), self.clips_dir())

    @cached_property
    def _splits(self) -> dict[str, list[Item]]:
        require_translation_packages(self.metadata.name)
        covost_dir, clips_dir = self.covost_dir(), self.clips_dir()
        return {s: covost2.read_split(covost_dir, clips_dir, s)[0] for s in covost2.SPLITS}

    def read(self) -> TaskData:
        return TaskData(splits=dict(self._splits))
