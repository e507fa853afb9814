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
from torch import Tensor, nn

from bench.data import DataError, Item, TaskData
from bench.featurizer import Gathered
from bench.heads import FrameHead
from bench.probe import seeded
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    UpstreamInfo,
)
from bench.protocols.sweep import run_stacked_sweep, sweep_outcome
from bench.stacking import ActiveProbes, ProbeGroup, probe_means
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

    def batch(self, index: Tensor, pad_to_split: bool = False) -> tuple[Gathered, Tensor, Tensor]:
        """Frames ``[*index.shape, T, L, D]`` (gathered by the weighted sum as it reads
        them), labels and valid mask ``[*index.shape, T]`` of the items ``index`` (any shape,
        e.g. ``[P, B]`` for P probes), padded to the longest of them, or with
        ``pad_to_split`` to the split's longest item. Stacked training batches need the
        latter: padded to the longest of all P probes' items, a probe's gradient sums would
        run over a row count that depends on the other probes of its stack, and round
        differently (HEAR event clips have one length, so this costs nothing there)."""
        lengths = self.lengths[index]
        longest = int((self.lengths if pad_to_split else lengths).max())
        starts = self.offsets[index].unsqueeze(-1)
        valid = torch.arange(longest) < lengths.unsqueeze(-1)
        positions = torch.where(valid, starts + torch.arange(longest), starts)
        return Gathered(self.frames, positions), self.labels[positions], valid


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


def predict_frames(head: nn.Module, split: PackedSplit, batch_items: int = 64) -> Tensor:
    """The class of every frame of the split, in order; a stacked group (``shared=True``)
    gives ``[P, frames]``."""
    stacked = isinstance(head, ProbeGroup)
    predictions = []
    for start in range(0, len(split.lengths), batch_items):
        index = torch.arange(start, min(start + batch_items, len(split.lengths)))
        frames, _, valid = split.batch(index)
        logits = head(frames, shared=True) if stacked else head(frames)
        predictions.append(logits.argmax(-1)[..., valid])
    return torch.cat(predictions, dim=-1)


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

        def score(head: FrameHead, fold: int) -> dict[str, dict[str, float]]:
            return {
                split: frame_metrics(
                    predict_frames(head, folds[fold][split]),
                    folds[fold][split].labels,
                    event_classes,
                )
                for split in ("dev", "test")
            }

        sweep = _FrameSweep(
            folds, len(classes), event_classes, hidden_dim, upstream, settings, selection_metric
        )
        trials = run_stacked_sweep(
            sweep, settings, len(folds), f"probe {task.metadata.name}", f"dev {selection_metric}"
        )
        return sweep_outcome(trials, score, selection_metric, [fold.name for fold in data.folds])


@dataclass
class _FrameSweep:
    """The probes of one task (``bench.protocols.sweep.StackedSweep``): each draws its
    batches of items from its fold's training split with its own generator."""

    folds: list[dict[str, PackedSplit]]
    num_classes: int
    event_classes: list[int]
    hidden_dim: int | None
    upstream: UpstreamInfo
    settings: ProbeSettings
    selection_metric: str

    def build_head(self, seed: int, fold: int) -> FrameHead:
        with seeded(seed):
            return FrameHead(
                self.upstream.num_layers,
                self.folds[fold]["train"].frames.shape[-1],
                self.num_classes,
                hidden_dim=self.hidden_dim,
                layers=self.settings.layers,
                layer_norm=self.settings.layer_norm,
            )

    def step_loss(self, fold: int, group: nn.Module, active: ActiveProbes) -> Tensor:
        train = self.folds[fold]["train"]
        count, size = len(train.lengths), self.settings.batch_size
        index = torch.stack([torch.randint(count, (size,), generator=g) for g in active.generators])
        frames, labels, valid = train.batch(index, pad_to_split=True)  # [P, B, T, ...]
        logits = group(frames)
        targets = torch.where(valid, labels, 0)  # padding's labels are ignored
        losses = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none")
        return probe_means(losses.view(valid.shape), valid)

    def evaluate(self, fold: int, group: nn.Module, active: ActiveProbes) -> list[float]:
        dev = self.folds[fold]["dev"]
        return [
            frame_metrics(predicted, dev.labels, self.event_classes)[self.selection_metric]
            for predicted in predict_frames(group, dev)
        ]


PROTOCOLS.register("frame_classification", FrameClassification)
