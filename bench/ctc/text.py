"""CTC targets: output vocabularies, transcripts to units, units back to scored sequences.

Two vocabularies, exactly as s3prl's SUPERB recipes define them:

- ``PHONE_TOKENS`` (PR, ``downstream/ctc/libriphone.yaml``: ``vocab/phoneme.txt`` read by
  ``text.py``'s word encoder): ``<pad> <eos> <unk>`` then 71 phones, the 39 ARPAbet phones
  with the lexicon's stress digits on vowels (0, 1, 2) plus SIL and SPN. s3prl keeps the
  stress: its lexicon entries are checked against this set. Blank is ``<pad>`` (0).
- ``CHAR_TOKENS`` (ASR, ``downstream/asr/char.dict`` read by fairseq's ``Dictionary``):
  ``<s> <pad> </s> <unk>`` then ``|`` (word boundary), the 26 letters and ``'`` in the
  file's order. Blank is ``<s>`` (0).

Targets are the units followed by the end-of-sentence token (both s3prl encoders append it,
so the probe learns to emit it); decoding drops blanks and end-of-sentence tokens.
``PhoneTranscription`` maps words to phones with a pronunciation lexicon; ``CharTranscription``
spells words as s3prl's ASR reader does (upper case, ``|`` after every word).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bench.corpus_check import quote
from bench.corpus_files import read_text
from bench.data import DataError, Item
from bench.metrics.ctc import error_rate, words_of

#: s3prl's vocab/phoneme.txt (71 phones: ARPAbet with the lexicon's stress digits, SIL, SPN)
PHONES = tuple(
    [
        "SIL",
        "SPN",
        "AA0",
        "AA1",
        "AA2",
        "AE0",
        "AE1",
        "AE2",
        "AH0",
        "AH1",
        "AH2",
        "AO0",
        "AO1",
        "AO2",
        "AW0",
        "AW1",
        "AW2",
        "AY0",
        "AY1",
        "AY2",
        "B",
        "CH",
        "D",
        "DH",
        "EH0",
        "EH1",
        "EH2",
        "ER0",
        "ER1",
        "ER2",
        "EY0",
        "EY1",
        "EY2",
        "F",
        "G",
        "HH",
        "IH0",
        "IH1",
        "IH2",
        "IY0",
        "IY1",
        "IY2",
        "JH",
        "K",
        "L",
        "M",
        "N",
        "NG",
        "OW0",
        "OW1",
        "OW2",
        "OY0",
        "OY1",
        "OY2",
        "P",
        "R",
        "S",
        "SH",
        "T",
        "TH",
        "UH0",
        "UH1",
        "UH2",
        "UW0",
        "UW1",
        "UW2",
        "V",
        "W",
        "Y",
        "Z",
        "ZH",
    ]
)
#: s3prl's downstream/asr/char.dict, in its (frequency) order
CHARACTERS = tuple("|ETAONIHSRDLUMCWFGYPBVK'XJQZ")
WORD_BOUNDARY = "|"


@dataclass(frozen=True)
class TokenSet:
    """A CTC output vocabulary.

    symbols: in output index order. blank: the CTC blank. eos: appended to every target.
    dropped: indices removed from a decoded sequence (besides collapsing repeats).
    """

    name: str
    symbols: tuple[str, ...]
    blank: int
    eos: int
    dropped: frozenset[int]

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, units: Sequence[str]) -> list[int]:
        """Unit indices followed by ``eos``; a unit outside the vocabulary is a ``KeyError``."""
        return [self._index[unit] for unit in units] + [self.eos]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Indices (already collapsed) to units, without the dropped tokens."""
        return [self.symbols[i] for i in ids if i not in self.dropped]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {symbol: i for i, symbol in enumerate(self.symbols)}


PHONE_TOKENS = TokenSet(
    name="s3prl-libriphone",
    symbols=("<pad>", "<eos>", "<unk>", *PHONES),
    blank=0,
    eos=1,
    dropped=frozenset({0, 1}),  # s3prl's ctc expert filters pad and eos
)
CHAR_TOKENS = TokenSet(
    name="s3prl-char",
    symbols=("<s>", "<pad>", "</s>", "<unk>", *CHARACTERS),
    blank=0,
    eos=2,
    dropped=frozenset({0, 2}),  # blank (= bos), and Dictionary.string drops bos and eos
)

# -- lexicon -------------------------------------------------------------------------------

#: s3prl's PR lexicon (downstream/ctc/libriphone.yaml), in the order it reads them
LEXICON_FILES = ("librispeech-lexicon-200k-g2p.txt", "librispeech-lexicon-allothers-g2p.txt")
LEXICON_SOURCE = (
    "https://huggingface.co/datasets/s3prl/g2p/raw/main/lexicon/<file> "
    "(also in s3prl's repository under s3prl/downstream/ctc/lexicon/)"
)


def read_lexicon(
    paths: Sequence[Path], phones: Iterable[str] = PHONES
) -> dict[str, tuple[str, ...]]:
    """``WORD PH1 PH2 ...`` lines; the first pronunciation of a word wins, files read in
    order (s3prl takes the first "for a deterministic behaviour"). A phone outside
    ``phones`` is an error naming the file and line."""
    known = set(phones)
    lexicon: dict[str, tuple[str, ...]] = {}
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"{path}: lexicon file is missing; it is published at {LEXICON_SOURCE}")
        for line_number, line in enumerate(read_text(path).splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            word, *pronunciation = fields
            unknown = [p for p in pronunciation if p not in known]
            if unknown or not pronunciation:
                problem = f"unknown phones {unknown}" if unknown else "no phones"
                raise DataError(f"{path}, line {line_number}: {problem} for {word!r}")
            lexicon.setdefault(word, tuple(pronunciation))
    return lexicon


# -- transcriptions ------------------------------------------------------------------------


def refuse_unknown(
    items: Sequence[Item],
    pieces: Callable[[str], Iterable[str]],
    known: Container[str],
    problem: str,
) -> None:
    """An error when a piece of a transcript (``pieces(label)``: words, characters) is not
    ``known``: how many there are, how often and where they occur."""
    unknown: Counter[str] = Counter()
    uses: dict[str, set[str]] = {}
    for item in items:
        for piece in pieces(item.label):
            if piece not in known:
                unknown[piece] += 1
                uses.setdefault(piece, set()).add(item.key)
    if unknown:
        examples = sorted(set().union(*uses.values()))
        raise DataError(
            f"{len(unknown):,} {problem} ({sum(unknown.values()):,} occurrences in "
            f"{len(examples):,} of {len(items):,} utterances): {quote(sorted(unknown))}; "
            f"e.g. in {quote(examples)}"
        )


@dataclass(frozen=True)
class PhoneTranscription:
    """Words to phones through a lexicon (SUPERB PR); scored by PER."""

    lexicon: dict[str, tuple[str, ...]]
    tokens: TokenSet = PHONE_TOKENS
    metrics: tuple[str, ...] = ("per",)

    def units(self, transcript: str) -> list[str]:
        return [phone for word in transcript.split() for phone in self.lexicon[word]]

    def check(self, items: Sequence[Item], where: str) -> None:
        """Every word of every transcript is in the lexicon; else an error naming the
        missing words, how many there are, and utterances that use them."""
        refuse_unknown(items, str.split, self.lexicon, f"words of {where} are not in the lexicon")

    def scores(
        self, hypotheses: Sequence[list[str]], references: Sequence[list[str]]
    ) -> dict[str, float]:
        return {"per": error_rate(hypotheses, references)}


@dataclass(frozen=True)
class CharTranscription:
    """Words spelled in characters with ``|`` after each word (SUPERB ASR); scored by WER,
    and by s3prl's unit error rate (UER: characters and word boundaries)."""

    tokens: TokenSet = CHAR_TOKENS
    metrics: tuple[str, ...] = ("wer", "uer")

    def units(self, transcript: str) -> list[str]:
        return [unit for word in transcript.upper().split() for unit in (*word, WORD_BOUNDARY)]

    def check(self, items: Sequence[Item], where: str) -> None:
        refuse_unknown(
            items,
            lambda text: text.upper().replace(" ", ""),
            set(self.tokens.symbols),
            f"characters of {where} are not in {self.tokens.name}",
        )

    def scores(
        self, hypotheses: Sequence[list[str]], references: Sequence[list[str]]
    ) -> dict[str, float]:
        return {
            "wer": error_rate([words_of(h) for h in hypotheses], [words_of(r) for r in references]),
            "uer": error_rate(hypotheses, references),
        }


Transcription = PhoneTranscription | CharTranscription
