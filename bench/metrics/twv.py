"""Term-weighted value (ATWV, MTWV) of query-by-example detections, as QUESST 2014 scores them.

QUESST 2014 (MediaEval's Query by Example Search on Speech) is scored per *trial*: every
(query, document) pair is one, and a system gives each a score and a YES/NO decision. The
database's ``scoring/score-TWV-Cnxe.sh`` computes the effective prior with ``bc``
(``scale=7``, which truncates) from ``P_target = 0.0008``, ``C_miss = 100``, ``C_fa = 1``
and passes it, the ground truth (``*.ecf.xml``: the documents, ``*.tlist.xml``: the
queries, ``*.rttm``: where each query occurs) and a default score for unreported trials
(s3prl passes -10) to the MediaEval scoring tool. With ``N_true(q)`` the documents holding
query q, ``N`` the documents in the ECF and ``beta = (1 - prior) / prior`` (12.49):

    TWV(theta) = 1 - mean over q of [ P_miss(q, theta) + beta * P_fa(q, theta) ]
    P_miss(q, theta) = 1 - N_hit(q, theta) / N_true(q)
    P_fa(q, theta)   = N_fa(q, theta) / (N - N_true(q))

The mean runs over the queries of the term list that occur at least once (the tool drops
the others); a query or trial the system does not report gets the default score and a NO
decision, so it counts as a miss (SUPERB scores the English queries only: every other
query then contributes 0 to a sum that is still divided by all of them).

- ATWV (actual TWV): the trials decided YES are the detections.
- MTWV (maximum TWV): the best TWV over one global threshold, ``score >= theta`` being a
  detection, theta swept over every score given (and above all of them, where TWV = 0).

The scoring tool itself (a Java archive) publishes no source; these definitions are the
NIST STD 2006 ones applied to trials as its documentation describes. Where it leaves a
choice open (``>=`` against ``>``, the threshold reported on ties) the maximum is the same
either way; the reported threshold is the highest one that reaches it.

``write_stdlist`` writes detections in the NIST STD ``.stdlist.xml`` format s3prl's recipe
writes, so the official tool can score the same detections.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.fileio import atomic_write

P_TARGET = 0.0008
COST_MISS = 100.0
COST_FALSE_ALARM = 1.0
#: the default score s3prl's recipe passes to score-TWV-Cnxe.sh for unreported trials
DEFAULT_SCORE = -10.0


def effective_prior(
    p_target: float = P_TARGET,
    cost_miss: float = COST_MISS,
    cost_false_alarm: float = COST_FALSE_ALARM,
) -> float:
    """The effective prior as score-TWV-Cnxe.sh passes it: ``bc`` with ``scale=7`` truncates."""
    exact = cost_miss * p_target / (cost_miss * p_target + cost_false_alarm * (1.0 - p_target))
    return math.floor(exact * 1e7) / 1e7


def false_alarm_weight(prior: float | None = None) -> float:
    """beta, the weight of a false-alarm rate against a miss rate: ``(1 - prior) / prior``."""
    prior = effective_prior() if prior is None else prior
    return (1.0 - prior) / prior


@dataclass(frozen=True)
class DetectionKey:
    """The ground truth of one query set.

    terms: the queries of the term list (tlist), in order.
    documents: the documents searched (ECF).
    occurrences: query -> the documents that hold it (RTTM); queries absent hold none.
    """

    terms: tuple[str, ...]
    documents: tuple[str, ...]
    occurrences: Mapping[str, frozenset[str]]

    def scored_terms(self) -> list[str]:
        """The queries TWV averages over: those that occur at least once."""
        return [term for term in self.terms if self.occurrences.get(term)]


@dataclass(frozen=True)
class TermDetections:
    """A system's trials for one query: a score and a YES/NO decision per document."""

    documents: Sequence[str]
    scores: np.ndarray
    decisions: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.documents) == len(self.scores) == len(self.decisions):
            raise ValueError("documents, scores and decisions differ in length")


@dataclass(frozen=True)
class TermWeightedValue:
    """actual: ATWV; maximum: MTWV, reached at ``score >= threshold`` (inf: no detection);
    terms: the queries averaged over."""

    actual: float
    maximum: float
    threshold: float
    terms: int


def term_weighted_value(
    key: DetectionKey,
    detections: Mapping[str, TermDetections],
    default_score: float = DEFAULT_SCORE,
    beta: float | None = None,
) -> TermWeightedValue:
    """ATWV and MTWV of ``detections`` (query -> trials) against ``key`` (module doc)."""
    beta = false_alarm_weight() if beta is None else beta
    _check_names(key, detections)
    terms = key.scored_terms()
    if not terms:
        raise ValueError("no query of the term list occurs in any document")
    total = len(key.documents)
    scores, gains, decisions = [], [], []
    for term in terms:
        occurs = key.occurrences[term]
        # Detecting a target gains hit; a false alarm costs false_alarm (both / queries).
        hit = 1.0 / (len(terms) * len(occurs))
        non_targets = total - len(occurs)
        false_alarm = beta / (len(terms) * non_targets) if non_targets else 0.0
        reported = detections.get(term)
        found_targets = found_trials = 0
        if reported is not None:
            targets = np.fromiter((doc in occurs for doc in reported.documents), bool)
            scores.append(np.asarray(reported.scores, dtype=np.float64))
            gains.append(np.where(targets, hit, -false_alarm))
            decisions.append(np.asarray(reported.decisions, dtype=bool))
            found_targets, found_trials = int(targets.sum()), len(targets)
        missing_targets = len(occurs) - found_targets
        missing_non_targets = non_targets - (found_trials - found_targets)
        if missing_targets or missing_non_targets:
            # The unreported trials share the default score and a NO: one lumped trial.
            scores.append(np.array([default_score]))
            gains.append(np.array([missing_targets * hit - missing_non_targets * false_alarm]))
            decisions.append(np.array([False]))
    score, gain, decided = (np.concatenate(parts) for parts in (scores, gains, decisions))
    maximum, threshold = _best_threshold(score, gain)
    return TermWeightedValue(
        actual=float(gain[decided].sum()), maximum=maximum, threshold=threshold, terms=len(terms)
    )


def _best_threshold(scores: np.ndarray, gains: np.ndarray) -> tuple[float, float]:
    """The maximum over theta of the summed gains of ``scores >= theta``, and that theta."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    value = np.cumsum(gains[order])
    # a threshold accepts every trial of its score: read the sum at the end of each run
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    best = int(np.argmax(value[ends]))
    if value[ends][best] <= 0.0:
        return 0.0, math.inf
    return float(value[ends][best]), float(ordered[ends][best])


def _check_names(key: DetectionKey, detections: Mapping[str, TermDetections]) -> None:
    unknown_terms = sorted(set(detections) - set(key.terms))
    if unknown_terms:
        raise ValueError(f"detections for queries not in the term list: {unknown_terms[:5]}")
    documents = set(key.documents)
    for term, reported in detections.items():
        unknown = sorted(set(reported.documents) - documents)
        if unknown:
            raise ValueError(f"{term}: detections in documents not in the ECF: {unknown[:5]}")
        if len(set(reported.documents)) != len(reported.documents):
            raise ValueError(f"{term}: a document is reported twice")


def write_stdlist(path: Path, detections: Mapping[str, TermDetections]) -> None:
    """The detections as a NIST STD ``.stdlist.xml``, in the form s3prl's recipe writes
    (scores with 4 decimals), for ``score-TWV-Cnxe.sh <dir> <groundtruth dir> -10``."""
    root = ET.Element(
        "stdlist",
        termlist_filename="benchmark.stdlist.xml",
        indexing_time="1.00",
        language="english",
        index_size="1",
        system_id="bench",
    )
    for term, reported in detections.items():
        terms = ET.SubElement(
            root, "detected_termlist", termid=term, term_search_time="1.0", oov_term_count="1"
        )
        for document, score, decision in zip(
            reported.documents, reported.scores, reported.decisions, strict=True
        ):
            ET.SubElement(
                terms,
                "term",
                file=document,
                channel="1",
                tbeg="0.000",
                dur="0.00",
                score=f"{score:.4f}",
                decision="YES" if decision else "NO",
            )
    ET.indent(root)
    tree = ET.ElementTree(root)
    atomic_write(Path(path), lambda handle: tree.write(handle, encoding="UTF-8"))
