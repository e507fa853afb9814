"""Combining an upstream's layers into one feature: SUPERB's weighted sum.

``WeightedSum`` learns softmax weights over layers, initialised to zero (equal weights),
optionally after a parameter-free layer norm of each layer; it can also pin one layer.
``ConcatLayers`` puts every layer side by side instead (HEAR results as the SPEAR paper
reports them). Both work on any ``[..., L, D]`` input: pooled ``[B, L, D]`` or frames
``[B, T, L, D]``; ``layer_combiner`` builds the one ``ProbeSettings.layers`` asks for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def parse_layers(layers: str | int, num_layers: int) -> str | int:
    """``"weighted"``, ``"concat"``, or a validated non-negative layer index (``"last"`` and
    negative indices resolved)."""
    if layers in ("weighted", "concat"):
        return layers
    index = num_layers - 1 if layers == "last" else int(layers)
    if index < 0:
        index += num_layers
    if not 0 <= index < num_layers:
        raise ValueError(
            f"layer {layers} does not exist: the upstream has {num_layers} layers (0..{num_layers - 1})"
        )
    return index


class WeightedSum(nn.Module):
    """``[..., L, D] -> [..., D]`` by softmax(w) over layers, or one fixed layer.

    layer_norm: normalise each layer of each frame over D (no parameters) first. Pooled
    inputs that were normalised before pooling pass ``prenormalized=True``.
    """

    def __init__(self, num_layers: int, layers: str | int = "weighted", layer_norm: bool = False):
        super().__init__()
        selection = parse_layers(layers, num_layers)
        if selection == "concat":
            raise ValueError("layers=concat is not a weighted sum; only HEAR protocols support it")
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.fixed_layer = None if selection == "weighted" else int(selection)
        self.logits = nn.Parameter(torch.zeros(num_layers)) if self.fixed_layer is None else None

    def weights(self) -> Tensor:
        if self.logits is not None:
            return torch.softmax(self.logits, dim=0)
        return F.one_hot(torch.tensor(self.fixed_layer), self.num_layers).float()

    def learned_weights(self) -> list[float] | None:
        """The softmax weights when they are learned (what results record), else None."""
        return None if self.logits is None else self.weights().detach().cpu().tolist()

    def output_dim(self, hidden_size: int) -> int:
        return hidden_size

    def forward(self, features: Tensor, prenormalized: bool = False) -> Tensor:
        if features.shape[-2] != self.num_layers:
            raise ValueError(
                f"expected {self.num_layers} layers, got input of shape {tuple(features.shape)}"
            )
        if self.fixed_layer is not None:
            features = features[..., self.fixed_layer : self.fixed_layer + 1, :]
            weights = features.new_ones(1)
        else:
            weights = self.weights().to(features.dtype)
        if self.layer_norm and not prenormalized:
            features = F.layer_norm(features, features.shape[-1:])
        return torch.einsum("...ld,l->...d", features, weights)


class ConcatLayers(nn.Module):
    """``[..., L, D] -> [..., L * D]``: every layer side by side, optionally layer-normed."""

    def __init__(self, num_layers: int, layer_norm: bool = False):
        super().__init__()
        self.num_layers = num_layers
        self.layer_norm = layer_norm

    def forward(self, features: Tensor, prenormalized: bool = False) -> Tensor:
        if self.layer_norm and not prenormalized:
            features = F.layer_norm(features, features.shape[-1:])
        return features.flatten(start_dim=-2)

    def learned_weights(self) -> None:
        return None

    def output_dim(self, hidden_size: int) -> int:
        return self.num_layers * hidden_size


def layer_combiner(
    num_layers: int, layers: str | int = "weighted", layer_norm: bool = False
) -> nn.Module:
    """``ConcatLayers`` for ``layers="concat"``, else a ``WeightedSum``."""
    if layers == "concat":
        return ConcatLayers(num_layers, layer_norm)
    return WeightedSum(num_layers, layers, layer_norm)
