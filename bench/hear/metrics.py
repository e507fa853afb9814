"""The HEAR 2021 metrics, computed exactly as hear-eval-kit 2021.1.3 (``heareval.score``) does.

Scene metrics take ``targets`` ([N, C] one-hot or multi-hot) and ``scores`` ([N, C] class
probabilities: softmax for multiclass tasks, sigmoid for multilabel ones):

- ``top1_acc`` / ``pitch_acc``: argmax of the scores equals argmax of the targets.
- ``chroma_acc``: the same modulo 12 class indices (octave errors forgiven; NSynth pitch).
- ``mAP``: scikit-learn's macro average precision.
- ``d_prime``: per class ``sqrt(2) * Phi^-1(ROC AUC)``, averaged over classes.
- ``aucroc``: scikit-learn's macro ROC AUC.

Event metrics take per-file event lists (``(onset_s, offset_s, label)``) and are scored by
``sed_eval`` itself, file by file, over the files that have predictions:

- ``event_onset_200ms_fms``, ``event_onset_50ms_fms``: event-based F-measure on onsets
  (200 / 50 ms collar); precision and recall come along as ``<name>_precision`` / ``_recall``.
- ``event_onset_offset_50ms_20perc_fms``: onsets and offsets (50 ms, or 20 % of length).
- ``segment_1s_er``: segment-based error rate on 1 s segments (lower is better).

One deliberate difference: the reference's d-prime is ``inf`` when a class is perfectly
separated (AUC = 1), which strict JSON cannot hold and which swamps any mean it enters.
``d_prime(finite=True)`` (the default) clips each class's AUC to ``[1/(2PN), 1 - 1/(2PN)]``
(half a misordered positive/negative pair; P and N the class's positive and negative
counts). Every AUC inside that range gives exactly the reference value; ``finite=False``
reproduces the reference everywhere.

``hear_score`` turns per-task primary scores into an upstream's HEAR score.

scikit-learn, scipy and sed_eval load on first use: task registration imports this module
(for the metric table) and the CLI should start fast.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np

Event = tuple[float, float, str]
"""One sound event: onset and offset in seconds, label."""
EventLists = Mapping[str, Sequence[Event]]
"""Events per file name."""


# -- scene metrics ----------------------------------------------------------------------------


def top1_accuracy(targets: np.ndarray, scores: np.ndarray) -> float:
    """Fraction of rows whose highest score is the (first) target class."""
    _check_scene_inputs(targets, scores)
    return float(np.mean(np.argmax(scores, axis=1) == np.argmax(targets, axis=1)))


def chroma_accuracy(targets: np.ndarray, scores: np.ndarray) -> float:
    """Top-1 accuracy up to octave errors: class indices compared modulo 12."""
    _check_scene_inputs(targets, scores)
    predicted, target = np.argmax(scores, axis=1), np.argmax(targets, axis=1)
    return float(np.mean(predicted % 12 == target % 12))


def mean_average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro-averaged average precision: rare classes count as much as common ones."""
    from sklearn.metrics import average_precision_score

    _check_scene_inputs(targets, scores)
    return float(average_precision_score(targets, scores, average="macro"))


def aucroc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC AUC; NaN when a class has only positives or only negatives (as the reference)."""
    _check_scene_inputs(targets, scores)
    try:
        return float(np.mean(_roc_auc(targets, scores)))
    except ValueError:
        return math.nan


def d_prime(targets: np.ndarray, scores: np.ndarray, finite: bool = True) -> float:
    """Mean over classes of ``sqrt(2) * Phi^-1(AUC)``; see the module docstring for ``finite``."""
    from scipy import stats

    _check_scene_inputs(targets, scores)
    try:
        auc = _roc_auc(targets, scores)
    except ValueError:
        return math.nan
    if finite:
        pairs = targets.sum(axis=0) * (len(targets) - targets.sum(axis=0))
        # Classes without pairs have a NaN AUC already; leave them so.
        margin = np.divide(0.5, pairs, out=np.zeros_like(auc), where=pairs > 0)
        auc = np.clip(auc, margin, 1.0 - margin)
    return float(np.mean(stats.norm().ppf(auc) * np.sqrt(2.0)))


def _roc_auc(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class ROC AUC; NaN (not a warning per validation) for a class lacking positives
    or negatives, which scikit-learn versions either warn about or raise ValueError for."""
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import roc_auc_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return np.asarray(roc_auc_score(targets, scores, average=None), dtype=np.float64)


def _check_scene_inputs(targets: np.ndarray, scores: np.ndarray) -> None:
    if targets.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"targets {targets.shape} and scores {scores.shape} must both be [N, C]")


# -- event metrics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EventScores:
    f_measure: float
    precision: float
    recall: float


def event_based_scores(
    reference: EventLists,
    estimated: EventLists,
    labels: Sequence[str],
    t_collar: float,
    evaluate_offset: bool = False,
    percentage_of_length: float = 0.5,
) -> EventScores:
    """sed_eval's event-based overall F-measure, precision and recall.

    Files are those of ``estimated`` (as the reference: every file the model saw); a file
    without reference events counts its predictions as false positives.
    """
    sed_eval = _import_sed_eval()
    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(labels),
        t_collar=t_collar,
        evaluate_onset=True,
        evaluate_offset=evaluate_offset,
        percentage_of_length=percentage_of_length,
    )
    _evaluate_files(metrics, reference, estimated)
    overall = metrics.results_overall_metrics()["f_measure"]
    return EventScores(
        f_measure=float(overall["f_measure"]),
        precision=float(overall["precision"]),
        recall=float(overall["recall"]),
    )


def segment_error_rate(
    reference: EventLists,
    estimated: EventLists,
    labels: Sequence[str],
    time_resolution: float = 1.0,
) -> float:
    """sed_eval's segment-based overall error rate (substitutions + deletions + insertions)."""
    sed_eval = _import_sed_eval()
    metrics = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=list(labels), time_resolution=time_resolution
    )
    _evaluate_files(metrics, reference, estimated)
    return float(metrics.results_overall_metrics()["error_rate"]["error_rate"])


def _evaluate_files(metrics: Any, reference: EventLists, estimated: EventLists) -> None:
    for filename, events in estimated.items():
        metrics.evaluate(
            reference_event_list=_sed_eval_events(filename, reference.get(filename, ())),
            estimated_event_list=_sed_eval_events(filename, events),
        )


def _sed_eval_events(filename: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    return [
        {"event_label": str(label), "event_onset": onset, "event_offset": offset, "file": filename}
        for onset, offset, label in events
    ]


def _import_sed_eval() -> Any:
    """sed_eval is imported on first use (it pulls in dcase_util); its import-time
    ``pkg_resources`` deprecation warning is not ours to show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sed_eval

    return sed_eval


# -- the metric table -------------------------------------------------------------------------


@dataclass(frozen=True)
class HearMetric:
    """A HEAR metric by its task_metadata.json name.

    kind: ``"scene"`` metrics score ``(targets, scores)`` arrays, ``"event"`` metrics score
        ``(reference, estimated, labels)`` event lists.
    compute: returns ``{name: value}``, plus ``{name}_precision`` / ``_recall`` for the
        event F-measures; ``result[name]`` is the value that selection and reports use.
    """

    name: str
    kind: Literal["scene", "event"]
    higher_is_better: bool
    compute: Callable[..., dict[str, float]]


def _scene(name: str, function: Callable[[np.ndarray, np.ndarray], float]) -> HearMetric:
    def compute(targets: np.ndarray, scores: np.ndarray, **options: Any) -> dict[str, float]:
        return {name: function(targets, scores, **options)}

    return HearMetric(name, "scene", True, compute)


def _event_f_measure(name: str, **params: Any) -> HearMetric:
    def compute(reference: EventLists, estimated: EventLists, labels: Sequence[str]) -> dict:
        scores = event_based_scores(reference, estimated, labels, **params)
        return {
            name: scores.f_measure,
            f"{name}_precision": scores.precision,
            f"{name}_recall": scores.recall,
        }

    return HearMetric(name, "event", True, compute)


def _segment_error_rate(name: str, time_resolution: float) -> HearMetric:
    def compute(reference: EventLists, estimated: EventLists, labels: Sequence[str]) -> dict:
        return {name: segment_error_rate(reference, estimated, labels, time_resolution)}

    return HearMetric(name, "event", False, compute)


HEAR_METRICS: dict[str, HearMetric] = {
    metric.name: metric
    for metric in (
        _scene("top1_acc", top1_accuracy),
        _scene("pitch_acc", top1_accuracy),
        _scene("chroma_acc", chroma_accuracy),
        _scene("mAP", mean_average_precision),
        _scene("d_prime", d_prime),
        _scene("aucroc", aucroc),
        _event_f_measure("event_onset_200ms_fms", t_collar=0.2),
        _event_f_measure("event_onset_50ms_fms", t_collar=0.05),
        _event_f_measure(
            "event_onset_offset_50ms_20perc_fms",
            t_collar=0.05,
            evaluate_offset=True,
            percentage_of_length=0.2,
        ),
        _segment_error_rate("segment_1s_er", time_resolution=1.0),
    )
}
"""Every metric a HEAR 2021 task_metadata.json may name, by that name."""


def with_options(metric: HearMetric, **options: Any) -> HearMetric:
    """``metric`` with fixed keyword options (e.g. ``d_prime`` with ``finite=False``)."""
    return HearMetric(
        metric.name, metric.kind, metric.higher_is_better, partial(metric.compute, **options)
    )


# -- HEAR score -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HearScore:
    """An upstream's HEAR score: the mean primary metric over the tasks it ran, in percent
    (the scale of published HEAR averages).

    tasks: the tasks averaged; missing: expected tasks without a finite score. The score
        compares with a published 19-task average only when ``missing`` is empty.
    """

    value: float | None
    tasks: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def hear_score(
    primary_scores: Mapping[str, float | None], expected_tasks: Collection[str] = ()
) -> HearScore:
    """Mean of each task's primary metric (all HEAR 2021 primary metrics are in [0, 1],
    higher is better), times 100. Tasks with no finite score are left out and listed."""
    finite = {
        task: float(score)
        for task, score in primary_scores.items()
        if score is not None and math.isfinite(score)
    }
    missing = sorted((set(expected_tasks) | set(primary_scores)) - set(finite))
    value = 100.0 * float(np.mean(list(finite.values()))) if finite else None
    return HearScore(value=value, tasks=tuple(sorted(finite)), missing=tuple(missing))
