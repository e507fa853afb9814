"""HEAR metrics: parity with hear-eval-kit's heareval.score (randomised), with scikit-learn
and sed_eval, and hand-computed cases; event post-processing; the HEAR score."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bench.hear import metrics
from bench.hear.events import (
    Postprocessing,
    frame_targets,
    postprocessing_grid,
    predictions_to_events,
)
from bench.protocols.base import UpstreamInfo


@pytest.fixture(scope="module")
def reference() -> Any:
    """hear-eval-kit's scorer: ``pip install --no-deps heareval==2021.1.3`` (test-only)."""
    return pytest.importorskip("heareval.score", reason="heareval 2021.1.3 is the reference")


TOLERANCE = 1e-9


def random_multiclass(
    seed: int, rows: int = 200, classes: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = np.eye(classes)[rng.integers(classes, size=rows)]
    targets[:classes] = np.eye(classes)  # every class present
    logits = rng.normal(size=(rows, classes)) + 1.5 * targets
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return targets, scores


def random_multilabel(
    seed: int, rows: int = 200, classes: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((rows, classes)) < 0.3).astype(float)
    targets[0], targets[1] = 1.0, 0.0  # every class has positives and negatives
    scores = 1 / (1 + np.exp(-(rng.normal(size=(rows, classes)) + 2.0 * targets - 1.0)))
    return targets, scores


def reference_score(reference: Any, name: str, *args: object) -> float:
    labels = {str(i): i for i in range(10)}
    value = reference.available_scores[name](label_to_idx=labels)(*args)
    return value[0][1] if isinstance(value, tuple) else float(value)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "name", ["top1_acc", "pitch_acc", "chroma_acc", "mAP", "d_prime", "aucroc"]
)
def test_scene_metrics_match_reference(reference: Any, name: str, seed: int) -> None:
    for targets, scores in (random_multiclass(seed, classes=14), random_multilabel(seed)):
        ours = metrics.HEAR_METRICS[name].compute(targets, scores)[name]
        assert ours == pytest.approx(
            reference_score(reference, name, scores, targets), abs=TOLERANCE
        )


def test_scene_metrics_match_sklearn_definitions() -> None:
    from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

    targets, scores = random_multiclass(11)
    assert metrics.top1_accuracy(targets, scores) == pytest.approx(
        accuracy_score(targets.argmax(1), scores.argmax(1))
    )
    assert metrics.mean_average_precision(targets, scores) == pytest.approx(
        np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in range(6)])
    )
    assert metrics.aucroc(targets, scores) == pytest.approx(
        np.mean([roc_auc_score(targets[:, c], scores[:, c]) for c in range(6)])
    )


def test_scene_metrics_by_hand() -> None:
    targets = np.eye(3)[[0, 1, 2, 2]]
    scores = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.1, 0.5, 0.4]])
    assert metrics.top1_accuracy(targets, scores) == 0.5
    # AP per class: class 0's positive (0.8) ranks first: 1; class 1's (0.3) ranks second,
    # behind 0.5: 1/2; class 2's two positives (0.7, 0.4) rank first and second: 1. Mean 5/6.
    assert metrics.mean_average_precision(targets, scores) == pytest.approx(5 / 6)
    # AUCs: class 0: 1.0; class 1: 0.3 beats 0.2, 0.1 of 3 negatives: 2/3; class 2: 1.0.
    assert metrics.aucroc(targets, scores) == pytest.approx((1 + 2 / 3 + 1) / 3)
    # Chroma: pitch classes 0..23, class 13 predicted for 1 is an octave error only.
    pitch = np.eye(24)[[1, 5]]
    guesses = np.eye(24)[[13, 6]]
    assert metrics.chroma_accuracy(pitch, guesses) == 0.5
    assert metrics.top1_accuracy(pitch, guesses) == 0.0


def test_d_prime_by_hand_and_perfect_separation(reference: Any) -> None:
    targets = np.eye(2)[[0, 0, 1, 1]]
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]])
    # Both classes: AUC 3/4 -> d' = sqrt(2) * Phi^-1(0.75) = sqrt(2) * 0.6744897501960817
    assert metrics.d_prime(targets, scores) == pytest.approx(math.sqrt(2) * 0.6744897501960817)
    perfect = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    assert metrics.d_prime(targets, perfect, finite=False) == math.inf
    assert reference_score(reference, "d_prime", perfect, targets) == math.inf
    # Clipped to half a misordered pair of the 2 x 2 pairs: AUC 1 - 1/8.
    assert metrics.d_prime(targets, perfect) == pytest.approx(math.sqrt(2) * 1.1503493803760079)


@pytest.mark.filterwarnings("ignore:Only one class is present")  # the reference's sklearn call
def test_undefined_scene_metrics_are_nan_as_in_the_reference(reference: Any) -> None:
    targets = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # class 1 never positive
    scores = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    assert math.isnan(metrics.d_prime(targets, scores))
    assert math.isnan(metrics.aucroc(targets, scores))
    assert math.isnan(reference_score(reference, "d_prime", scores, targets))


def random_events(seed: int, files: int = 6, labels: tuple[str, ...] = ("a", "b", "c")) -> dict:
    """Reference-format events (ms) per file, on a 0.01 s grid so collars bite exactly."""
    rng = np.random.default_rng(seed)
    result = {}
    for f in range(files):
        events = []
        for _ in range(int(rng.integers(0, 6))):
            start = float(rng.integers(0, 900)) * 10.0
            events.append(
                {
                    "label": str(rng.choice(labels)),
                    "start": start,
                    "end": start + float(rng.integers(5, 300)) * 10.0,
                }
            )
        result[f"file{f}.wav"] = events
    return result


def perturbed(events: dict, seed: int) -> dict:
    """Estimated events: the references jittered, some dropped, some spurious."""
    rng = np.random.default_rng(seed)
    estimated = {}
    for name, file_events in events.items():
        kept = [
            {
                **e,
                "start": e["start"] + float(rng.normal(0, 120)),
                "end": e["end"] + float(rng.normal(0, 300)),
            }
            for e in file_events
            if rng.random() > 0.2
        ]
        if rng.random() < 0.5:
            kept.append({"label": "b", "start": 100.0, "end": 900.0})
        estimated[name] = kept
    return estimated


def as_seconds(events: dict) -> dict:
    return {
        name: [(e["start"] / 1000.0, e["end"] / 1000.0, e["label"]) for e in file_events]
        for name, file_events in events.items()
    }


EVENT_METRICS = [
    "event_onset_200ms_fms",
    "event_onset_50ms_fms",
    "event_onset_offset_50ms_20perc_fms",
    "segment_1s_er",
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", EVENT_METRICS)
def test_event_metrics_match_reference(reference: Any, name: str, seed: int) -> None:
    labels = ["a", "b", "c"]
    truth, estimate = random_events(seed), perturbed(random_events(seed), seed + 100)
    expected = reference.available_scores[name](
        label_to_idx={label: i for i, label in enumerate(labels)}
    )(estimate, truth)
    ours = metrics.HEAR_METRICS[name].compute(as_seconds(truth), as_seconds(estimate), labels)
    for subscore, value in expected:
        key = name if subscore in ("f_measure", "error_rate") else f"{name}_{subscore}"
        assert ours[key] == pytest.approx(value, abs=TOLERANCE, nan_ok=True)


def test_event_metrics_by_hand() -> None:
    labels = ["dog", "door"]
    truth = {"x.wav": [(1.0, 2.0, "dog"), (4.0, 5.0, "door")]}
    # One onset 150 ms late (inside the 200 ms collar, outside 50 ms), one wrong label.
    estimate = {"x.wav": [(1.15, 2.0, "dog"), (4.0, 5.0, "dog")]}
    f200 = metrics.event_based_scores(truth, estimate, labels, t_collar=0.2)
    assert (f200.precision, f200.recall, f200.f_measure) == pytest.approx((0.5, 0.5, 0.5))
    assert metrics.event_based_scores(truth, estimate, labels, t_collar=0.05).f_measure == 0.0
    # Nothing detected: precision 0/0 is undefined, so sed_eval's F-measure is NaN.
    assert math.isnan(metrics.event_based_scores(truth, {"x.wav": []}, labels, 0.2).f_measure)
    # Segments of 1 s over [0, 5): dog truth in segment 1, door in 4; estimate dog in 1 and 4.
    # Segment 4 has a substitution (door -> dog): S = 1, D = I = 0, N = 2 -> ER 0.5.
    assert metrics.segment_error_rate(truth, estimate, labels) == pytest.approx(0.5)


def test_hear_score() -> None:
    score = metrics.hear_score(
        {"hear.esc50": 0.8, "hear.fsd50k": 0.4, "hear.maestro_5h": None},
        ["hear.esc50", "hear.gunshot_triangulation"],
    )
    assert score.value == pytest.approx(60.0)
    assert score.tasks == ("hear.esc50", "hear.fsd50k")
    assert score.missing == ("hear.gunshot_triangulation", "hear.maestro_5h")
    assert not score.complete
    assert metrics.hear_score({}).value is None


# -- event post-processing --------------------------------------------------------------------


def test_frame_labels_follow_the_reference_interval_rule() -> None:
    stamps = UpstreamInfo("u", 1, 1, 4.0, first_frame_centre_s=0.125).frame_times_ms(6)
    assert stamps.tolist() == [125.0, 375.0, 625.0, 875.0, 1125.0, 1375.0]
    # [375, 875] ms: both ends inclusive, as the reference's interval tree with +0.0001 ms.
    targets = frame_targets([(0.375, 0.875, "b")], stamps, {"a": 0, "b": 1})
    assert targets[:, 1].tolist() == [0, 1, 1, 1, 0, 0]
    assert targets[:, 0].sum() == 0


def test_predictions_to_events_filters_thresholds_and_drops_short_events() -> None:
    stamps = np.arange(20) * 50.0  # 50 ms hop
    probabilities = np.zeros((20, 2), dtype=np.float32)
    probabilities[2:10, 0] = 0.9  # 8 frames: 100..450 ms
    probabilities[5, 0] = 0.1  # a one-frame dip, removed by the median filter
    probabilities[14:16, 1] = 0.9  # 2 frames = 50 ms: shorter than the minimum duration
    events = predictions_to_events(probabilities, stamps, ["a", "b"], Postprocessing(150, 125))
    assert events == [(0.1, 0.45, "a")]
    # Without filtering the dip splits the event; the 50 ms pieces and b fall below 125 ms.
    unfiltered = predictions_to_events(probabilities, stamps, ["a", "b"], Postprocessing(0, 125))
    assert unfiltered == [(0.3, 0.45, "a")]
    assert predictions_to_events(probabilities, stamps, ["a", "b"], Postprocessing(0, 0)) == [
        (0.1, 0.2, "a"),
        (0.3, 0.45, "a"),
        (0.7, 0.75, "b"),
    ]


def test_postprocessing_grid_from_metadata() -> None:
    assert postprocessing_grid(None) == (Postprocessing(250, 125), Postprocessing(250, 250))
    maestro = postprocessing_grid({"median_filter_ms": [150], "min_duration": [50]})
    assert maestro == (Postprocessing(150, 50),)
