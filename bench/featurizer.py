"""Combining an upstream's layers into one feature: SUPERB's weighted sum.

``WeightedSum`` learns softmax weights over layers, initialised to zero (equal weights),
optionally after a parameter-free layer norm of each layer; it can also pin one layer.
``ConcatLayers`` puts every layer side by side instead (HEAR results as the SPEAR paper
reports them). Both work on any ``[..., L, D]`` input: pooled ``[B, L, D]`` or frames
``[B, T, L, D]``; ``layer_combiner`` builds the one ``ProbeSettings.layers`` asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def parse_layers(layers: str | int, num_layers: int) -> str | int | tuple[int, ...]:
    """``"weighted"``, ``"concat"``, a validated non-negative layer index (``"last"`` and
    negative indices resolved), or a subset for a weighted sum over some layers only:
    ``"A-B"`` (A to B inclusive) or ``"A,B,C"``, as sorted unique indices."""
    if layers in ("weighted", "concat"):
        return layers
    if isinstance(layers, str) and ("," in layers or "-" in layers.lstrip("-")):
        return layer_subset(layers, num_layers)
    index = num_layers - 1 if layers == "last" else int(layers)
    if index < 0:
        index += num_layers
    if not 0 <= index < num_layers:
        raise ValueError(
            f"layer {layers} does not exist: the upstream has {num_layers} layers (0..{num_layers - 1})"
        )
    return index


def layer_subset(spec: str, num_layers: int) -> tuple[int, ...]:
    """``"A-B"`` or ``"A,B,C"`` as sorted unique layer indices, each checked."""
    try:
        if "," in spec:
            indices = [int(part) for part in spec.split(",")]
        else:
            first, last = (int(part) for part in spec.split("-"))
            indices = list(range(first, last + 1))
    except ValueError:
        raise ValueError(
            f"probe.layers={spec}: a layer subset is A-B or A,B,C (layer indices)"
        ) from None
    subset = tuple(sorted({int(parse_layers(index, num_layers)) for index in indices}))
    if len(subset) < 2:
        raise ValueError(f"probe.layers={spec}: a subset needs two layers or more")
    return subset


def _fixed_layer(layers: str | int, num_layers: int) -> int | None:
    """The layer a weighted sum is pinned to, or None for a learned one."""
    selection = parse_layers(layers, num_layers)
    if selection == "concat":
        raise ValueError("layers=concat is not a weighted sum; only HEAR protocols support it")
    if isinstance(selection, tuple):
        raise ValueError(
            f"probe.layers={layers}: a layer subset is read by frame-level tasks, whose frame "
            "cache or stream then holds only those layers; this task reads the pooled cache "
            "of every layer: use weighted, last or one layer index"
        )
    return None if selection == "weighted" else int(selection)


LOW_PRECISION = (torch.float16, torch.bfloat16)


def widen(features: Tensor) -> Tensor:
    """float16/bfloat16 (the sequence cache's storage) to float32; other dtypes unchanged."""
    return features.float() if features.dtype in LOW_PRECISION else features


@dataclass(frozen=True)
class Gathered:
    """The rows ``source[index]`` of a large array, not copied out yet: a batch of frames of
    the sequence cache (``source [M, L, D]`` float16; ``index`` of any shape, e.g.
    ``[B, T]``, or ``[P, B, T]`` for P probes' own batches). The weighted sums read it a
    chunk of rows at a time, so a batch exists neither as one float16 copy nor as one
    float32 copy; anything else calls ``materialize()``."""

    source: Tensor
    index: Tensor

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.index.shape, *self.source.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.source.dtype

    def __getitem__(self, item: Any) -> Gathered:
        return Gathered(self.source, self.index[item])

    def materialize(self) -> Tensor:
        return self.source[self.index]


Features = Tensor | Gathered

#: elements widened to float32 at a time (16 MB), so the widened copy stays small
_CHUNK_ELEMENTS = 1 << 22


class _LowPrecisionWeightedSum(torch.autograd.Function):
    """``sum_l w_l x_l`` over float16 rows ``[M, L, D]`` (constants; or the rows ``index``
    picks from them) with float32 weights, widened a chunk of rows at a time. Widening a
    whole batch of frames first (``x.float()``) writes and re-reads a float32 copy twice the
    cache's size, and that dominated frame-probe steps: on a HuBERT-Base batch of 4,000
    frames the weighted sum with its weight gradient took ~160 ms that way and ~37 ms this
    way (2 cores). Only the weights get a gradient."""

    @staticmethod
    def forward(ctx, rows: Tensor, index: Tensor | None, weights: Tensor) -> Tensor:
        ctx.save_for_backward(rows, index, weights)
        weights = weights.detach()  # matmul takes a slower path for inputs that need grad
        count = len(rows) if index is None else len(index)
        out = torch.empty(count, rows.shape[-1], dtype=weights.dtype, device=rows.device)
        for chunk in _row_chunks(count, rows.shape[-2] * rows.shape[-1]):
            out[chunk] = torch.matmul(weights, _take(rows, index, chunk).to(weights.dtype))
        return out

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[None, None, Tensor]:
        rows, index, weights = ctx.saved_tensors
        grad_weights = torch.zeros_like(weights)
        for chunk in _row_chunks(len(grad_output), rows.shape[-2] * rows.shape[-1]):
            products = _take(rows, index, chunk).to(weights.dtype, copy=True)
            grad_weights += products.mul_(grad_output[chunk, None, :]).sum(dim=(0, 2))
        return None, None, grad_weights


def _take(rows: Tensor, index: Tensor | None, chunk: slice) -> Tensor:
    return rows[chunk] if index is None else rows[index[chunk]]


def _row_chunks(count: int, elements_per_row: int) -> list[slice]:
    size = max(1, _CHUNK_ELEMENTS // elements_per_row)
    return [slice(start, start + size) for start in range(0, count, size)]


def _as_rows(features: Features) -> tuple[Tensor, Tensor | None]:
    """Rows ``[M, L, D]`` and the flat index into them (None: all rows in order)."""
    if isinstance(features, Gathered):
        return features.source, features.index.reshape(-1)
    return features.reshape(-1, *features.shape[-2:]), None


def _layer(features: Features, layer: int) -> Tensor:
    """``features[..., layer, :]``; of a ``Gathered`` input only that layer is copied."""
    if isinstance(features, Gathered):
        return features.source[:, layer][features.index]
    return features[..., layer, :]


def _dense(features: Features, low_precision_ok: bool) -> Features:
    """``features`` as a tensor unless a low-precision weighted sum will gather it itself."""
    if isinstance(features, Gathered) and not (
        low_precision_ok and features.dtype in LOW_PRECISION
    ):
        return features.materialize()
    return features


class WeightedSum(nn.Module):
    """``[..., L, D] -> [..., D]`` by softmax(w) over layers, or one fixed layer.

    layer_norm: normalise each layer of each frame over D (no parameters) first. Pooled
    inputs that were normalised before pooling pass ``prenormalized=True``.
    """

    def __init__(self, num_layers: int, layers: str | int = "weighted", layer_norm: bool = False):
        super().__init__()
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.fixed_layer = _fixed_layer(layers, num_layers)
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

    def forward(self, features: Features, prenormalized: bool = False) -> Tensor:
        """float16 features (the sequence cache) give float32 out, widened as needed."""
        if features.shape[-2] != self.num_layers:
            raise ValueError(
                f"expected {self.num_layers} layers, got input of shape {tuple(features.shape)}"
            )
        normalize = self.layer_norm and not prenormalized
        if self.fixed_layer is not None:
            features = widen(_layer(features, self.fixed_layer))
            return F.layer_norm(features, features.shape[-1:]) if normalize else features
        features = _dense(features, low_precision_ok=not normalize)
        weights = self.weights()
        if normalize:
            features = F.layer_norm(widen(features), features.shape[-1:])
        if isinstance(features, Gathered) or (
            features.dtype in LOW_PRECISION and not features.requires_grad
        ):
            rows, index = _as_rows(features)
            out = _LowPrecisionWeightedSum.apply(rows, index, weights.float())
            return out.reshape(*features.shape[:-2], out.shape[-1])
        rows = widen(features).reshape(-1, *features.shape[-2:])  # as StackedWeightedSum
        out = torch.matmul(weights.to(rows.dtype), rows)
        return out.reshape(*features.shape[:-2], out.shape[-1])


class ConcatLayers(nn.Module):
    """``[..., L, D] -> [..., L * D]``: every layer side by side, optionally layer-normed."""

    def __init__(self, num_layers: int, layer_norm: bool = False):
        super().__init__()
        self.num_layers = num_layers
        self.layer_norm = layer_norm

    def forward(self, features: Features, prenormalized: bool = False) -> Tensor:
        features = widen(_dense(features, low_precision_ok=False))
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


class StackedWeightedSum(nn.Module):
    """P ``WeightedSum``s at once (``logits [P, L]``; see ``bench.stacking``): features per
    probe ``[P, ..., L, D]``, or with ``shared=True`` one ``[..., L, D]`` for every probe,
    give ``[P, ..., D]``. Each probe's sum is computed as ``WeightedSum`` computes it alone,
    float16 and ``Gathered`` features a chunk of rows at a time."""

    def __init__(
        self,
        probes: int,
        num_layers: int,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.probes = probes
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.fixed_layer = _fixed_layer(layers, num_layers)
        self.logits = (
            nn.Parameter(torch.zeros(probes, num_layers)) if self.fixed_layer is None else None
        )

    @classmethod
    def like(cls, featurizer: WeightedSum, probes: int) -> StackedWeightedSum:
        layers = "weighted" if featurizer.fixed_layer is None else featurizer.fixed_layer
        return cls(probes, featurizer.num_layers, layers, featurizer.layer_norm)

    def weights(self) -> Tensor:
        """``[P, L]`` softmax weights (one-hot rows for a fixed layer)."""
        if self.logits is not None:
            return torch.softmax(self.logits, dim=-1)
        one_hot = F.one_hot(torch.tensor(self.fixed_layer), self.num_layers).float()
        return one_hot.expand(self.probes, -1)

    def forward(
        self, features: Tensor, shared: bool = False, prenormalized: bool = False
    ) -> Tensor:
        if features.shape[-2] != self.num_layers:
            raise ValueError(
                f"expected {self.num_layers} layers, got input of shape {tuple(features.shape)}"
            )
        if not shared and features.shape[0] != self.probes:
            raise ValueError(f"expected inputs for {self.probes} probes, got {features.shape[0]}")
        normalize = self.layer_norm and not prenormalized
        if self.fixed_layer is not None:
            features = widen(_layer(features, self.fixed_layer))
            if normalize:
                features = F.layer_norm(features, features.shape[-1:])
            return features.expand(self.probes, *features.shape) if shared else features
        weights = self.weights()
        features = _dense(features, low_precision_ok=not normalize)
        if normalize:
            features = F.layer_norm(widen(features), features.shape[-1:])
        batch = features.shape[:-2] if shared else features.shape[1:-2]
        dim = features.shape[-1]
        if isinstance(features, Gathered) or (
            features.dtype in LOW_PRECISION and not features.requires_grad
        ):
            rows, index = _stacked_rows(features, self.probes, shared)
            out = _StackedLowPrecisionWeightedSum.apply(rows, index, weights.float(), shared)
        else:
            # One batched product of every row's [1, L] @ [L, D] (per probe, or with each
            # shared row against all P weight vectors): on a CPU it is several times faster
            # than a product per probe, whose matmul copies its rows to fold them.
            rows, _ = _stacked_rows(widen(features), self.probes, shared)
            weights = weights.to(rows.dtype)
            if shared:  # [N, P, L] @ [N, L, D] -> [N, P, D]
                out = torch.bmm(weights.expand(len(rows), -1, -1), rows).transpose(0, 1)
            else:  # [P * N, 1, L] @ [P * N, L, D] -> [P, N, D]
                count = rows.shape[1]
                per_row = weights[:, None, None, :].expand(-1, count, 1, -1)
                out = torch.bmm(per_row.reshape(-1, 1, self.num_layers), rows.flatten(0, 1))
        return out.reshape(self.probes, *batch, dim)


class _StackedLowPrecisionWeightedSum(torch.autograd.Function):
    """``_LowPrecisionWeightedSum`` for P probes, probe by probe with its operations (so
    the numbers are those of one probe): rows per probe ``[P, N, L, D]`` or shared
    ``[N, L, D]``, or the rows ``index`` (``[P, N]`` or ``[N]``) picks from ``[M, L, D]``."""

    @staticmethod
    def forward(ctx, rows: Tensor, index: Tensor | None, weights: Tensor, shared: bool) -> Tensor:
        ctx.save_for_backward(rows, index, weights)
        ctx.shared = shared
        weights = weights.detach()
        count = _count(rows, index, shared)
        out = torch.empty(
            len(weights), count, rows.shape[-1], dtype=weights.dtype, device=rows.device
        )
        for chunk in _row_chunks(count, rows.shape[-2] * rows.shape[-1]):
            widened = _probe_rows(rows, index, None, chunk).to(weights.dtype) if shared else None
            for p, w in enumerate(weights):  # written in place: no [P, n, D] temporary
                part = widened if shared else _probe_rows(rows, index, p, chunk).to(w.dtype)
                torch.matmul(w, part, out=out[p, chunk])
        return out

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[None, None, Tensor, None]:
        rows, index, weights = ctx.saved_tensors
        shared = ctx.shared
        grad_weights = torch.zeros_like(weights)
        for chunk in _row_chunks(_count(rows, index, shared), rows.shape[-2] * rows.shape[-1]):
            for p in range(len(weights)):
                part = _probe_rows(rows, index, None if shared else p, chunk)
                products = part.to(weights.dtype, copy=True).mul_(grad_output[p, chunk, None, :])
                grad_weights[p] += products.sum(dim=(0, 2))
        return None, None, grad_weights, None


def _stacked_rows(features: Features, probes: int, shared: bool) -> tuple[Tensor, Tensor | None]:
    """Rows ``[N, L, D]`` (shared) or ``[P, N, L, D]``, or rows ``[M, L, D]`` and the index
    ``[N]`` / ``[P, N]`` of a ``Gathered`` input."""
    if isinstance(features, Gathered):
        index = features.index.reshape(-1) if shared else features.index.reshape(probes, -1)
        return features.source, index
    if shared:
        return features.reshape(-1, *features.shape[-2:]), None
    return features.reshape(probes, -1, *features.shape[-2:]), None


def _count(rows: Tensor, index: Tensor | None, shared: bool) -> int:
    """Rows per probe."""
    source = rows if index is None else index
    return source.shape[0] if shared else source.shape[1]


def _probe_rows(rows: Tensor, index: Tensor | None, probe: int | None, chunk: slice) -> Tensor:
    """A chunk of one probe's rows (``probe=None``: the shared rows)."""
    if index is not None:
        return rows[index[chunk] if probe is None else index[probe, chunk]]
    return rows[chunk] if probe is None else rows[probe, chunk]
