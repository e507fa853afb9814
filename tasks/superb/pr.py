"""superb.pr: phoneme recognition on LibriSpeech (SUPERB PR).

Data (``--data-root DIR``): ``DIR/LibriSpeech/`` with train-clean-100, dev-clean and
test-clean unpacked (``bench.tasks.corpora.librispeech``), and s3prl's two g2p lexicon
files beside it, ``DIR/librispeech-lexicon-200k-g2p.txt`` and
``DIR/librispeech-lexicon-allothers-g2p.txt`` (published at
huggingface.co/datasets/s3prl/g2p, ``lexicon/``; also in s3prl's repository). Task options:
``librispeech_dir``, ``lexicon`` (the lexicon files, in lookup order), ``train``, ``dev``,
``test`` (LibriSpeech split names).

Targets (``bench.ctc.text``): every word of the transcript replaced by its first
pronunciation in the lexicon files read in order, as s3prl's ``corpus/libriphone.py``
does; phones keep the lexicon's stress digits (s3prl's 71-phone ``vocab/phoneme.txt``),
then ``<eos>``. A word missing from the lexicon is an error naming the words.

Protocol, from s3prl's ``downstream/ctc/libriphone.yaml`` and ``expert.py``: head
Linear(D, 256) -> Linear(256, 74), CTC (blank ``<pad>``, ``zero_infinity``); Adam, lr 1e-2,
batch 16 with 2 accumulation steps, 100,000 steps, gradient clipping 1; batches of 16
neighbours in label length (``bench.frames.batching.SlidingWindows``); dev-clean PER every
1,000 steps, the best kept; PER (%) on test-clean with greedy decoding. bench sweeps
``SUPERB_LR_GRID`` (which holds 1e-2) and stops early after 10 evaluations without
improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.ctc.recipe import CTCRecipe, LinearHead
from bench.ctc.text import LEXICON_FILES, LEXICON_SOURCE, PhoneTranscription, read_lexicon
from bench.frames.batching import SlidingWindows
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID
from bench.tasks.superb.content import LibriSpeechTask

LIBRISPEECH_LICENSE = "CC BY 4.0"


@register_task
class PhonemeRecognition(LibriSpeechTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.pr",
        description="Phoneme recognition, LibriSpeech train-clean-100, PER (SUPERB PR)",
        corpus="LibriSpeech",
        data_layout=f"LibriSpeech/<split>/ as the archives unpack, and {' and '.join(LEXICON_FILES)}",
        main_metric="per",
        higher_is_better=False,
        license=LIBRISPEECH_LICENSE,
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    protocol = "ctc_recognition"
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=16, max_steps=100_000, eval_every=1000, patience=10
    )
    ctc_recipe = CTCRecipe(
        head=LinearHead(project_dim=256), batching=SlidingWindows(), accumulate=2
    )

    @dataclass(frozen=True)
    class Options:
        """librispeech_dir: the LibriSpeech folder; lexicon: lexicon files in lookup order
        (default: s3prl's two beside LibriSpeech/); train, dev, test: LibriSpeech splits."""

        librispeech_dir: str | None = None
        lexicon: tuple[str, ...] = ()
        train: tuple[str, ...] = ("train-clean-100",)
        dev: tuple[str, ...] = ("dev-clean",)
        test: tuple[str, ...] = ("test-clean",)

    def lexicon_files(self) -> list[Path]:
        if self.options.lexicon:
            return [Path(path).expanduser() for path in self.options.lexicon]
        return [self.librispeech_root().parent / name for name in LEXICON_FILES]

    def verify(self) -> CorpusReport:
        report = super().verify()
        for path in self.lexicon_files():
            report.require_file(path, f"s3prl's g2p lexicon, published at {LEXICON_SOURCE}")
        return report

    @cached_property
    def _transcription(self) -> PhoneTranscription:
        return PhoneTranscription(read_lexicon(self.lexicon_files()))

    def transcription(self) -> PhoneTranscription:
        return self._transcription
