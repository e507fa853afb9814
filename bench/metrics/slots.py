"""Slot filling metrics of SUPERB SF, as s3prl's ``downstream/ctc/metric.py`` computes them.

Hypotheses and references are texts in which every slot is written ``B-<slot> <value>
E-<slot>`` (``bench.ctc.text.SlotTranscription.text``). Runs of spaces count as one. A slot
is a ``B-<slot> `` tag, the shortest following text, and `` E-<slot>`` with the same name;
tags nested inside a recognised value are removed from it (in hypotheses only, as s3prl
does).

- ``slot_type_f1``: per utterance, the F1 between the sets of slot types of reference and
  hypothesis (1 when both have none, 0 when only one has none), averaged over utterances;
  in percent.
- ``slot_value_cer``: every reference slot value is paired with the hypothesis value of the
  same type that has the lowest CER against it (the first one on ties; an empty value when
  the hypothesis has no slot of that type); the corpus-level CER of those pairs, in percent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import editdistance

SLOT = re.compile(r"B\-(\S+) (.+?) E\-\1")
_OPENING = re.compile(r"B\-(\S+) ")
_CLOSING = re.compile(r" E\-(\S+)")
_SPACES = re.compile(r" +")

#: slot type -> its values, in order of appearance
Slots = dict[str, list[str]]


def without_tags(text: str) -> str:
    """``text`` without slot tags (s3prl's ``clean``)."""
    return _CLOSING.sub("", _OPENING.sub("", text))


def parse_slots(text: str, clean_values: bool) -> Slots:
    """The slots of ``text`` by type; ``clean_values`` removes nested tags from the values."""
    slots: Slots = {}
    for slot, value in SLOT.findall(_SPACES.sub(" ", text)):
        slots.setdefault(slot, []).append(without_tags(value) if clean_values else value)
    return slots


def _parsed(hypotheses: Sequence[str], references: Sequence[str]) -> list[tuple[Slots, Slots]]:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("slot metrics need at least one utterance")
    return [
        (parse_slots(h, clean_values=True), parse_slots(r, clean_values=False))
        for h, r in zip(hypotheses, references, strict=True)
    ]


def type_f1(hypothesis: Slots, reference: Slots) -> float:
    """F1 (0-1) between the slot types of one hypothesis and its reference."""
    if not hypothesis or not reference:
        return 1.0 if not hypothesis and not reference else 0.0
    recall = sum(slot in hypothesis for slot in reference) / len(reference)
    precision = sum(slot in reference for slot in hypothesis) / len(hypothesis)
    total = precision + recall
    return 2 * precision * recall / total if total > 0 else 0.0


def slot_type_f1(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean per-utterance slot-type F1, in percent."""
    scores = [type_f1(h, r) for h, r in _parsed(hypotheses, references)]
    return 100.0 * sum(scores) / len(scores)


def _cer(hypothesis: str, reference: str) -> float:
    return editdistance.eval(hypothesis, reference) / len(reference)


def closest_value(candidates: Sequence[str], reference: str) -> str:
    """The candidate with the lowest CER against ``reference``, first on ties; s3prl starts
    its search from a CER of 100 (a fraction), so a candidate must score below that."""
    best, best_cer = "", 100.0
    for candidate in candidates:
        cer = _cer(candidate, reference)
        if cer < best_cer:
            best, best_cer = candidate, cer
    return best


def slot_value_cer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus-level CER (%) of the reference slot values against their closest hypothesis
    values; NaN when no reference has a slot."""
    errors = length = 0
    for hypothesis, reference in _parsed(hypotheses, references):
        for slot, values in reference.items():
            for value in values:
                guess = closest_value(hypothesis.get(slot, []), value)
                errors += editdistance.eval(guess, value)
                length += len(value)
    return 100.0 * errors / length if length else math.nan
