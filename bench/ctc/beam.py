"""CTC prefix beam search, optionally with a KenLM n-gram (SUPERB ASR's optional decoding).

s3prl's ``downstream/asr`` can decode test sets with flashlight's lexicon-constrained
KenLM decoder (``decoder_args``: ``kenlm_model``, ``lexicon``, ``lm_weight`` 2,
``word_score`` -1, beam 5). SUPERB's published ASR numbers are greedy, which stays bench's
default. ``task_options.superb.asr.decoder=beam`` uses pyctcdecode instead (a well-kept,
torchaudio-free decoder): a lexicon-free prefix beam search with shallow fusion of the
ARPA or binary KenLM model in ``lm_path`` (none: beam search alone). Its numbers are close
to, but not those of, flashlight's lexicon decoder; the record says which decoding made
them. Needs pyctcdecode (``INSTALL`` says how: its numpy<2 pin must be skipped) and, for
a language model, kenlm (``pip install 'bench-ssl[lm]'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bench.ctc.text import TokenSet
from bench.data import DataError

WORD_BOUNDARY = "|"
#: pyctcdecode 0.5 pins numpy<2, which bench's pandas cannot use: installed without it
INSTALL = (
    "decoder=beam needs pyctcdecode, installed without its numpy<2 pin: "
    "pip install --no-deps pyctcdecode==0.5.0 && pip install 'bench-ssl[lm]'"
)


@dataclass(frozen=True)
class BeamSettings:
    """beam_size: hypotheses kept; lm_path: a KenLM model (.arpa or .bin) or None;
    lm_weight, word_score: pyctcdecode's alpha and beta (weight of the LM's log10
    probability, bonus per word)."""

    beam_size: int = 5
    lm_path: str | None = None
    lm_weight: float = 2.0
    word_score: float = -1.0

    def describe(self) -> str:
        lm = "no language model"
        if self.lm_path:
            lm = f"KenLM {Path(self.lm_path).name}, lm_weight {self.lm_weight:g}, "
            lm += f"word_score {self.word_score:g}"
        return f"pyctcdecode beam search (beam {self.beam_size}, {lm})"


class BeamSearchDecoder:
    """Decodes ``[B, T, V]`` logits like ``bench.ctc.decode.greedy_decode``: units with
    ``|`` after every word."""

    def __init__(self, tokens: TokenSet, settings: BeamSettings):
        try:
            from pyctcdecode import build_ctcdecoder
        except ModuleNotFoundError:
            raise DataError(INSTALL) from None

        if settings.lm_path is not None:
            if not Path(settings.lm_path).is_file():
                raise DataError(f"{settings.lm_path}: no such language model file (lm_path)")
            # without kenlm, pyctcdecode would warn and decode with no language model
            import kenlm  # noqa: F401
        self.settings = settings
        # pyctcdecode's labels: "" is the blank, " " the word boundary; a dropped token
        # (eos) gets a marker that no transcript holds, removed after decoding
        self.dropped = {i: f"\u2047{i}\u2047" for i in tokens.dropped if i != tokens.blank}
        labels = [self.dropped.get(i, symbol) for i, symbol in enumerate(tokens.symbols)]
        labels = [" " if label == WORD_BOUNDARY else label for label in labels]
        labels[tokens.blank] = ""
        self.decoder = build_ctcdecoder(
            labels,
            kenlm_model_path=settings.lm_path,
            alpha=settings.lm_weight,
            beta=settings.word_score,
        )

    def __call__(self, logits: Tensor, lengths: Tensor, tokens: TokenSet) -> list[list[str]]:
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        decoded = []
        for item, length in zip(log_probs, lengths.tolist(), strict=True):
            text = self.decoder.decode(item[:length], beam_width=self.settings.beam_size)
            for marker in self.dropped.values():
                text = text.replace(marker, "")
            decoded.append([unit for word in text.split() for unit in (*word, WORD_BOUNDARY)])
        return decoded
