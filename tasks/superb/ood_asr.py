"""superb.ood_asr.{es,zh,ar,sbcsae}: SUPERB-SG's out-of-domain speech recognition.

Four tasks, as s3prl's ``downstream/ctc`` configures them (``cv_config/cv_es.yaml``,
``cv_zh.yaml``, ``cv_ar.yaml``, ``sbcsae.yaml``): cross-lingual ASR on Common Voice 7.0
Spanish (``mexicano`` accent only), Chinese (zh-CN) and Arabic
(``bench.tasks.corpora.common_voice``), and spontaneous English speech on SBCSAE
(``bench.tasks.corpora.sbcsae``); each split is the corpus's official one.

Targets (``bench.ctc.vocabulary``): characters of the normalised transcript, in a
vocabulary of the training characters (``task_options.<task>.vocabulary``: s3prl's
``cv_vocab/<lang>_char.txt`` to use its file), then ``<eos>``; blank ``<pad>``.

Protocol, from ``downstream/ctc`` (``expert.py``, ``data.py``, the ``RNNs`` of
``downstream/asr/model.py`` and the configs): SpecAugment on the weighted sum (time warp 5,
4 feature masks of [0, 50), 2 time masks of [0, 40)) -> Linear(D, 1024) -> every
``round(320 / upstream rate)``-th frame (20 ms frames) -> 2 BLSTM layers of 1024 units,
each followed by dropout 0.2 and Linear(2048, 2048) + tanh -> Linear(2048, V), CTC with
``zero_infinity``; Adam, lr 1e-4, 500,000 steps, gradient clipping 1; batches of 16
neighbours in duration, halved above 18.75 s (``SlidingWindows(sort_by="duration")``);
dev every 2,000 steps (es, SBCSAE) or 5,000 (zh, ar), the best kept. Metrics (%) on test
with greedy decoding, s3prl's CER and WER on the decoded strings; the main metric is the
one each config selects on: WER (es, ar, SBCSAE), CER (zh). bench sweeps
``SUPERB_LR_GRID`` (which holds 1e-4) and stops early after 10 evaluations without
improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from bench.corpus_check import CorpusReport
from bench.ctc.recipe import CTCRecipe, RecurrentHead, SpecAugment
from bench.ctc.vocabulary import (
    CharacterVocabulary,
    character_tokens,
    characters_of,
    read_vocabulary,
)
from bench.data import Item, TaskData
from bench.frames.batching import SlidingWindows
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora import common_voice, sbcsae
from bench.tasks.superb.common import SUPERB_LR_GRID, SuperbTask

SUPERB_SG_CITATION = (
    "Tsai et al., SUPERB-SG: Enhanced Speech processing Universal PERformance Benchmark "
    "for Semantic and Generative Capabilities, ACL 2022"
)
HOMEPAGE = "https://superbbenchmark.org"
COMMON_VOICE_DIR = "cv-corpus-7.0-2021-07-21"
SPLITS = ("train", "dev", "test")

OOD_RECIPE = CTCRecipe(
    head=RecurrentHead(spec_augment=SpecAugment(), projection=True, total_rate=320),
    batching=SlidingWindows(sort_by="duration"),
    accumulate=1,
)


def ood_schedule(eval_every: int) -> Schedule:
    return Schedule(
        lr_grid=SUPERB_LR_GRID,
        batch_size=16,
        max_steps=500_000,
        eval_every=eval_every,
        patience=10,
    )


class OutOfDomainASR(SuperbTask):
    """An OOD-ASR task: a corpus reader (``read_splits``) and the shared recipe."""

    protocol = "ctc_recognition"
    ctc_recipe = OOD_RECIPE
    options: Any

    def read_splits(self) -> dict[str, list[Item]]:  # pragma: no cover - each task has one
        raise NotImplementedError

    @cached_property
    def _splits(self) -> dict[str, list[Item]]:
        return self.read_splits()

    def read(self) -> TaskData:
        splits = self._splits
        for split, items in splits.items():
            self.transcription().check(items, f"{self.metadata.name} {split}")
        return TaskData(splits=dict(splits))

    @cached_property
    def _transcription(self) -> CharacterVocabulary:
        if self.options.vocabulary:
            path = Path(self.options.vocabulary).expanduser()
            return CharacterVocabulary(character_tokens(read_vocabulary(path), path.name))
        characters = characters_of(item.label for item in self._splits["train"])
        return CharacterVocabulary(
            character_tokens(characters, f"{self.metadata.name} training characters")
        )

    def transcription(self) -> CharacterVocabulary:
        return self._transcription

    def verify_vocabulary(self, report: CorpusReport) -> None:
        if self.options.vocabulary:
            report.require_file(
                Path(self.options.vocabulary).expanduser(),
                "the vocabulary file (task option vocabulary)",
            )


class CommonVoiceASR(OutOfDomainASR):
    """A Common Voice locale; ``lists_dir`` reads s3prl's processed lists instead."""

    locale: ClassVar[str]
    accent: ClassVar[str | None] = None

    @dataclass(frozen=True)
    class Options:
        """common_voice_dir: the folder holding ``<locale>/`` (default:
        ``DATA_ROOT/cv-corpus-7.0-2021-07-21``); lists_dir: a folder of s3prl's
        preprocessed ``train.tsv``/``dev.tsv``/``test.tsv``, read instead of the official
        lists (audio: their wav files in ``<locale>/clips``); vocabulary: a character
        vocabulary file (s3prl's ``cv_vocab/<lang>_char.txt``), else the training
        characters."""

        common_voice_dir: str | None = None
        lists_dir: str | None = None
        vocabulary: str | None = None

    def locale_dir(self) -> Path:
        root = self.corpus_dir(
            self.options.common_voice_dir, (COMMON_VOICE_DIR,), f"{self.locale}/clips"
        )
        return root / self.locale

    def corpus_dirs(self) -> list[Path]:
        return [self.locale_dir()]

    def verify(self) -> CorpusReport:
        if self.options.lists_dir:
            report = common_voice.verify_s3prl_lists(
                Path(self.options.lists_dir).expanduser(), self.locale_dir() / "clips", SPLITS
            )
        else:
            report = common_voice.verify_common_voice(
                self.locale_dir(), SPLITS, self.locale, self.accent
            )
        self.verify_vocabulary(report)
        return report

    def read_splits(self) -> dict[str, list[Item]]:
        if self.options.lists_dir:
            lists = Path(self.options.lists_dir).expanduser()
            clips = self.locale_dir() / "clips"
            return {s: common_voice.read_s3prl_list(lists / f"{s}.tsv", clips) for s in SPLITS}
        return {
            split: common_voice.read_split(self.locale_dir(), split, self.locale, self.accent)[0]
            for split in SPLITS
        }


def _common_voice_metadata(short: str, language: str, locale: str, metric: str) -> TaskMetadata:
    return TaskMetadata(
        name=f"superb.ood_asr.{short}",
        description=f"Cross-lingual ASR, Common Voice 7.0 {language}, {metric.upper()} "
        "(SUPERB-SG OOD-ASR)",
        corpus=f"Common Voice 7.0 ({locale})",
        data_layout=f"{COMMON_VOICE_DIR}/{locale}/ (train.tsv, dev.tsv, test.tsv, clips/) as "
        "the archive unpacks",
        main_metric=metric,
        higher_is_better=False,
        license="CC0 1.0",
        homepage="https://commonvoice.mozilla.org",
        citation=SUPERB_SG_CITATION,
    )


@register_task
class SpanishASR(CommonVoiceASR):
    __doc__ = __doc__
    metadata = _common_voice_metadata("es", "Spanish (mexicano accent)", "es", "wer")
    schedule = ood_schedule(eval_every=2000)
    locale = "es"
    accent = "mexicano"


@register_task
class ChineseASR(CommonVoiceASR):
    __doc__ = __doc__
    metadata = _common_voice_metadata("zh", "Chinese", "zh-CN", "cer")
    schedule = ood_schedule(eval_every=5000)
    locale = "zh-CN"


@register_task
class ArabicASR(CommonVoiceASR):
    __doc__ = __doc__
    metadata = _common_voice_metadata("ar", "Arabic", "ar", "wer")
    schedule = ood_schedule(eval_every=5000)
    locale = "ar"


@register_task
class SpontaneousASR(OutOfDomainASR):
    __doc__ = __doc__
    metadata = TaskMetadata(
        name="superb.ood_asr.sbcsae",
        description="Spontaneous-speech ASR, SBCSAE, WER (SUPERB-SG OOD-ASR)",
        corpus="Santa Barbara Corpus of Spoken American English",
        data_layout="SBCSAE/ with mp3/01.mp3 ... 60.mp3 and trn/SBC001.trn ... SBC060.trn",
        main_metric="wer",
        higher_is_better=False,
        license="CC BY-ND 3.0 US",
        homepage="https://www.linguistics.ucsb.edu/research/santa-barbara-corpus",
        citation=SUPERB_SG_CITATION,
    )
    schedule = ood_schedule(eval_every=2000)

    @dataclass(frozen=True)
    class Options:
        """sbcsae_dir: the folder holding ``mp3/`` and ``trn/`` (default:
        ``DATA_ROOT/SBCSAE``); lists_dir: a folder of SBCSAE-preprocess's ``train.tsv``/
        ``dev.tsv``/``test.tsv``, read instead (audio: its wav files in
        ``<sbcsae_dir>/wav``); vocabulary: a character vocabulary file (s3prl's
        ``cv_vocab/en_char.txt``), else the training characters."""

        sbcsae_dir: str | None = None
        lists_dir: str | None = None
        vocabulary: str | None = None

    def sbcsae_dir(self) -> Path:
        marker = "wav" if self.options.lists_dir else "trn"
        return self.corpus_dir(self.options.sbcsae_dir, ("SBCSAE",), marker)

    def corpus_dirs(self) -> list[Path]:
        return [self.sbcsae_dir()]

    def verify(self) -> CorpusReport:
        if self.options.lists_dir:
            report = common_voice.verify_s3prl_lists(
                Path(self.options.lists_dir).expanduser(), self.sbcsae_dir() / "wav", SPLITS
            )
        else:
            report = sbcsae.verify_sbcsae(self.sbcsae_dir(), SPLITS)
        self.verify_vocabulary(report)
        return report

    def read_splits(self) -> dict[str, list[Item]]:
        if self.options.lists_dir:
            lists = Path(self.options.lists_dir).expanduser()
            wav = self.sbcsae_dir() / "wav"
            return {s: common_voice.read_s3prl_list(lists / f"{s}.tsv", wav) for s in SPLITS}
        return {split: sbcsae.read_split(self.sbcsae_dir(), split) for split in SPLITS}
