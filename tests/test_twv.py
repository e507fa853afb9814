"""ATWV and MTWV (bench.metrics.twv): a hand-worked case, and scikit-learn's ROC on random ones.

The official QUESST 2014 scorer is a Java archive whose source is not published, so it
cannot be run here; the definitions are checked by hand and against an independent
computation of the same formula from per-query ROC curves.
"""

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from bench.metrics.twv import (
    DEFAULT_SCORE,
    DetectionKey,
    TermDetections,
    effective_prior,
    false_alarm_weight,
    term_weighted_value,
    write_stdlist,
)

DOCS = ("d1", "d2", "d3", "d4", "d5")
KEY = DetectionKey(
    terms=("q1", "q2", "q3"),
    documents=DOCS,
    occurrences={"q1": frozenset({"d1", "d2"}), "q2": frozenset({"d3"})},
)


def detections(rows: dict[str, dict[str, tuple[float, bool]]]) -> dict[str, TermDetections]:
    return {
        term: TermDetections(
            list(trials),
            np.array([score for score, _ in trials.values()]),
            np.array([decision for _, decision in trials.values()]),
        )
        for term, trials in rows.items()
    }


HAND = detections(
    {
        "q1": {
            "d1": (3.0, True),
            "d2": (1.0, False),
            "d3": (2.0, True),
            "d4": (0.0, False),
            "d5": (-1.0, False),
        },
        # d2 and d4 unreported: the default score -10 and NO
        "q2": {"d1": (0.5, False), "d3": (2.5, True), "d5": (1.0, False)},
        # q3 occurs nowhere: left out of the average whatever it scores
        "q3": {"d1": (5.0, True)},
    }
)


def test_hand_worked_case():
    # beta = 2; q1: 2 targets, 3 non-targets; q2: 1 target, 4 non-targets.
    # ATWV: q1 detects d1 (hit) and d3 (false alarm): P_miss 1/2, P_fa 1/3; q2 detects d3.
    #   1 - ((1/2 + 2 * 1/3) + 0) / 2 = 5/12
    # TWV over thresholds: 3 -> 1/4, 2.5 -> 3/4, 2 -> 5/12, 1 -> 5/12, 0.5 -> 1/6,
    #   0 -> -1/6, -1 -> -1/2, -10 -> -1; none -> 0. MTWV 3/4 at 2.5.
    value = term_weighted_value(KEY, HAND, beta=2.0)
    assert value.actual == pytest.approx(5 / 12)
    assert value.maximum == pytest.approx(3 / 4)
    assert value.threshold == 2.5
    assert value.terms == 2


def test_the_scorer_constants():
    # score-TWV-Cnxe.sh: bc scale=7 truncates 0.08 / 1.0792 = 0.0741289844...
    assert effective_prior() == 0.0741289
    assert false_alarm_weight() == pytest.approx(0.9258711 / 0.0741289)
    assert false_alarm_weight() == pytest.approx(12.49, abs=1e-4)  # the NIST beta
    assert DEFAULT_SCORE == -10.0


def test_ties_share_a_threshold_and_nothing_beats_no_detection():
    key = DetectionKey(("q",), ("a", "b", "c"), {"q": frozenset({"a"})})
    tied = detections({"q": {"a": (1.0, True), "b": (1.0, True), "c": (0.0, False)}})
    # 1.0 accepts a and b together: 1 - (0 + 1 * 1/2) = 1/2
    assert term_weighted_value(key, tied, beta=1.0).maximum == pytest.approx(0.5)
    # with a heavy false-alarm weight the best is to detect nothing: TWV 0, threshold inf
    heavy = term_weighted_value(key, tied, beta=10.0)
    assert heavy.maximum == 0.0 and heavy.threshold == math.inf
    assert heavy.actual == pytest.approx(1 - 10 * 0.5)


def test_unreported_queries_count_as_misses():
    only_q1 = {"q1": HAND["q1"]}
    with_q2 = term_weighted_value(KEY, HAND)
    without = term_weighted_value(KEY, only_q1)
    assert without.terms == 2  # q2 still averaged over: all its trials at the default score
    q1_alone = term_weighted_value(
        DetectionKey(("q1",), DOCS, {"q1": KEY.occurrences["q1"]}), only_q1
    )
    assert without.maximum == pytest.approx(q1_alone.maximum / 2)
    assert with_q2.maximum > without.maximum


def brute_force(key, reported, default, beta):
    """TWV(theta) = mean over queries of TPR - beta * FPR, from scikit-learn's ROC."""
    terms = key.scored_terms()
    full = {}
    for term in terms:
        trial = dict.fromkeys(key.documents, default)
        decision = dict.fromkeys(key.documents, False)
        if term in reported:
            r = reported[term]
            trial.update(zip(r.documents, r.scores, strict=True))
            decision.update(zip(r.documents, r.decisions, strict=True))
        labels = [doc in key.occurrences[term] for doc in key.documents]
        full[term] = (np.array(labels), np.array(list(trial.values())), decision)
    actual = np.mean(
        [
            sum(d for doc, d in decision.items() if doc in key.occurrences[t]) / labels.sum()
            - beta
            * sum(d for doc, d in decision.items() if doc not in key.occurrences[t])
            / (~labels).sum()
            for t, (labels, _, decision) in full.items()
        ]
    )
    curves = {
        t: roc_curve(labels, s, drop_intermediate=False) for t, (labels, s, _) in full.items()
    }
    best = 0.0
    for theta in np.unique(np.concatenate([s for _, s, _ in full.values()])):
        values = []
        for fpr, tpr, thresholds in curves.values():
            at = np.flatnonzero(thresholds >= theta)  # thresholds decrease; score >= theta
            values.append(tpr[at[-1]] - beta * fpr[at[-1]] if len(at) else 0.0)
        best = max(best, float(np.mean(values)))
    return actual, best


@pytest.mark.parametrize("seed", range(20))
def test_random_cases_agree_with_roc_curves(seed):
    rng = np.random.default_rng(seed)
    documents = tuple(f"doc{i}" for i in range(int(rng.integers(5, 30))))
    terms = tuple(f"q{i}" for i in range(int(rng.integers(1, 8))))
    occurrences = {}
    for term in terms:
        if rng.random() < 0.8:  # some queries occur nowhere
            count = int(rng.integers(1, len(documents)))
            occurrences[term] = frozenset(rng.choice(documents, count, replace=False).tolist())
    if not occurrences:
        occurrences[terms[0]] = frozenset(documents[:1])
    key = DetectionKey(terms, documents, occurrences)
    reported = {}
    for term in terms:
        if rng.random() < 0.2:
            continue  # unreported query
        chosen = rng.choice(documents, int(rng.integers(1, len(documents) + 1)), replace=False)
        # coarse scores make ties; targets score a little higher
        scores = np.round(
            rng.normal(size=len(chosen)) + np.isin(chosen, list(occurrences.get(term, []))), 1
        )
        reported[term] = TermDetections(list(chosen), scores, scores > 0.5)
    beta = float(rng.choice([1.0, 3.0, false_alarm_weight()]))
    default = float(rng.choice([DEFAULT_SCORE, 0.0]))  # 0.0 ties the default with given scores
    value = term_weighted_value(key, reported, default_score=default, beta=beta)
    actual, maximum = brute_force(key, reported, default, beta)
    assert value.actual == pytest.approx(actual, abs=1e-12)
    assert value.maximum == pytest.approx(maximum, abs=1e-12)


def test_bad_detections_are_refused():
    with pytest.raises(ValueError, match="not in the term list"):
        term_weighted_value(KEY, detections({"q9": {"d1": (1.0, True)}}))
    with pytest.raises(ValueError, match="not in the ECF"):
        term_weighted_value(KEY, detections({"q1": {"d9": (1.0, True)}}))
    twice = TermDetections(["d1", "d1"], np.zeros(2), np.zeros(2, bool))
    with pytest.raises(ValueError, match="twice"):
        term_weighted_value(KEY, {"q1": twice})
    with pytest.raises(ValueError, match="no query of the term list occurs"):
        term_weighted_value(DetectionKey(("q",), DOCS, {}), {})


def test_stdlist_is_what_the_official_scorer_reads(tmp_path):
    path = tmp_path / "system" / "benchmark.stdlist.xml"
    write_stdlist(path, HAND)
    root = ET.parse(path).getroot()
    assert root.tag == "stdlist"
    lists = {t.get("termid"): t for t in root.iter("detected_termlist")}
    assert list(lists) == ["q1", "q2", "q3"]
    first = lists["q1"].find("term")
    assert first.attrib == {
        "file": "d1",
        "channel": "1",
        "tbeg": "0.000",
        "dur": "0.00",
        "score": "3.0000",
        "decision": "YES",
    }
    assert [t.get("decision") for t in lists["q2"].iter("term")] == ["NO", "YES", "NO"]
