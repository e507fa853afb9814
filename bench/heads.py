"""Probe heads on top of the layer featurizer (SUPERB's downstream models)."""

from __future__ import annotations

from typing import ClassVar, Self

import torch
from torch import Tensor, nn

from bench.featurizer import StackedWeightedSum, WeightedSum
from bench.stacking import StackedLinear, StackedModule, register_stacked


def frame_mask(lengths: Tensor, num_frames: int) -> Tensor:
    """``[B, T]`` True on valid frames."""
    return torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]


class UtteranceHead(nn.Module):
    """SUPERB's utterance-level head: weighted sum -> Linear(D, P) -> mean pool -> Linear(P, C).

    Everything before the pooling is linear, so the head applied to each layer's
    time-mean (``forward_pooled``, what the pooled cache stores) gives exactly the logits
    of the head applied to the frames (``forward_frames``). With ``layer_norm`` the pooled
    input must be the means of the per-frame layer-normed states.
    """

    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        num_outputs: int,
        projector_dim: int = 256,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        self.projector = nn.Linear(input_dim, projector_dim)
        self.classifier = nn.Linear(projector_dim, num_outputs)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.forward_pooled(pooled)

    def forward_pooled(self, pooled: Tensor) -> Tensor:
        """pooled: ``[B, L, D]`` per-layer means -> logits ``[B, C]``."""
        return self.classifier(self.projector(self.featurizer(pooled, prenormalized=True)))

    def forward_frames(self, frames: Tensor, lengths: Tensor) -> Tensor:
        """frames: ``[B, T, L, D]`` with valid lengths ``[B]`` -> logits ``[B, C]``."""
        projected = self.projector(self.featurizer(frames))
        mask = frame_mask(lengths, frames.shape[1]).unsqueeze(-1).to(projected.dtype)
        pooled = (projected * mask).sum(dim=1) / lengths.to(projected.dtype).unsqueeze(-1)
        return self.classifier(pooled)


class FrameHead(nn.Module):
    """A frame-level classifier (s3prl's FrameLevel): weighted sum -> [Linear(D, H) -> ReLU]
    -> Linear(., C) per frame; ``hidden_dim=None`` makes it linear."""

    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        num_outputs: int,
        hidden_dim: int | None = 256,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        if hidden_dim is None:
            self.mlp = nn.Linear(input_dim, num_outputs)
        else:
            self.mlp = nn.Sequential(
                nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_outputs)
            )

    def forward(self, frames: Tensor) -> Tensor:
        """frames: ``[B, T, L, D]`` -> logits ``[B, T, C]``."""
        return self.mlp(self.featurizer(frames))


# -- stacked forms (bench.stacking): P heads of one architecture as one module ----------------


def stack_layers(layers: nn.Module, probes: int) -> nn.Module:
    """The stacked form of a ``Linear`` or of a ``Sequential`` of ``Linear`` and ``ReLU``,
    keeping the layer names (``mlp.0.weight`` stays ``mlp.0.weight``)."""
    if isinstance(layers, nn.Linear):
        return StackedLinear.like(layers, probes)
    if isinstance(layers, nn.ReLU):
        return nn.ReLU()
    if isinstance(layers, nn.Sequential):
        return nn.Sequential(*(stack_layers(layer, probes) for layer in layers))
    raise TypeError(f"no stacked form for {type(layers).__name__}")


class StackedProjectedHead(StackedModule):
    """P heads of the form weighted sum -> ``projector`` -> ``classifier`` (``Linear`` or
    ``Sequential`` layers); subclasses name the head class and define ``forward``."""

    head_class: ClassVar[type[nn.Module]]

    def __init__(
        self,
        probes: int,
        featurizer: StackedWeightedSum,
        projector: nn.Module,
        classifier: nn.Module,
    ):
        super().__init__()
        self.probes = probes
        self.featurizer, self.projector, self.classifier = featurizer, projector, classifier

    @classmethod
    def empty(cls, head: nn.Module, probes: int) -> Self:
        assert isinstance(head, cls.head_class)
        return cls(
            probes,
            StackedWeightedSum.like(head.featurizer, probes),
            stack_layers(head.projector, probes),
            stack_layers(head.classifier, probes),
        )


@register_stacked(UtteranceHead)
class StackedUtteranceHead(StackedProjectedHead):
    """P ``UtteranceHead``s: pooled ``[P, B, L, D]`` (or ``[B, L, D]`` shared) -> ``[P, B, C]``."""

    head_class = UtteranceHead

    def forward(self, pooled: Tensor, shared: bool = False) -> Tensor:
        combined = self.featurizer(pooled, shared=shared, prenormalized=True)
        return self.classifier(self.projector(combined))


@register_stacked(FrameHead)
class StackedFrameHead(StackedModule):
    """P ``FrameHead``s: frames ``[P, B, T, L, D]`` (or ``[B, T, L, D]`` shared) -> ``[P, B, T, C]``."""

    def __init__(self, probes: int, featurizer: StackedWeightedSum, mlp: nn.Module):
        super().__init__()
        self.probes = probes
        self.featurizer, self.mlp = featurizer, mlp

    @classmethod
    def empty(cls, head: nn.Module, probes: int) -> StackedFrameHead:
        assert isinstance(head, FrameHead)
        return cls(
            probes, StackedWeightedSum.like(head.featurizer, probes), stack_layers(head.mlp, probes)
        )

    def forward(self, frames: Tensor, shared: bool = False) -> Tensor:
        return self.mlp(self.featurizer(frames, shared=shared))
