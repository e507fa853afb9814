"""Error rates of recognised sequences, as s3prl computes them for SUPERB.

Corpus level, in percent: the sum over utterances of the edit distance between hypothesis
and reference, divided by the summed reference length (s3prl's ``downstream/ctc/metric.py``
for PER, ``downstream/asr/expert.py`` for WER and UER). Edit distances come from the
``editdistance`` package, the library s3prl uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import editdistance


def error_rate(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    """``100 * sum(edit distance) / sum(len(reference))`` over token sequences."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    length = sum(len(reference) for reference in references)
    if length == 0:
        raise ValueError("error rates need at least one reference token")
    errors = sum(
        editdistance.eval(list(h), list(r)) for h, r in zip(hypotheses, references, strict=True)
    )
    return 100.0 * errors / length


def words_of(units: Sequence[str], boundary: str = "|") -> list[str]:
    """Characters with word-boundary units to words (s3prl's ``token_to_word``)."""
    return "".join(units).replace(boundary, " ").split()


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """WER (%) of texts, words split on whitespace."""
    return error_rate([h.split() for h in hypotheses], [r.split() for r in references])


def character_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """CER (%) of texts over their characters, spaces included (s3prl's ``cer``)."""
    return error_rate([list(h) for h in hypotheses], [list(r) for r in references])
