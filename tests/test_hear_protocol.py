"""The HEAR protocols end to end on fake task directories and an in-memory feature store,
the reference quirks and their fixes, the predictor, and strict-JSON results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hear_fakes import (
    FakeFeatureStore,
    event_dir,
    kfold_dir,
    multiclass_dir,
    multilabel_dir,
    quick_settings,
)

from bench.data import DataError
from bench.featurizer import layer_combiner
from bench.hear import predictor
from bench.hear.grid import GridPoint, full_grid, sample_grid
from bench.hear.metrics import HEAR_METRICS
from bench.hear.options import HearOptions
from bench.protocols.base import PROTOCOLS, ProbeOutcome
from bench.protocols.hear import HearSceneProtocol, HearTimestampProtocol, validation_score
from bench.task import TASKS

SMALL = {"hidden_dim": 64}  # HEAR's structure with a narrower predictor, for speed


def run(
    task_name: str,
    root: Path,
    store: FakeFeatureStore,
    options: dict | None = None,
    **settings: Any,
) -> ProbeOutcome:
    task = TASKS.get(task_name)(root, {**SMALL, **(options or {})})
    protocol = PROTOCOLS.get(task.protocol)()
    return protocol.run(task, task.load(), store, store.upstream, quick_settings(**settings))


def as_json(outcome: ProbeOutcome) -> str:
    """The outcome as a runner would record it; fails on NaN/Infinity."""
    record = {
        "metrics": {
            split: {name: stat.to_dict() for name, stat in stats.items()}
            for split, stats in outcome.metrics.items()
        },
        "selected": outcome.selected,
        "trials": outcome.trials,
        "layer_weights": outcome.layer_weights,
    }
    return json.dumps(record, allow_nan=False)


@pytest.fixture(scope="module")
def esc50_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("esc50")
    kfold_dir(root, per_class=8)
    return root


def test_kfold_scene_task_learns_from_informative_features(esc50_root: Path) -> None:
    store = FakeFeatureStore(informative=True)
    outcome = run("hear.esc50", esc50_root, store)
    test, dev = outcome.metrics["test"], outcome.metrics["dev"]
    assert set(test) == set(dev) == {"top1_acc", "mAP", "d_prime", "aucroc"}
    assert len(test["top1_acc"].values) == 5  # one per fold
    assert test["top1_acc"].mean > 0.6 and dev["top1_acc"].mean > 0.6  # chance: 0.25
    assert test["mAP"].mean > 0.7
    # Grid search on fold00 (8 sampled points), the chosen point retrained on the 4 others.
    phases = [(t["phase"], t["fold"]) for t in outcome.trials]
    assert phases == [("grid", "fold00")] * 8 + [("fold", f"fold0{i}") for i in range(1, 5)]
    chosen = GridPoint(
        outcome.selected["hidden_layers"],
        outcome.selected["initialization"],
        outcome.selected["lr"],
    )
    assert chosen in sample_grid(full_grid())
    best_grid_score = max(t["dev_score"] for t in outcome.trials[:8])
    assert outcome.selected["validation_score"] == best_grid_score
    assert all(t["lr"] == chosen.lr for t in outcome.trials[8:])
    # The learned layer weights favour the layer that carries the classes.
    assert outcome.layer_weights is not None and sum(outcome.layer_weights) == pytest.approx(1.0)
    assert int(np.argmax(outcome.layer_weights)) == store.informative_layer
    assert store.calls == [("pooled", 32)] * 5  # once per fold split
    as_json(outcome)


def test_kfold_scene_task_is_at_chance_on_uninformative_features(esc50_root: Path) -> None:
    outcome = run("hear.esc50", esc50_root, FakeFeatureStore(informative=False))
    assert outcome.metrics["test"]["top1_acc"].mean < 0.45
    assert abs(outcome.metrics["test"]["aucroc"].mean - 0.5) < 0.12


def test_multiclass_train_valid_test_task(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=10)
    informative = run("hear", task_dir, FakeFeatureStore(informative=True))
    chance = run("hear", task_dir, FakeFeatureStore(informative=False))
    assert len(informative.metrics["test"]["top1_acc"].values) == 1
    assert informative.metrics["test"]["top1_acc"].mean > 0.7
    assert chance.metrics["test"]["top1_acc"].mean < 0.45


def test_multilabel_scene_task(tmp_path: Path) -> None:
    multilabel_dir(tmp_path, items=60)
    informative = run("hear.fsd50k", tmp_path, FakeFeatureStore(informative=True))
    chance = run("hear.fsd50k", tmp_path, FakeFeatureStore(informative=False))
    assert informative.metrics["test"]["mAP"].mean > 0.75
    assert chance.metrics["test"]["mAP"].mean < 0.55
    assert (
        informative.metrics["test"]["aucroc"].mean
        > 0.85
        > 0.65
        > chance.metrics["test"]["aucroc"].mean
    )


@pytest.fixture(scope="module")
def dcase_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dcase")
    event_dir(root, files=6)
    return root


def test_timestamp_task_detects_events(dcase_root: Path) -> None:
    store = FakeFeatureStore(informative=True)
    outcome = run("hear.dcase2016_task2", dcase_root, store, eval_every=3)
    test = outcome.metrics["test"]
    assert set(test) == {
        "event_onset_200ms_fms",
        "event_onset_200ms_fms_precision",
        "event_onset_200ms_fms_recall",
        "segment_1s_er",
    }
    assert test["event_onset_200ms_fms"].mean > 0.6
    assert test["segment_1s_er"].mean < 0.4
    assert outcome.selected["postprocessing"]["main"] in (
        {"median_filter_ms": 250.0, "min_duration": 125.0},
        {"median_filter_ms": 250.0, "min_duration": 250.0},
    )
    assert int(np.argmax(outcome.layer_weights)) == store.informative_layer
    assert store.calls == [("sequences", 6)] * 3
    as_json(outcome)


def test_timestamp_task_is_near_zero_on_uninformative_features(dcase_root: Path) -> None:
    outcome = run("hear.dcase2016_task2", dcase_root, FakeFeatureStore(informative=False))
    assert outcome.metrics["test"]["event_onset_200ms_fms"].mean < 0.3
    assert outcome.metrics["test"]["segment_1s_er"].mean > 0.7
    as_json(outcome)


@pytest.mark.parametrize(
    ("layers", "expect_learned"), [(1, True), (0, False), ("last", False), ("concat", True)]
)
def test_layer_selection(esc50_root: Path, layers: object, expect_learned: bool) -> None:
    """Layer 1 carries the classes, layers 0 and 2 are noise ("last" is layer 2)."""
    outcome = run("hear.esc50", esc50_root, FakeFeatureStore(informative=True), layers=layers)
    accuracy = outcome.metrics["test"]["top1_acc"].mean
    assert (accuracy > 0.6) if expect_learned else (accuracy < 0.45)
    assert outcome.layer_weights is None
    assert (
        outcome.selected["layers"]
        == {1: "layer 1", 0: "layer 0", "last": "layer 2", "concat": "concat"}[layers]
    )


def test_layer_norm_is_the_store_s_for_clips_and_the_probe_s_for_frames(
    tmp_path: Path, dcase_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[bool] = []
    original = predictor.layer_combiner

    def recording(num_layers: int, layers: Any = "weighted", layer_norm: bool = False) -> Any:
        built.append(layer_norm)
        return original(num_layers, layers, layer_norm)

    monkeypatch.setattr(predictor, "layer_combiner", recording)
    store = FakeFeatureStore(informative=True)
    run("hear", multiclass_dir(tmp_path, per_class=4), store, layer_norm=True)
    assert store.layer_norm_requests == [True] * 3 and not any(built)
    built.clear()
    outcome = run(
        "hear.dcase2016_task2", dcase_root, FakeFeatureStore(informative=True), layer_norm=True
    )
    assert built and all(built)
    assert outcome.metrics["test"]["event_onset_200ms_fms"].mean > 0.5


def test_bad_layer_index_is_refused(esc50_root: Path) -> None:
    with pytest.raises(ValueError, match="layers=7"):
        run("hear.esc50", esc50_root, FakeFeatureStore(informative=True), layers=7)


def test_several_seeds_retrain_every_fold(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=6)
    outcome = run("hear", task_dir, FakeFeatureStore(informative=True), seeds=(0, 1))
    assert len(outcome.metrics["test"]["top1_acc"].values) == 2
    assert [t["phase"] for t in outcome.trials] == ["grid"] * 8 + ["fold"]
    assert outcome.trials[-1]["seed"] == 1


def test_protocols_refuse_the_other_embedding_type(dcase_root: Path) -> None:
    task = TASKS.get("hear.dcase2016_task2")(dcase_root)
    store = FakeFeatureStore(informative=True)
    with pytest.raises(DataError, match="is a event task; this protocol evaluates scene tasks"):
        HearSceneProtocol().run(task, task.load(), store, store.upstream, quick_settings())
    assert (HearSceneProtocol.feature_kind, HearTimestampProtocol.feature_kind) == (
        "scene",
        "sequence",
    )


def test_maestro_style_task_selects_on_validation_loss(tmp_path: Path) -> None:
    task_dir = event_dir(
        tmp_path,
        name="maestro-v3.0.0-small",
        files=4,
        use_scoring_for_early_stopping=False,
        evaluation=["event_onset_50ms_fms", "event_onset_offset_50ms_20perc_fms"],
        evaluation_params={
            "event_postprocessing_grid": {"median_filter_ms": [150], "min_duration": [50]}
        },
    )
    outcome = run("hear", task_dir, FakeFeatureStore(informative=True))
    assert outcome.selected["selection_metric"] == "loss"
    grid_losses = [t["dev_score"] for t in outcome.trials[:8]]
    assert outcome.selected["validation_score"] == min(grid_losses)
    assert outcome.selected["postprocessing"]["main"] == {
        "median_filter_ms": 150.0,
        "min_duration": 50.0,
    }
    assert "event_onset_offset_50ms_20perc_fms" in outcome.metrics["test"]


# -- the reference's quirks -------------------------------------------------------------------


def test_d_prime_is_finite_by_default_and_infinite_like_the_reference(esc50_root: Path) -> None:
    separable = FakeFeatureStore(informative=True, signal=30.0)
    fixed = run("hear.esc50", esc50_root, separable)
    assert (
        math.isfinite(fixed.metrics["test"]["d_prime"].mean)
        and fixed.metrics["test"]["d_prime"].mean > 2.5
    )
    reference = run("hear.esc50", esc50_root, separable, options={"finite_d_prime": False})
    assert reference.metrics["test"]["aucroc"].mean == 1.0
    assert reference.metrics["test"]["d_prime"].mean == math.inf
    recorded = json.loads(as_json(reference))  # still strict JSON: non-finite -> null
    assert recorded["metrics"]["test"]["d_prime"]["mean"] is None


def test_undefined_event_f_measure_scores_zero_unless_replicating_the_reference() -> None:
    f_measure = HEAR_METRICS["event_onset_200ms_fms"]
    assert validation_score(math.nan, f_measure, HearOptions()) == 0.0
    assert math.isnan(validation_score(math.nan, f_measure, HearOptions.reference()))
    assert validation_score(0.4, f_measure, HearOptions()) == 0.4


def scripted_validation(scores: list[float]) -> Any:
    remaining = list(scores)

    def validate(logits: torch.Tensor) -> predictor.Validation:
        return predictor.Validation(remaining.pop(0), detail=len(scores) - len(remaining))

    return validate


def tiny_problem(rows: int = 40) -> tuple[predictor.ProbeArrays, Any]:
    rng = np.random.default_rng(0)
    arrays = predictor.ProbeArrays(
        features=rng.normal(size=(rows, 2, 4)).astype(np.float32),
        targets=np.eye(2, dtype=np.float32)[rng.integers(2, size=rows)],
        groups=np.repeat(np.arange(rows // 4), 4),
    )
    config = predictor.TrainingConfig(hidden_dim=8)

    def model() -> predictor.HearPredictor:
        point = GridPoint(1, "xavier_uniform", 1e-3)
        return predictor.HearPredictor(2, 4, 2, point, config, "weighted", multilabel=False)

    return arrays, model


def test_non_finite_validation_stops_training_only_when_replicating() -> None:
    arrays, model = tiny_problem()
    scores = [math.nan, 0.1, 0.3, 0.2, 0.2, 0.2, 0.2]
    base = {"max_epochs": 100, "eval_every": 1, "patience": 3, "batch_size": 16, "hidden_dim": 8}
    reference = predictor.train_predictor(
        model, arrays, arrays.features, scripted_validation(scores), 1e-3,
        predictor.TrainingConfig(**base, stop_on_non_finite=True), maximize=True, seed=0,
    )  # fmt: skip
    assert reference.epochs == 1 and math.isnan(reference.score)
    fixed = predictor.train_predictor(
        model, arrays, arrays.features, scripted_validation(scores), 1e-3,
        predictor.TrainingConfig(**base), maximize=True, seed=0,
    )  # fmt: skip
    # Best 0.3 at the third validation, then three without improvement: stop after the sixth.
    assert (fixed.score, fixed.detail, fixed.best_epoch, fixed.epochs) == (0.3, 3, 2, 6)


def test_best_checkpoint_is_restored() -> None:
    arrays, model = tiny_problem()
    seen: list[torch.Tensor] = []

    def validate(logits: torch.Tensor) -> predictor.Validation:
        seen.append(logits.clone())
        return predictor.Validation([0.5, 0.9, 0.1, 0.2][len(seen) - 1])

    config = predictor.TrainingConfig(
        max_epochs=4, eval_every=1, patience=5, batch_size=16, hidden_dim=8
    )
    trained = predictor.train_predictor(
        model, arrays, arrays.features, validate, 1e-2, config, maximize=True, seed=0
    )
    assert trained.best_epoch == 1 and trained.epochs == 4
    assert [epoch for epoch, _ in trained.curve] == [1, 2, 3, 4]
    restored = predictor.predict_logits(trained.model, arrays.features, 16, "cpu")
    # the model as it was at its best validation (unstacked now: equal to rounding)
    torch.testing.assert_close(restored, seen[1], rtol=1e-5, atol=1e-6)
    assert (restored - seen[3]).abs().max() > 1e-3


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_reshuffle_each_epoch_unless_replicating(
    monkeypatch: pytest.MonkeyPatch, shuffle: bool
) -> None:
    arrays, model = tiny_problem()
    batches: list[np.ndarray] = []
    original = predictor._EpochBatches.batch

    def recording(self: Any, probe: int, step: int) -> np.ndarray:
        batches.append(original(self, probe, step))
        return batches[-1]

    monkeypatch.setattr(predictor._EpochBatches, "batch", recording)
    config = predictor.TrainingConfig(
        max_epochs=3, eval_every=3, batch_size=16, hidden_dim=8, shuffle=shuffle
    )
    predictor.train_predictor(
        model, arrays, arrays.features, lambda m: predictor.Validation(0.5), 1e-3, config, True, 3
    )
    assert [len(batch) for batch in batches] == [16, 16, 8] * 3  # 40 rows
    orders = [np.concatenate(batches[epoch * 3 : epoch * 3 + 3]) for epoch in range(3)]
    assert len(orders) == 3 and all(sorted(order) == list(range(40)) for order in orders)
    if shuffle:
        assert not np.array_equal(orders[0], orders[1])
    else:
        assert np.array_equal(orders[0], orders[1]) and np.array_equal(orders[1], orders[2])
        # The reference's order: items shuffled once, each item's frames together.
        items = arrays.groups[orders[0]]
        assert all(np.all(np.diff(np.flatnonzero(items == item)) == 1) for item in range(10))


def test_reference_options_run_end_to_end(esc50_root: Path) -> None:
    outcome = run(
        "hear.esc50",
        esc50_root,
        FakeFeatureStore(informative=True),
        options={
            "shuffle_batches": False,
            "nan_score_stops_training": True,
            "finite_d_prime": False,
        },
    )
    assert outcome.selected["options"]["shuffle_batches"] is False
    assert outcome.metrics["test"]["top1_acc"].mean > 0.6
    as_json(outcome)


# -- the predictor ----------------------------------------------------------------------------


def test_predictor_architecture_matches_the_reference() -> None:
    config = predictor.TrainingConfig()
    model = predictor.HearPredictor(
        13, 768, 50, GridPoint(2, "xavier_normal", 1e-3), config, "weighted", multilabel=False
    )
    kinds = [type(module).__name__ for module in model.mlp]
    assert kinds == ["Linear", "BatchNorm1d", "SeededDropout", "ReLU"] * 2 + ["Linear"]
    assert isinstance(model.mlp[2], torch.nn.Dropout)
    assert (model.mlp[0].in_features, model.mlp[0].out_features, model.mlp[-1].out_features) == (
        768,
        1024,
        50,
    )
    assert model.mlp[2].p == 0.1
    assert torch.equal(model.combiner.logits.detach(), torch.zeros(13))
    # Xavier-normal std: gain * sqrt(2 / (fan_in + fan_out)); gain 1 first, sqrt(2) after ReLU.
    assert model.mlp[0].weight.std().item() == pytest.approx(math.sqrt(2 / (768 + 1024)), rel=0.05)
    assert model.mlp[4].weight.std().item() == pytest.approx(
        math.sqrt(2) * math.sqrt(2 / 2048), rel=0.05
    )
    concat = predictor.HearPredictor(
        13, 768, 50, GridPoint(1, "xavier_uniform", 1e-3), config, "concat", True
    )
    assert concat.mlp[0].in_features == 13 * 768 and concat.combiner.learned_weights() is None


def test_weighted_sum_and_layer_norm() -> None:
    combiner = layer_combiner(3, "weighted", layer_norm=True)
    layers = torch.randn(5, 3, 16) * 7 + 3
    expected = torch.nn.functional.layer_norm(layers, (16,)).mean(dim=1)  # zero weights: a mean
    assert torch.allclose(combiner(layers), expected, atol=1e-6)
    assert combiner.learned_weights() == pytest.approx([1 / 3] * 3)
