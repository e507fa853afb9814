"""Probe heads on top of the layer featurizer (SUPERB's downstream models)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.featurizer import WeightedSum


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
