"""A restatement of s3prl 0.4.18's ``downstream/ctc/metric.py`` slot metrics, for the tests:
the slots go through s3prl's ``value:type`` / ``;`` strings and back, as it does."""

import re

import editdistance


def _clean(text):
    return re.sub(r" E\-(\S+)", "", re.sub(r"B\-(\S+) ", "", text))


def _parse(hypothesis, reference):
    pattern = re.compile(r"B\-(\S+) (.+?) E\-\1")
    hypothesis, reference = re.sub(r" +", " ", hypothesis), re.sub(r" +", " ", reference)
    found_hyp, found_ref = pattern.findall(hypothesis), pattern.findall(reference)
    ref_slots = ";".join(f"{value}:{slot}" for slot, value in found_ref)
    hyp_slots = ";".join(f"{_clean(value)}:{slot}" for slot, value in found_hyp)
    return ref_slots, hyp_slots


def _as_dict(joined):
    slots = {}
    entries = joined.split(";")
    if entries[0] != "":
        for entry in entries:
            value, slot = entry.split(":")
            slots.setdefault(slot, []).append(value)
    return slots


def _cer(hypotheses, references):
    errors = sum(editdistance.eval(h, r) for h, r in zip(hypotheses, references, strict=True))
    return errors / sum(len(r) for r in references)


def s3prl_slot_type_f1(hypotheses, references):
    scores = []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        ref_joined, hyp_joined = _parse(hypothesis, reference)
        ref, hyp = _as_dict(ref_joined), _as_dict(hyp_joined)
        if not hyp and not ref:
            scores.append(1.0)
        elif not hyp or not ref:
            scores.append(0.0)
        else:
            recall = sum(1 for slot in ref if slot in hyp) / len(ref)
            precision = sum(1 for slot in hyp if slot in ref) / len(hyp)
            total = precision + recall
            scores.append(2 * precision * recall / total if total > 0 else 0.0)
    return sum(scores) / len(scores)


def s3prl_slot_value_cer(hypotheses, references):
    value_hyps, value_refs = [], []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        ref_joined, hyp_joined = _parse(hypothesis, reference)
        ref, hyp = _as_dict(ref_joined), _as_dict(hyp_joined)
        for slot in ref:
            for ref_value in ref[slot]:
                best, best_cer = "", 100
                for hyp_value in hyp.get(slot, []):
                    cer = _cer([hyp_value], [ref_value])
                    if best_cer > cer:
                        best, best_cer = hyp_value, cer
                value_refs.append(ref_value)
                value_hyps.append(best)
    return _cer(value_hyps, value_refs)
