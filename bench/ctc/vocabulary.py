"""Character vocabularies of SUPERB-SG's OOD-ASR: s3prl's ``CharacterTextEncoder``.

s3prl's ``downstream/ctc`` configs for Common Voice and SBCSAE (``text.mode: character``)
read a vocabulary file of one character per line (``cv_vocab/<lang>_char.txt``, a space
among them) and put ``<pad> <eos> <unk>`` before it; blank is ``<pad>`` (0). A transcript
is its characters (trailing spaces and line ends stripped) followed by ``<eos>``; a
character outside the vocabulary becomes ``<unk>``, in training targets and references
alike. Decoding drops ``<pad>`` and ``<eos>`` and joins the symbols into a string (so
``<unk>`` is five characters of the text being scored).

Scores are s3prl's ``downstream/ctc/metric.py`` on those strings, in percent: CER over
characters (spaces included), WER over the words that ``split(" ")`` gives (one empty word
for an empty hypothesis, as s3prl counts it).

Vocabulary: s3prl's published files are each corpus's training characters in code-point
order. bench builds that vocabulary from the training transcripts
(``characters_of``), or reads the file given (``read_vocabulary``) to use s3prl's exactly.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bench.corpus_files import read_text
from bench.ctc.text import TokenSet
from bench.data import DataError, Item
from bench.metrics.ctc import character_error_rate, error_rate

log = logging.getLogger(__name__)

SPECIALS = ("<pad>", "<eos>", "<unk>")
UNKNOWN = "<unk>"


def character_tokens(characters: Sequence[str], name: str) -> TokenSet:
    """``<pad> <eos> <unk>`` then ``characters``; blank ``<pad>``, ``<eos>`` appended."""
    return TokenSet(
        name=name,
        symbols=(*SPECIALS, *characters),
        blank=0,
        eos=1,
        dropped=frozenset({0, 1}),
    )


def read_vocabulary(path: Path) -> tuple[str, ...]:
    """One character per line, line ends stripped and nothing else (a line holding a space
    is the space token). Lines that are not one character, or repeat one, are errors."""
    if not Path(path).is_file():
        raise DataError(f"{path}: vocabulary file is missing")
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()  # the last line's end
    characters: list[str] = []
    for number, line in enumerate(lines, start=1):
        symbol = line.rstrip("\r")
        if len(symbol) != 1:
            raise DataError(f"{path}, line {number}: {symbol!r} is not one character")
        if symbol in characters:
            raise DataError(f"{path}, line {number}: {symbol!r} is listed twice")
        characters.append(symbol)
    if not characters:
        raise DataError(f"{path}: the vocabulary is empty")
    return tuple(characters)


def strip_transcript(text: str) -> str:
    """What s3prl's encoder spells: the transcript without trailing spaces or line ends."""
    return text.strip("\r\n ")


def characters_of(transcripts: Iterable[str]) -> tuple[str, ...]:
    """Every character of the transcripts, in code-point order (the order of s3prl's files)."""
    return tuple(sorted({c for text in transcripts for c in strip_transcript(text)}))


@dataclass(frozen=True)
class CharacterVocabulary:
    """Transcripts as characters of ``tokens`` (``character_tokens``); scored by CER and WER."""

    tokens: TokenSet
    metrics: tuple[str, ...] = ("cer", "wer")

    @cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(self.tokens.symbols[len(SPECIALS) :])

    def units(self, transcript: str) -> list[str]:
        return [c if c in self._known else UNKNOWN for c in strip_transcript(transcript)]

    def check(self, items: Sequence[Item], where: str) -> None:
        """Characters outside the vocabulary become ``<unk>`` (s3prl does not refuse them);
        say how many there are, once per split."""
        unknown = Counter(
            c for item in items for c in strip_transcript(item.label) if c not in self._known
        )
        if unknown:
            shown = ", ".join(repr(c) for c, _ in unknown.most_common(10))
            log.warning(
                "%s: %d character(s) outside the vocabulary %s (%d occurrences) are <unk>: %s",
                where,
                len(unknown),
                self.tokens.name,
                sum(unknown.values()),
                shown,
            )

    def scores(
        self, hypotheses: Sequence[list[str]], references: Sequence[list[str]]
    ) -> dict[str, float]:
        hypothesis_texts = ["".join(units) for units in hypotheses]
        reference_texts = ["".join(units) for units in references]
        return {
            "cer": character_error_rate(hypothesis_texts, reference_texts),
            "wer": error_rate(
                [text.split(" ") for text in hypothesis_texts],
                [text.split(" ") for text in reference_texts],
            ),
        }
