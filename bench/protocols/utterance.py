"""Utterance classification (SUPERB KS, IC, SID, ER; the demo keyword and scene tasks).

The head is SUPERB's Linear -> mean pool -> Linear on the weighted sum of layers, trained
from the pooled cache (exact, see ``bench.heads.UtteranceHead``). Tasks with several
label slots (intent classification: action, object, location) get one output group per
slot, the sum of the slots' cross-entropies as loss, and count an utterance right only
when every slot is right.

Protocol: for every learning rate of the grid, every seed and every fold, train with
early stopping on dev; select the learning rate with the best mean dev score; report
dev and test of the selected probes as mean and spread over seeds (each seed's score
averaged over folds first).

Batches are drawn with replacement: uniformly, or class-balanced when the task asks for
it (s3prl's weighted sampler for Speech Commands); items that share a ``group`` (crops
of one utterance) share one draw between them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import Tensor

from bench.data import DataError, Fold, Item, TaskData
from bench.heads import UtteranceHead
from bench.probe import TrainResult, seeded, train_probe
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    UpstreamInfo,
)
from bench.protocols.sweep import run_sweep, sweep_outcome
from bench.task import Task

EVAL_BATCH = 4096


class LabelEncoder:
    """Maps item labels to class indices, one column per slot of the task's vocabulary."""

    def __init__(self, vocabulary: dict[str, list[str]]):
        if not vocabulary:
            raise DataError("the task defines no label vocabulary")
        self.slots = list(vocabulary)
        self.vocabulary = vocabulary
        self.index = {
            slot: {label: i for i, label in enumerate(labels)}
            for slot, labels in vocabulary.items()
        }

    @property
    def sizes(self) -> list[int]:
        return [len(self.vocabulary[slot]) for slot in self.slots]

    def encode(self, items: Sequence[Item]) -> Tensor:
        rows = []
        for item in items:
            labels = (item.label,) if len(self.slots) == 1 else tuple(item.label)
            if len(labels) != len(self.slots):
                raise DataError(
                    f"{item.path}: label {item.label!r} does not fill the slots {self.slots}"
                )
            try:
                rows.append(
                    [
                        self.index[slot][label]
                        for slot, label in zip(self.slots, labels, strict=True)
                    ]
                )
            except KeyError as error:
                raise DataError(
                    f"{item.path}: unknown label {error.args[0]!r} (item '{item.key}')"
                ) from None
        return torch.tensor(rows, dtype=torch.long)


@dataclass
class SplitArrays:
    features: Tensor  # [N, L, D]
    labels: Tensor  # [N, S]
    sample_weights: Tensor | None = None  # training draw probabilities


def slot_logits(logits: Tensor, sizes: list[int]) -> list[Tensor]:
    return list(torch.split(logits, sizes, dim=-1))


def classification_loss(logits: Tensor, labels: Tensor, sizes: list[int]) -> Tensor:
    return sum(
        F.cross_entropy(part, labels[:, s]) for s, part in enumerate(slot_logits(logits, sizes))
    )


def predict(head: UtteranceHead, features: Tensor, sizes: list[int]) -> Tensor:
    """``[N, S]`` predicted class per slot."""
    predictions = []
    for start in range(0, len(features), EVAL_BATCH):
        logits = head(features[start : start + EVAL_BATCH])
        predictions.append(torch.stack([p.argmax(-1) for p in slot_logits(logits, sizes)], dim=-1))
    return torch.cat(predictions)


def classification_metrics(predicted: Tensor, labels: Tensor) -> dict[str, float]:
    """In percent: accuracy (every slot right); balanced_accuracy (mean per-class recall), one slot."""
    metrics = {"accuracy": 100.0 * float((predicted == labels).all(dim=-1).float().mean())}
    if labels.shape[1] == 1:
        recall = balanced_accuracy_score(labels[:, 0].numpy(), predicted[:, 0].numpy())
        metrics["balanced_accuracy"] = 100.0 * float(recall)
    return metrics


def draw_weights(items: Sequence[Item], labels: Tensor, balanced: bool) -> Tensor:
    """Per-item draw probability: groups share one draw; balanced gives each class equal mass."""
    group_sizes = Counter(item.group or item.key for item in items)
    weights = np.array([1.0 / group_sizes[item.group or item.key] for item in items])
    if balanced:
        classes = labels[:, 0].numpy()
        class_mass = np.bincount(classes, weights=weights)
        weights = weights / class_mass[classes]
    return torch.as_tensor(weights / weights.sum(), dtype=torch.float64)


class UtteranceClassification(ProbeProtocol):
    feature_kind = "pooled"

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        encoder = LabelEncoder(data.vocabulary)
        selection_metric = task.selection_metric or task.metadata.main_metric
        balanced = task.balanced_sampling
        folds = [
            self._fold_arrays(data, fold, features, encoder, settings, balanced)
            for fold in data.folds
        ]

        def train_one(lr: float, seed: int, fold: int) -> tuple[UtteranceHead, TrainResult]:
            return self._train(folds[fold], encoder, upstream, settings, lr, seed, selection_metric)

        def score(head: UtteranceHead, fold: int) -> dict[str, dict[str, float]]:
            return {
                split: classification_metrics(
                    predict(head, folds[fold][split].features, encoder.sizes).cpu(),
                    folds[fold][split].labels.cpu(),
                )
                for split in ("dev", "test")
            }

        trials = run_sweep(train_one, settings, len(folds), desc=f"probe {task.metadata.name}")
        return sweep_outcome(trials, score, selection_metric, [fold.name for fold in data.folds])

    def _fold_arrays(
        self,
        data: TaskData,
        fold: Fold,
        features: FeatureStore,
        encoder: LabelEncoder,
        settings: ProbeSettings,
        balanced: bool,
    ) -> dict[str, SplitArrays]:
        arrays = {}
        for split, names in (("train", fold.train), ("dev", fold.dev), ("test", fold.test)):
            items = data.items(names)
            labels = encoder.encode(items)
            pooled = torch.from_numpy(
                np.ascontiguousarray(features.pooled(items, settings.layer_norm))
            )
            arrays[split] = SplitArrays(
                pooled.float().to(settings.device), labels.to(settings.device)
            )
        train_items = data.items(fold.train)
        arrays["train"].sample_weights = draw_weights(
            train_items, arrays["train"].labels.cpu(), balanced
        )
        return arrays

    def _train(
        self,
        arrays: dict[str, SplitArrays],
        encoder: LabelEncoder,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
        lr: float,
        seed: int,
        selection_metric: str,
    ) -> tuple[UtteranceHead, TrainResult]:
        train, dev = arrays["train"], arrays["dev"]
        with seeded(seed):
            head = UtteranceHead(
                upstream.num_layers,
                train.features.shape[-1],
                sum(encoder.sizes),
                layers=settings.layers,
                layer_norm=settings.layer_norm,
            )
        head = head.to(settings.device)
        assert train.sample_weights is not None
        weights = train.sample_weights

        def batch_loss(model: UtteranceHead, generator: torch.Generator) -> Tensor:
            index = torch.multinomial(
                weights, settings.batch_size, replacement=True, generator=generator
            )
            index = index.to(train.features.device)
            return classification_loss(
                model(train.features[index]), train.labels[index], encoder.sizes
            )

        def evaluate(model: UtteranceHead) -> float:
            return classification_metrics(
                predict(model, dev.features, encoder.sizes).cpu(), dev.labels.cpu()
            )[selection_metric]

        return head, train_probe(head, batch_loss, evaluate, settings, lr, seed)


PROTOCOLS.register("utterance_classification", UtteranceClassification)
