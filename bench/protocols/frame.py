"""Frame classification: a label for every frame, from timed events (the demo event task).

Items carry ``(onset_s, offset_s, label)`` events; a frame takes the label of the event
that covers its centre, else the background class ``_none_`` (appended to the task's
vocabulary). The head is ``bench.heads.FrameHead`` on the weighted sum of layers, trained
(one hidden layer of 256 unless the task sets
``head_hidden_dim``) on the sequence cache with cross-entropy over valid frames. Metrics: frame accuracy and
the macro F1 over the event classes (background excluded), the selection metric.
Learning-rate selection and reporting: ``bench.protocols.sweep``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import Tensor

from bench.data import DataError, Item, TaskData
from bench.heads import FrameHead, frame_mask
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

BACKGROUND = "_none_"


def frame_labels(
    events: Sequence[tuple[float, float, str]],
    num_frames: int,
    frame_rate: float,
    index: dict[str, int],
    background: int,
) -> np.ndarray:
    """Class of each frame: the event covering the frame's centre, else ``background``."""
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    labels = np.full(num_frames, background, dtype=np.int64)
    for onset, offset, label in events:
        labels[(centres >= onset) & (centres < offset)] = index[label]
    return labels


@dataclass
class PackedSplit:
    """A split's frames in one tensor: ``frames[offsets[i]:offsets[i] + lengths[i]]`` is item i."""

    frames: Tensor  # [sum T, L, D] float16
    labels: Tensor  # [sum T]
    offsets: Tensor
    lengths: Tensor

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        lengths = self.lengths[index]
        longest = int(lengths.max())
        positions = self.offsets[index, None] + torch.arange(longest)[None, :]
        valid = frame_mask(lengths, longest)
        positions = torch.where(valid, positions, self.offsets[index, None])
        return self.frames[positions], self.labels[positions], valid


def pack(
    items: Sequence[Item],
    sequences: list[np.ndarray],
    frame_rate: float,
    index: dict[str, int],
    background: int,
) -> PackedSplit:
    labels = []
    for item, frames in zip(items, sequences, strict=True):
        try:
            labels.append(frame_labels(item.label, len(frames), frame_rate, index, background))
        except KeyError as error:
            raise DataError(
                f"{item.path}: unknown label {error.args[0]!r} (item '{item.key}')"
            ) from None
    lengths = torch.tensor([len(s) for s in sequences])
    offsets = torch.cumsum(lengths, 0) - lengths
    return PackedSplit(
        torch.from_numpy(np.concatenate(sequences)),
        torch.from_numpy(np.concatenate(labels)),
        offsets,
        lengths,
    )


def predict_frames(head: FrameHead, split: PackedSplit, batch_items: int = 64) -> Tensor:
    predictions = []
    for start in range(0, len(split.lengths), batch_items):
        index = torch.arange(start, min(start + batch_items, len(split.lengths)))
        frames, _, valid = split.batch(index)
        predictions.append(head(frames).argmax(-1)[valid])
    return torch.cat(predictions)


def frame_metrics(predicted: Tensor, labels: Tensor, event_classes: list[int]) -> dict[str, float]:
    return {
        "frame_f1": 100.0
        * float(
            f1_score(
                labels.numpy(),
                predicted.numpy(),
                labels=event_classes,
                average="macro",
                zero_division=0,
            )
        ),
        "frame_accuracy": 100.0 * float((predicted == labels).float().mean()),
    }


class FrameClassification(ProbeProtocol):
    feature_kind = "sequence"

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        classes = [*data.vocabulary["label"], BACKGROUND]
        index = {label: i for i, label in enumerate(classes)}
        event_classes = list(range(len(classes) - 1))
        selection_metric = task.metadata.main_metric
        hidden_dim = getattr(task, "head_hidden_dim", 256)
        folds = []
        for fold in data.folds:
            splits = {}
            for split, names in (("train", fold.train), ("dev", fold.dev), ("test", fold.test)):
                items = data.items(names)
                splits[split] = pack(
                    items, features.sequences(items), upstream.frame_rate, index, len(classes) - 1
                )
            folds.append(splits)

        def train_one(lr: float, seed: int, fold: int) -> tuple[FrameHead, TrainResult]:
            train = folds[fold]["train"]
            with seeded(seed):
                head = FrameHead(
                    upstream.num_layers,
                    train.frames.shape[-1],
                    len(classes),
                    hidden_dim=hidden_dim,
                    layers=settings.layers,
                    layer_norm=settings.layer_norm,
                )
            return head, self._train(
                head, folds[fold], event_classes, settings, lr, seed, selection_metric
            )

        def score(head: FrameHead, fold: int) -> dict[str, dict[str, float]]:
            return {
                split: frame_metrics(
                    predict_frames(head, folds[fold][split]),
                    folds[fold][split].labels,
                    event_classes,
                )
                for split in ("dev", "test")
            }

        trials = run_sweep(train_one, settings, len(folds), desc=f"probe {task.metadata.name}")
        return sweep_outcome(trials, score, selection_metric, [fold.name for fold in data.folds])

    @staticmethod
    def _train(
        head: FrameHead,
        splits: dict[str, PackedSplit],
        event_classes: list[int],
        settings: ProbeSettings,
        lr: float,
        seed: int,
        selection_metric: str,
    ) -> TrainResult:
        train, dev = splits["train"], splits["dev"]
        count = len(train.lengths)

        def batch_loss(model: FrameHead, generator: torch.Generator) -> Tensor:
            index = torch.randint(count, (settings.batch_size,), generator=generator)
            frames, labels, valid = train.batch(index)
            return F.cross_entropy(model(frames)[valid], labels[valid])

        def evaluate(model: FrameHead) -> float:
            return frame_metrics(predict_frames(model, dev), dev.labels, event_classes)[
                selection_metric
            ]

        return train_probe(head, batch_loss, evaluate, settings, lr, seed)


PROTOCOLS.register("frame_classification", FrameClassification)
