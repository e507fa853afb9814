"""Corpus BLEU as s3prl's ST expert scores it: sacrebleu, case-sensitive, on detokenised
text, ``tokenize="13a"`` (``"zh"`` for a Chinese target)."""

from __future__ import annotations

from collections.abc import Sequence


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a"
) -> float:
    """sacrebleu's corpus BLEU (0-100) of one reference per hypothesis."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    import sacrebleu

    return float(
        sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score
    )
