"""Each protocol gives the same result with its sweep trained as stacked models
(``probe.stack=true``, the default) as with every probe trained on its own
(``probe.stack=false``): metrics, trials, selection and layer weights. And the HEAR grid
trained stacked equals a plain per-predictor training loop written out here."""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from hear_fakes import FakeFeatureStore, kfold_dir, quick_settings
from test_parallel import frame_sweep_data
from test_protocols import ToyFrameTask, ToyTask, make_items, pooled_features

from bench import stacking
from bench.data import TaskData
from bench.hear import predictor
from bench.hear.grid import full_grid, sample_grid
from bench.parallel import single_threaded_torch
from bench.probe import make_optimizer, seeded
from bench.protocols.base import PROTOCOLS, ProbeOutcome, ProbeSettings, UpstreamInfo
from bench.protocols.frame import FrameClassification
from bench.protocols.utterance import UtteranceClassification
from bench.task import TASKS

SETTINGS = ProbeSettings(
    lr_grid=(1e-4, 1e-3, 1e-2),
    seeds=(0, 1),
    batch_size=16,
    max_steps=300,
    eval_every=25,
    patience=3,
    progress=False,
)


def both_ways(run, settings: ProbeSettings = SETTINGS) -> tuple[ProbeOutcome, ProbeOutcome]:
    return run(settings), run(dataclasses.replace(settings, stack=False))


def assert_same_outcome(stacked: ProbeOutcome, apart: ProbeOutcome, steps: str) -> None:
    assert stacked.selected == apart.selected
    for a, b in zip(stacked.trials, apart.trials, strict=True):
        assert {k: a[k] for k in ("lr", "seed", "fold", steps)} == {
            k: b[k] for k in ("lr", "seed", "fold", steps)
        }
        assert [step for step, _ in a["curve"]] == [step for step, _ in b["curve"]]
        np.testing.assert_allclose(
            [v for _, v in a["curve"]], [v for _, v in b["curve"]], rtol=0, atol=1e-6
        )
    for split, metrics in apart.metrics.items():
        for name, stat in metrics.items():
            np.testing.assert_allclose(stacked.metrics[split][name].values, stat.values, atol=1e-6)
    np.testing.assert_allclose(stacked.layer_weights, apart.layer_weights, rtol=1e-4, atol=1e-6)


def test_utterance_sweep_stacked_equals_probes_trained_alone() -> None:
    rng = np.random.default_rng(0)
    sizes = (("train", 200), ("dev", 60), ("test", 100))
    splits = {name: make_items(n, 4, name, rng) for name, n in sizes}
    data = TaskData(splits=splits, vocabulary={"label": ["c0", "c1", "c2", "c3"]})
    features = pooled_features(data.all_items(), True, rng)
    upstream = UpstreamInfo("toy", 3, 6, 50.0)
    stacked, apart = both_ways(
        lambda settings: UtteranceClassification().run(
            ToyTask(None), data, features, upstream, settings
        )
    )
    assert_same_outcome(stacked, apart, "steps")
    assert len(stacked.trials) == 6
    assert any(t["steps"] < SETTINGS.max_steps for t in stacked.trials)  # early stopping
    assert stacked.metrics["test"]["accuracy"].mean > 80


def test_frame_sweep_stacked_equals_probes_trained_alone() -> None:
    data, features = frame_sweep_data()
    upstream = UpstreamInfo("toy", 2, 4, 50.0)
    # Not lr 1e-2 here: there, after ~150 steps, Adam has turned rounding-level differences
    # of near-zero gradients into steps of about lr, and a few borderline frames flip.
    stacked, apart = both_ways(
        lambda settings: FrameClassification().run(
            ToyFrameTask(None), data, features, upstream, settings
        ),
        dataclasses.replace(SETTINGS, lr_grid=(1e-4, 1e-3, 3e-3), max_steps=200),
    )
    assert_same_outcome(stacked, apart, "steps")
    assert any(max(v for _, v in t["curve"]) > t["curve"][0][1] + 5 for t in stacked.trials)


@pytest.fixture(scope="module")
def esc50_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("esc50")
    kfold_dir(root, per_class=6)
    return root


def test_hear_grid_trains_stacked_per_architecture_and_equals_training_apart(
    esc50_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[tuple[str, int, set[int]]] = []
    group_heads = stacking.group_heads

    def recording(heads, stack=True):
        group = group_heads(heads, stack)
        layers = {sum(isinstance(m, torch.nn.BatchNorm1d) for m in h.mlp) for h in heads}
        groups.append((type(group).__name__, len(heads), layers))
        return group

    monkeypatch.setattr(stacking, "group_heads", recording)

    def run(stack: bool) -> ProbeOutcome:
        task = TASKS.get("hear.esc50")(esc50_root, {"hidden_dim": 32})
        protocol = PROTOCOLS.get(task.protocol)()
        store = FakeFeatureStore(informative=True)
        settings = quick_settings(stack=stack, max_steps=12, patience=2)
        return protocol.run(task, task.load(), store, store.upstream, settings)

    stacked = run(stack=True)
    grid_groups, groups[:] = list(groups), []
    apart = run(stack=False)
    # The 8 grid points: each architecture (1 or 2 hidden layers) in groups of its own, two
    # of them on a CPU (bench.stacking.CPU_GROUPS): stacks, or a lone probe in lock-step.
    grid = sample_grid(full_grid())
    sizes = {layers: sum(p.hidden_layers == layers for p in grid) for layers in (1, 2)}
    grid_phase, heads_seen = [], 0
    while heads_seen < len(grid):
        grid_phase.append(grid_groups[len(grid_phase)])
        heads_seen += grid_phase[-1][1]
    assert heads_seen == len(grid) and all(len(layers) == 1 for _, _, layers in grid_phase)
    for layers, count in sizes.items():
        mine = [(kind, n) for kind, n, kinds in grid_phase if kinds == {layers}]
        assert sum(n for _, n in mine) == count and len(mine) == min(2, count)
        assert all(kind == ("StackedHearPredictor" if n > 1 else "Lockstep") for kind, n in mine)
    assert {kind for kind, _, _ in groups} == {"Lockstep"}
    assert stacked.selected == apart.selected
    for a, b in zip(stacked.trials, apart.trials, strict=True):
        keys = ("phase", "fold", "hidden_layers", "initialization", "lr")
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
        # Not the stopping epochs: on 24 dev clips, the rounding of the batched kernels can
        # move one clip across the boundary at an evaluation, and with it when a probe stops.
        assert a["dev_score"] == pytest.approx(b["dev_score"], abs=1 / 24 + 1e-9)
    for split, metrics in apart.metrics.items():
        for name, stat in metrics.items():
            # d' = sqrt(2) * probit(AUC) magnifies small AUC differences near 1
            tolerance = {"rtol": 0.06} if name == "d_prime" else {"atol": 0.02}
            np.testing.assert_allclose(
                stacked.metrics[split][name].values, stat.values, **tolerance
            )
    np.testing.assert_allclose(stacked.layer_weights, apart.layer_weights, atol=1e-3)


# -- the HEAR grid against a plain loop, one predictor at a time -------------------------------


def train_alone(job: predictor.PredictorJob, train, valid, validate, config, maximize):
    """hear-eval-kit's loop as bench ran it before stacking: an epoch over a fresh
    permutation, Adam, validation every ``eval_every`` epochs, stop after ``patience``
    validations without strict improvement, the best state restored."""
    with seeded(job.seed):
        model = job.make_model()
    model.use_generator(torch.Generator().manual_seed(job.seed))
    optimizer = make_optimizer("adam", model.parameters(), job.lr, weight_decay=0.0)
    rng = np.random.default_rng(job.seed)
    best, best_epoch, best_state, stale = -math.inf if maximize else math.inf, -1, None, 0
    for epoch in range(config.max_epochs):
        model.train()
        for batch in predictor.batches(rng.permutation(len(train)), config.batch_size):
            x = torch.from_numpy(train.features[batch])
            loss = model.loss(model(x), torch.from_numpy(train.targets[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if (epoch + 1) % config.eval_every:
            continue
        score = validate(predictor.predict_logits(model, valid, config.batch_size, "cpu")).score
        if (score > best) if maximize else (score < best):
            best, best_epoch, stale = score, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    return model, best, best_epoch, epoch + 1


def test_hear_grid_stacked_equals_a_plain_loop_per_predictor() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(3, size=240)
    features = rng.normal(size=(240, 3, 12)).astype(np.float16)
    # layer 2 carries the class clearly: validation accuracy reaches a plateau the rounding
    # noise of training (below) cannot move, so every probe stops on the same epoch
    features[:, 2, :3] += 5 * np.eye(3, dtype=np.float16)[labels]
    targets = np.eye(3, dtype=np.float32)[labels]
    train = predictor.ProbeArrays(features[:180], targets[:180])
    valid, valid_labels = features[180:], labels[180:]
    config = predictor.TrainingConfig(
        max_epochs=30, eval_every=3, patience=3, batch_size=64, hidden_dim=32
    )

    def accuracy(logits: torch.Tensor) -> predictor.Validation:
        return predictor.Validation(float((logits.argmax(-1).numpy() == valid_labels).mean()))

    def make(point) -> predictor.HearPredictor:
        return predictor.HearPredictor(3, 12, 3, point, config, "weighted", multilabel=False)

    grid = sample_grid(full_grid())
    jobs = [predictor.PredictorJob(partial(make, p), p.lr, 10 + i) for i, p in enumerate(grid)]
    with single_threaded_torch():
        stacked = predictor.train_predictors(jobs, train, valid, accuracy, config, True)
        for job, trained in zip(jobs, stacked, strict=True):
            model, score, best_epoch, epochs = train_alone(
                job, train, valid, accuracy, config, True
            )
            assert (trained.best_epoch, trained.epochs) == (best_epoch, epochs)
            assert trained.score == pytest.approx(score, abs=1 / 60)
            logits = [predictor.predict_logits(m, valid, 64, "cpu") for m in (trained.model, model)]
            # to more than rounding: the bias before BatchNorm has a gradient of rounding
            # noise only, which Adam turns into steps of about lr in either direction
            torch.testing.assert_close(*logits, rtol=0, atol=2e-2)
            assert torch.equal(logits[0].argmax(-1), logits[1].argmax(-1))
            torch.testing.assert_close(
                torch.tensor(trained.model.combiner.learned_weights()),
                torch.tensor(model.combiner.learned_weights()),
                rtol=1e-4,
                atol=1e-5,
            )
    assert any(t.epochs < config.max_epochs for t in stacked)  # early stopping happened
