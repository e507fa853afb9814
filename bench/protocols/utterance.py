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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import Tensor, nn

from bench.data import DataError, Fold, Item, TaskData
from bench.heads import UtteranceHead
from bench.probe import seeded
from bench.protocols.base import (
    PROTOCOLS,
    BindsUpstream,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    UpstreamInfo,
)
from bench.protocols.sweep import run_stacked_sweep, sweep_outcome
from bench.stacking import ActiveProbes, probe_means
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
    """Each probe's cross-entropy, summed over slots: logits ``[P, B, C]``, labels
    ``[P, B, S]`` -> ``[P]``."""

    losses = [
        F.cross_entropy(part.flatten(0, 1), labels[..., s].flatten(), reduction="none")
        for s, part in enumerate(slot_logits(logits, sizes))
    ]
    return torch.stack([probe_means(loss.view(labels.shape[:2])) for loss in losses]).sum(0)


def predict(head: UtteranceHead, features: Tensor, sizes: list[int]) -> Tensor:
    """``[N, S]`` predicted class per slot."""
    predictions = []
    for start in range(0, len(features), EVAL_BATCH):
        logits = head(features[start : start + EVAL_BATCH])
        predictions.append(torch.stack([p.argmax(-1) for p in slot_logits(logits, sizes)], dim=-1))
    return torch.cat(predictions)


def predict_stacked(group: nn.Module, features: Tensor, sizes: list[int]) -> Tensor:
    """``[P, N, S]``: every probe of a stacked group on the same features."""
    predictions = []
    for start in range(0, len(features), EVAL_BATCH):
        logits = group(features[start : start + EVAL_BATCH], shared=True)
        predictions.append(torch.stack([p.argmax(-1) for p in slot_logits(logits, sizes)], dim=-1))
    return torch.cat(predictions, dim=1)


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
    pooling = "time mean of the upstream's valid frames (s3prl: round(samples / 320) frames)"

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

        def score(head: UtteranceHead, fold: int) -> dict[str, dict[str, float]]:
            return {
                split: classification_metrics(
                    predict(head, folds[fold][split].features, encoder.sizes).cpu(),
                    folds[fold][split].labels.cpu(),
                )
                for split in ("dev", "test")
            }

        sweep = self._sweep(task, data, folds, encoder, upstream, settings, selection_metric)
        trials = run_stacked_sweep(
            sweep, settings, len(folds), f"probe {task.metadata.name}", f"dev {selection_metric}"
        )
        return sweep_outcome(trials, score, selection_metric, [fold.name for fold in data.folds])

    def _sweep(
        self,
        task: Task,
        data: TaskData,
        folds: list[dict[str, SplitArrays]],
        encoder: LabelEncoder,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
        selection_metric: str,
    ) -> _UtteranceSweep:
        return _UtteranceSweep(folds, encoder, upstream, settings, selection_metric)

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


@dataclass
class _UtteranceSweep:
    """The probes of one task (``bench.protocols.sweep.StackedSweep``): each draws its
    batches from its fold's training features with its own generator."""

    folds: list[dict[str, SplitArrays]]
    encoder: LabelEncoder
    upstream: UpstreamInfo
    settings: ProbeSettings
    selection_metric: str

    def build_head(self, seed: int, fold: int) -> UtteranceHead:
        with seeded(seed):
            head = UtteranceHead(
                self.upstream.num_layers,
                self.folds[fold]["train"].features.shape[-1],
                sum(self.encoder.sizes),
                layers=self.settings.layers,
                layer_norm=self.settings.layer_norm,
            )
        return head.to(self.settings.device)

    def draw(self, fold: int, active: ActiveProbes) -> Tensor:
        """``[P, B]`` training items of each probe's batch, from its own generator."""
        train = self.folds[fold]["train"]
        assert train.sample_weights is not None
        size = self.settings.batch_size
        return torch.stack(
            [
                torch.multinomial(train.sample_weights, size, replacement=True, generator=g)
                for g in active.generators
            ]
        )

    def step_loss(self, fold: int, group: nn.Module, active: ActiveProbes) -> Tensor:
        train = self.folds[fold]["train"]
        index = self.draw(fold, active).to(train.features.device)
        features = train.features.index_select(0, index.flatten())
        logits = group(features.view(*index.shape, *features.shape[1:]))
        return classification_loss(logits, train.labels[index], self.encoder.sizes)

    def evaluate(self, fold: int, group: nn.Module, active: ActiveProbes) -> list[float]:
        dev = self.folds[fold]["dev"]
        predicted = predict_stacked(group, dev.features, self.encoder.sizes).cpu()
        labels = dev.labels.cpu()
        return [classification_metrics(probe, labels)[self.selection_metric] for probe in predicted]


@dataclass
class _WaveformCropSweep(_UtteranceSweep):
    """``_UtteranceSweep`` whose training batches are fresh random waveform crops of the
    drawn items, encoded per step (``bench.frames.crops``); each probe's crops are drawn
    from its own generator. Dev and test stay the pooled cache's whole utterances."""

    crops: list[Any] = field(default_factory=list)  # one WaveformCrops per fold

    def step_loss(self, fold: int, group: nn.Module, active: ActiveProbes) -> Tensor:
        train = self.folds[fold]["train"]
        index = self.draw(fold, active)
        generators = [g for g in active.generators for _ in range(index.shape[1])]
        features = self.crops[fold].pooled(
            index.flatten().tolist(), generators, self.settings.layer_norm
        )
        features = features.to(train.features.device)
        logits = group(features.view(*index.shape, *features.shape[1:]))
        return classification_loss(
            logits, train.labels[index.to(train.labels.device)], self.encoder.sizes
        )


class UtteranceClassificationOnWaveformCrops(BindsUpstream, UtteranceClassification):
    """``UtteranceClassification`` trained on s3prl's fresh random waveform crops, the
    encoder run in the training loop (superb.sid's ``training_crops: waveform``). A protocol
    of its own because it needs the upstream (``bind_upstream``)."""

    def _sweep(
        self,
        task: Task,
        data: TaskData,
        folds: list[dict[str, SplitArrays]],
        encoder: LabelEncoder,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
        selection_metric: str,
    ) -> _UtteranceSweep:
        from bench.frames.crops import CROP_SECONDS, WaveformCrops

        seconds = float(getattr(task.options, "crop_seconds", CROP_SECONDS))
        crops_item = getattr(task, "crops_item", None)  # which items a read crops
        model = self.bound_upstream(task.metadata.name)
        crops = [
            WaveformCrops(
                data.items(fold.train),
                model,
                task.audio_effects(),
                settings.device,
                seconds,
                None if crops_item is None else [crops_item(i) for i in data.items(fold.train)],
                0.0 if task.audio_effects() else task.audio_gain_db,
            )
            for fold in data.folds
        ]
        return _WaveformCropSweep(folds, encoder, upstream, settings, selection_metric, crops)


#: the protocol of a task whose training crops are fresh waveform windows (superb.sid)
WAVEFORM_CROPS_PROTOCOL = "utterance_classification.waveform_crops"

PROTOCOLS.register("utterance_classification", UtteranceClassification)
PROTOCOLS.register(WAVEFORM_CROPS_PROTOCOL, UtteranceClassificationOnWaveformCrops)
