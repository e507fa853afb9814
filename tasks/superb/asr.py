"""superb.asr: speech recognition on LibriSpeech (SUPERB ASR).

Data (``--data-root DIR``): ``DIR/LibriSpeech/`` with train-clean-100, dev-clean and
test-clean unpacked, and test-other when present (``bench.tasks.corpora.librispeech``).
Task options: ``librispeech_dir``, ``train``, ``dev``, ``test``, ``test_other`` (LibriSpeech
split names; ``test_other: []`` skips the second test set).

Targets (``bench.ctc.text``): the transcript's characters with ``|`` after every word, then
``</s>``, in s3prl's ``char.dict`` vocabulary (32 outputs, blank ``<s>``).

Protocol, from s3prl's ``downstream/asr`` (config.yaml, expert.py, dataset.py, model.py):
SpecAugment on the weighted sum of layers (time warp 5, 4 feature masks of [0, 50), 2
time masks of [0, 40)) -> Linear(D, 1024) -> 2-layer BLSTM of 1024 units, dropout 0.2 ->
Linear(2048, 32), CTC (``zero_infinity``); Adam, lr 1e-4, 200,000 steps, gradient
clipping 1; batches: buckets of 32 neighbours in duration, each halved (s3prl halves every
bucket whose longest utterance exceeds 2,000 samples, so its steps see 16 utterances;
``bench.frames.batching.LengthBuckets``); dev-clean WER every 2,000 steps, the best kept;
WER (%) on test-clean (``test``) and test-other (``test_other``) with greedy decoding, and
s3prl's unit error rate (UER: characters and word boundaries). bench sweeps
``SUPERB_LR_GRID`` (which holds 1e-4) and stops early after 10 evaluations without
improvement. s3prl's optional KenLM beam search is not part of SUPERB's number;
``decoder: beam`` (with ``lm_path``) decodes the selected probes with pyctcdecode
(``bench.ctc.beam``, which says how to install it), and the record's
``selected.decoding`` says which decoding scored it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.ctc.beam import BeamSearchDecoder, BeamSettings
from bench.ctc.decode import Decoder, greedy
from bench.ctc.recipe import CTCRecipe, RecurrentHead, SpecAugment
from bench.ctc.text import CharTranscription, TokenSet
from bench.data import DataError
from bench.frames.batching import LengthBuckets
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID
from bench.tasks.superb.content import LibriSpeechTask
from bench.tasks.superb.pr import LIBRISPEECH_LICENSE


@register_task
class SpeechRecognition(LibriSpeechTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.asr",
        description="Speech recognition, LibriSpeech train-clean-100, WER (SUPERB ASR)",
        corpus="LibriSpeech",
        data_layout="LibriSpeech/<split>/ as the archives unpack",
        main_metric="wer",
        higher_is_better=False,
        license=LIBRISPEECH_LICENSE,
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    protocol = "ctc_recognition"
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=32, max_steps=200_000, eval_every=2000, patience=10
    )
    ctc_recipe = CTCRecipe(
        head=RecurrentHead(spec_augment=SpecAugment()), batching=LengthBuckets(), accumulate=1
    )
    roles: ClassVar[dict[str, str]] = {
        "train": "train",
        "dev": "dev",
        "test": "test",
        "test_other": "test_other",
    }
    optional_roles = ("test_other",)

    @dataclass(frozen=True)
    class Options:
        """librispeech_dir: the LibriSpeech folder; train, dev, test, test_other:
        LibriSpeech splits (test_other is scored when present). decoder: greedy (SUPERB's)
        or beam (``bench.ctc.beam``: pyctcdecode, with the KenLM model ``lm_path`` when
        given, weighted by ``lm_weight`` and ``word_score``; ``beam_size`` hypotheses)."""

        librispeech_dir: str | None = None
        train: tuple[str, ...] = ("train-clean-100",)
        dev: tuple[str, ...] = ("dev-clean",)
        test: tuple[str, ...] = ("test-clean",)
        test_other: tuple[str, ...] = ("test-other",)
        decoder: str = "greedy"
        beam_size: int = 5
        lm_path: str | None = None
        lm_weight: float = 2.0
        word_score: float = -1.0

    def transcription(self) -> CharTranscription:
        return CharTranscription()

    def final_decoder(self, tokens: TokenSet) -> tuple[Decoder, str]:
        """How the selected probes' scores are decoded, and its description."""
        options = self.options
        if options.decoder == "greedy":
            return greedy(tokens)
        if options.decoder != "beam":
            raise DataError(f"superb.asr: decoder must be greedy or beam, not {options.decoder!r}")
        beam = BeamSettings(
            options.beam_size, options.lm_path, options.lm_weight, options.word_score
        )
        return BeamSearchDecoder(tokens, beam), beam.describe()
