"""SUPERB-style protocols on in-memory features: learn real signal, stay at chance on noise."""

from pathlib import Path

import numpy as np
import pytest
from _fakes import MemoryFeatures

from bench.data import DataError, Fold, Item, TaskData
from bench.protocols.base import ProbeSettings, UpstreamInfo
from bench.protocols.frame import FrameClassification, frame_labels
from bench.protocols.utterance import UtteranceClassification, draw_weights
from bench.task import Schedule, Task, TaskMetadata

LABELS = ["c0", "c1", "c2", "c3"]
SETTINGS = ProbeSettings(
    lr_grid=(1e-3, 1e-2),
    seeds=(0, 1),
    batch_size=32,
    max_steps=300,
    eval_every=50,
    patience=3,
    progress=False,
)


class ToyTask(Task):
    metadata = TaskMetadata(
        name="toy.task", description="", corpus="", data_layout="", main_metric="accuracy"
    )
    schedule = Schedule(lr_grid=(1e-3,))
    protocol = "utterance_classification"


def make_items(n: int, classes: int, split: str, rng) -> list[Item]:
    return [
        Item(key=f"{split}{i}", path=Path(f"{split}{i}.wav"), label=f"c{rng.integers(classes)}")
        for i in range(n)
    ]


def pooled_features(items, informative: bool, rng) -> MemoryFeatures:
    """3 layers x 6 dims; only layer 1 carries the class when informative."""
    pooled = {}
    for item in items:
        x = rng.standard_normal((3, 6)).astype(np.float32)
        if informative and item.label in LABELS:
            x[1, LABELS.index(item.label)] += 3.0
        pooled[item.key] = x
    return MemoryFeatures(pooled=pooled)


@pytest.mark.parametrize("informative", [True, False])
def test_utterance_protocol_learns_signal_and_not_noise(informative):
    rng = np.random.default_rng(0)
    splits = {
        name: make_items(n, 4, name, rng)
        for name, n in (("train", 300), ("dev", 100), ("test", 200))
    }
    data = TaskData(splits=splits, vocabulary={"label": ["c0", "c1", "c2", "c3"]})
    features = pooled_features(data.all_items(), informative, rng)
    outcome = UtteranceClassification().run(
        ToyTask(None), data, features, UpstreamInfo("toy", 3, 6, 50.0), SETTINGS
    )
    accuracy = outcome.metrics["test"]["accuracy"]
    assert len(accuracy.values) == 2 and outcome.selected["lr"] in SETTINGS.lr_grid
    assert len(outcome.trials) == 4
    if informative:
        assert accuracy.mean > 90
        assert (
            int(np.argmax(outcome.layer_weights)) == 1
        )  # the weighted sum found the informative layer
    else:
        assert accuracy.mean < 40  # chance is 25%


def test_folds_are_averaged_per_seed():
    rng = np.random.default_rng(1)
    splits = {f"s{k}": make_items(60, 2, f"s{k}", rng) for k in range(3)}
    folds = [
        Fold(f"f{k}", (f"s{k}",), (f"s{(k + 1) % 3}",), (f"s{(k + 2) % 3}",)) for k in range(3)
    ]
    data = TaskData(splits=splits, vocabulary={"label": ["c0", "c1"]}, folds=folds)
    features = pooled_features(data.all_items(), True, rng)
    settings = ProbeSettings(
        lr_grid=(1e-2,),
        seeds=(0,),
        batch_size=16,
        max_steps=100,
        eval_every=50,
        patience=2,
        progress=False,
    )
    outcome = UtteranceClassification().run(
        ToyTask(None), data, features, UpstreamInfo("toy", 3, 6, 50.0), settings
    )
    assert len(outcome.trials) == 3 and {t["fold"] for t in outcome.trials} == {"f0", "f1", "f2"}
    assert len(outcome.metrics["test"]["accuracy"].values) == 1


def test_multi_slot_accuracy_needs_every_slot_right():
    import torch

    from bench.protocols.utterance import classification_metrics

    labels = torch.tensor([[0, 1, 2], [1, 1, 1], [2, 0, 0]])
    predicted = torch.tensor([[0, 1, 2], [1, 0, 1], [2, 0, 0]])
    assert classification_metrics(predicted, labels)["accuracy"] == pytest.approx(200 / 3)


def test_unknown_labels_name_the_file():
    rng = np.random.default_rng(0)
    splits = {name: make_items(10, 2, name, rng) for name in ("train", "dev", "test")}
    splits["dev"][3] = Item(key="bad", path=Path("dev/bad.wav"), label="mystery")
    data = TaskData(splits=splits, vocabulary={"label": ["c0", "c1"]})
    with pytest.raises(DataError, match=r"dev/bad\.wav: unknown label 'mystery'"):
        UtteranceClassification().run(
            ToyTask(None),
            data,
            pooled_features(data.all_items(), True, rng),
            UpstreamInfo("toy", 3, 6, 50.0),
            SETTINGS,
        )


def test_balanced_draws_give_each_class_equal_mass_and_groups_one_draw():
    import torch

    items = [Item(key=f"k{i}", path=Path("x"), group="g0" if i < 3 else None) for i in range(6)]
    labels = torch.tensor([[0], [0], [0], [0], [1], [1]])
    weights = draw_weights(items, labels, balanced=False)
    assert weights[:3].sum().item() == pytest.approx(
        weights[3].item()
    )  # the 3 crops share one draw
    balanced = draw_weights(items, labels, balanced=True)
    assert balanced[:4].sum().item() == pytest.approx(0.5) and balanced[
        4:
    ].sum().item() == pytest.approx(0.5)


class ToyFrameTask(ToyTask):
    metadata = TaskMetadata(
        name="toy.frames", description="", corpus="", data_layout="", main_metric="frame_f1"
    )
    protocol = "frame_classification"


def test_frame_labels_follow_event_centres():
    labels = frame_labels(
        [(0.1, 0.3, "a"), (0.5, 0.52, "b")],
        num_frames=10,
        frame_rate=10.0,
        index={"a": 0, "b": 1},
        background=2,
    )
    # centres 0.05, 0.15, ... 0.95: frames 1 and 2 inside [0.1, 0.3); event b covers no centre
    assert labels.tolist() == [2, 0, 0, 2, 2, 2, 2, 2, 2, 2]


def test_frame_protocol_learns_events():
    rng = np.random.default_rng(0)
    splits, sequences = {}, {}
    for split, n in (("train", 40), ("dev", 15), ("test", 15)):
        splits[split] = []
        for i in range(n):
            onset = rng.uniform(0.1, 1.0)
            label = ["up", "down"][i % 2]
            item = Item(
                key=f"{split}{i}", path=Path(f"{split}{i}.wav"), label=[(onset, onset + 0.5, label)]
            )
            frames = rng.standard_normal((100, 2, 4)).astype(np.float16)
            centres = (np.arange(100) + 0.5) / 50.0
            inside = (centres >= onset) & (centres < onset + 0.5)
            frames[inside, 0, 0 if label == "up" else 1] += 4
            splits[split].append(item)
            sequences[item.key] = frames
    data = TaskData(splits=splits, vocabulary={"label": ["up", "down"]})
    settings = ProbeSettings(
        lr_grid=(1e-2,),
        seeds=(0,),
        batch_size=8,
        max_steps=200,
        eval_every=50,
        patience=3,
        progress=False,
    )
    outcome = FrameClassification().run(
        ToyFrameTask(None),
        data,
        MemoryFeatures(sequences=sequences),
        UpstreamInfo("toy", 2, 4, 50.0),
        settings,
    )
    assert outcome.metrics["test"]["frame_f1"].mean > 85
    assert outcome.layer_weights[0] > outcome.layer_weights[1]


def test_stat_over_seeds_and_non_finite_values():
    import math

    from bench.protocols.base import Stat

    stat = Stat.of([1.0, 2.0, 4.0])
    assert stat.mean == pytest.approx(7 / 3) and stat.std == pytest.approx(1.5275252)
    assert Stat.of([5.0]).std == 0.0
    infinite = Stat.of([1.0, math.inf])
    assert infinite.mean == math.inf and math.isnan(infinite.std)
    assert infinite.to_dict() == {"mean": None, "std": None, "values": [1.0, None]}
