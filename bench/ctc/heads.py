"""s3prl's CTC heads for SUPERB's content tasks, on the layer featurizer.

- ``LinearCTCHead`` (PR, ``downstream/ctc/libriphone.yaml``): weighted sum ->
  Linear(D, 256) -> Linear(256, V); s3prl's projector then its ``FrameLevel`` model without
  hidden layers.
- ``RecurrentCTCHead`` (ASR, ``downstream/asr/config.yaml``): weighted sum -> SpecAugment
  (training only) -> Linear(D, 1024) -> two bidirectional LSTM layers of 1024 units, each
  followed by dropout 0.2 -> Linear(2048, V); s3prl's ``RNNs`` with no downsampling, layer
  norm or projection. For SUPERB-SG's OOD-ASR (``downstream/ctc``'s cv and sbcsae
  configs) each LSTM layer is followed by Linear(2048, 2048) + tanh after its dropout, and
  every ``frame_step``-th frame is kept after the first projection (s3prl's
  ``sample_style: drop``).

Both map frames ``[B, T, L, D]`` with valid lengths ``[B]`` to logits ``[B, T', V]`` whose
valid lengths are ``lengths // frame_step`` (``frame_step`` is 1 but for a downsampling
recurrent head). The linear head has a stacked form (``bench.stacking``: P probes as one
model, e.g. all fed one batch of streamed frames); the recurrent one trains in lock-step
groups, and keeps its random generators in its state (``get_extra_state``) so that a
resumed probe draws what it would have drawn.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bench.ctc.augment import spec_augment
from bench.ctc.recipe import RecurrentHead
from bench.featurizer import WeightedSum
from bench.heads import StackedProjectedHead
from bench.hear.predictor import SeededDropout
from bench.stacking import register_stacked


def output_lengths(lengths: Tensor, frame_step: int) -> Tensor:
    """Valid output frames of a head keeping every ``frame_step``-th frame (s3prl's
    ``x_len // sample_rate``), at least one so that any utterance can be decoded."""
    return (lengths // frame_step).clamp(min=1) if frame_step > 1 else lengths


class LinearCTCHead(nn.Module):
    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        num_tokens: int,
        project_dim: int = 256,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        self.projector = nn.Linear(input_dim, project_dim)
        self.classifier = nn.Linear(project_dim, num_tokens)
        self.frame_step = 1

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        return self.classifier(self.projector(self.featurizer(frames)))


@register_stacked(LinearCTCHead)
class StackedLinearCTCHead(StackedProjectedHead):
    """P ``LinearCTCHead``s: frames ``[P, B, T, L, D]`` (or ``[B, T, L, D]`` shared) ->
    logits ``[P, B, T, V]``."""

    head_class = LinearCTCHead

    def forward(self, frames: Tensor, lengths: Tensor, shared: bool = False) -> Tensor:
        return self.classifier(self.projector(self.featurizer(frames, shared=shared)))


class RecurrentCTCHead(nn.Module):
    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        num_tokens: int,
        spec: RecurrentHead,
        frame_step: int = 1,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.frame_step = frame_step
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        self.spec_augment = spec.spec_augment
        #: SpecAugment's random numbers (on the CPU); ``seed`` sets it and dropout's
        self.generator = torch.Generator()
        self.projector = nn.Linear(input_dim, spec.project_dim)
        self.rnns = nn.ModuleList()
        size = spec.project_dim
        for _ in range(spec.rnn_layers):
            self.rnns.append(nn.LSTM(size, spec.rnn_dim, batch_first=True, bidirectional=True))
            size = 2 * spec.rnn_dim
        self.dropout = SeededDropout(spec.dropout)
        self.projections = nn.ModuleList(
            nn.Linear(size, size) for _ in range(spec.rnn_layers if spec.projection else 0)
        )
        self.classifier = nn.Linear(size, num_tokens)

    def seed(self, seed: int, device: torch.device | str = "cpu") -> None:
        """Draw SpecAugment's and dropout's random numbers from generators seeded with
        ``seed``, never from torch's global one (probes train side by side in threads)."""
        self.generator = torch.Generator().manual_seed(seed)
        self.dropout.generator = torch.Generator(device=device).manual_seed(seed + 1)

    def get_extra_state(self) -> Tensor:
        """Both generators' states, one byte tensor (SpecAugment's first)."""
        dropout = self.dropout.generator
        parts = [self.generator.get_state()]
        if dropout is not None:
            parts.append(dropout.get_state().cpu())
        return torch.cat(parts)

    def set_extra_state(self, state: Tensor) -> None:
        size = len(self.generator.get_state())
        self.generator.set_state(state[:size].clone())
        if self.dropout.generator is not None and len(state) > size:
            self.dropout.generator.set_state(state[size:].clone())

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        features = self.featurizer(frames)
        if self.training and self.spec_augment is not None:
            features = spec_augment(features, lengths.cpu(), self.spec_augment, self.generator)
        hidden = self.projector(features)
        if self.frame_step > 1:
            hidden = hidden[:, :: self.frame_step]
            lengths = output_lengths(lengths, self.frame_step)
        for layer, rnn in enumerate(self.rnns):
            packed = pack_padded_sequence(
                hidden, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            output, _ = rnn(packed)
            hidden, _ = pad_packed_sequence(output, batch_first=True, total_length=hidden.shape[1])
            hidden = self.dropout(hidden)
            if self.projections:
                hidden = torch.tanh(self.projections[layer](hidden))
        return self.classifier(hidden)
