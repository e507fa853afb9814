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


LOW_PRECISION = (torch.float16, torch.bfloat16)


def widen(features: Tensor) -> Tensor:
    """float16/bfloat16 (the sequence cache's storage) to float32; other dtypes unchanged."""
    return features.float() if features.dtype in LOW_PRECISION else features


#: elements widened to float32 at a time (16 MB), so the widened copy stays small
_CHUNK_ELEMENTS = 1 << 22


class _LowPrecisionWeightedSum(torch.autograd.Function):
    """``sum_l w_l x_l`` over float16 features (constants) with float32 weights, widened a
    chunk of rows at a time. Widening a whole batch of frames first (``x.float()``) writes
    and re-reads a float32 copy twice the cache's size, and that dominated frame-probe steps:
    on a HuBERT-Base batch of 4,000 frames the weighted sum with its weight gradient took
    ~160 ms that way and ~37 ms this way (2 cores). Only the weights get a gradient."""

    @staticmethod
    def forward(ctx, features: Tensor, weights: Tensor) -> Tensor:
        ctx.save_for_backward(features, weights)
        weights = weights.detach()  # matmul takes a slower path for inputs that need grad
        rows = features.reshape(-1, *features.shape[-2:])
        out = torch.empty(len(rows), rows.shape[-1], dtype=weights.dtype, device=rows.device)
        for chunk in _chunks(rows):
            out[chunk] = torch.matmul(weights, rows[chunk].to(weights.dtype))
        return out.reshape(*features.shape[:-2], rows.shape[-1])

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[None, Tensor]:
        features, weights = ctx.saved_tensors
        rows = features.reshape(-1, *features.shape[-2:])
        grad_rows = grad_output.reshape(len(rows), 1, -1)
        grad_weights = torch.zeros_like(weights)
        for chunk in _chunks(rows):
            products = rows[chunk].to(weights.dtype, copy=True).mul_(grad_rows[chunk])
            grad_weights += products.sum(dim=(0, 2))
        return None, grad_weights


def _chunks(rows: Tensor) -> list[slice]:
    size = max(1, _CHUNK_ELEMENTS // (rows.shape[-2] * rows.shape[-1]))
    return [slice(start, start + size) for start in range(0, len(rows), size)]


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
        """float16 features (the sequence cache) give float32 out, widened as needed."""
        if features.shape[-2] != self.num_layers:
            raise ValueError(
                f"expected {self.num_layers} layers, got input of shape {tuple(features.shape)}"
            )
        normalize = self.layer_norm and not prenormalized
        if self.fixed_layer is not None:
            features = widen(features[..., self.fixed_layer, :])
            return F.layer_norm(features, features.shape[-1:]) if normalize else features
        weights = self.weights()
        if normalize:
            features = F.layer_norm(widen(features), features.shape[-1:])
        if features.dtype in LOW_PRECISION and not features.requires_grad:
            return _LowPrecisionWeightedSum.apply(features, weights.float())
        features = widen(features)
        return torch.einsum("...ld,l->...d", features, weights.to(features.dtype))


class ConcatLayers(nn.Module):
    """``[..., L, D] -> [..., L * D]``: every layer side by side, optionally layer-normed."""

    def __init__(self, num_layers: int, layer_norm: bool = False):
        super().__init__()
        self.num_layers = num_layers
        self.layer_norm = layer_norm

    def forward(self, features: Tensor, prenormalized: bool = False) -> Tensor:
        features = widen(features)
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
