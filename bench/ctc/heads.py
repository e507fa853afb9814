"""s3prl's CTC heads for SUPERB's content tasks, on the layer featurizer.

- ``LinearCTCHead`` (PR, ``downstream/ctc/libriphone.yaml``): weighted sum ->
  Linear(D, 256) -> Linear(256, V); s3prl's projector then its ``FrameLevel`` model without
  hidden layers.
- ``RecurrentCTCHead`` (ASR, ``downstream/asr/config.yaml``): weighted sum -> SpecAugment
  (training only) -> Linear(D, 1024) -> two bidirectional LSTM layers of 1024 units, each
  followed by dropout 0.2 -> Linear(2048, V); s3prl's ``RNNs`` with no downsampling, layer
  norm or projection.

Both map frames ``[B, T, L, D]`` with valid lengths ``[B]`` to logits ``[B, T, V]`` (every
frame keeps its position: the output lengths are the input lengths).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bench.ctc.augment import spec_augment
from bench.ctc.recipe import RecurrentHead
from bench.featurizer import WeightedSum
from bench.hear.predictor import SeededDropout


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

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        return self.classifier(self.projector(self.featurizer(frames)))


class RecurrentCTCHead(nn.Module):
    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        num_tokens: int,
        spec: RecurrentHead,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
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
        self.classifier = nn.Linear(size, num_tokens)

    def seed(self, seed: int, device: torch.device | str = "cpu") -> None:
        """Draw SpecAugment's and dropout's random numbers from generators seeded with
        ``seed``, never from torch's global one (probes train side by side in threads)."""
        self.generator = torch.Generator().manual_seed(seed)
        self.dropout.generator = torch.Generator(device=device).manual_seed(seed + 1)

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        features = self.featurizer(frames)
        if self.training and self.spec_augment is not None:
            features = spec_augment(features, lengths.cpu(), self.spec_augment, self.generator)
        hidden = self.projector(features)
        for rnn in self.rnns:
            packed = pack_padded_sequence(
                hidden, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            output, _ = rnn(packed)
            hidden, _ = pad_packed_sequence(output, batch_first=True, total_length=frames.shape[1])
            hidden = self.dropout(hidden)
        return self.classifier(hidden)
