"""s3prl's ``SepRNN`` on the layer weighted sum: the mask head of SE and SS.

weighted sum -> ``rnn_layers`` bidirectional LSTMs of ``hidden_size`` units, dropout after
each (s3prl's ``nn.LSTM(num_layers, dropout)`` drops between layers, then ``self.drops``
after the last: the same places) -> per source Linear(2 hidden, F) -> mask activation.
Frames ``[B, T, L, D]`` with lengths ``[B]`` map to masks ``[B, S, T, F]``; padding is
packed away, so a frame's mask does not depend on its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bench.enhancement.recipe import MaskRecipe
from bench.featurizer import WeightedSum
from bench.hear.predictor import SeededDropout

_ACTIVATIONS = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


class MaskHead(nn.Module):
    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        recipe: MaskRecipe,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        self.rnns = nn.ModuleList()
        size = input_dim
        for _ in range(recipe.rnn_layers):
            self.rnns.append(
                nn.LSTM(size, recipe.hidden_size, batch_first=True, bidirectional=True)
            )
            size = 2 * recipe.hidden_size
        self.dropout = SeededDropout(recipe.dropout)
        self.masks = nn.ModuleList(nn.Linear(size, recipe.num_bins) for _ in range(recipe.sources))
        self.activation = _ACTIVATIONS[recipe.mask_activation]

    def seed(self, seed: int, device: torch.device | str = "cpu") -> None:
        """Dropout draws from its own generator (probes train side by side in threads)."""
        self.dropout.generator = torch.Generator(device=device).manual_seed(seed + 1)

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        hidden = self.featurizer(frames)
        for rnn in self.rnns:
            packed = pack_padded_sequence(
                hidden, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            output, _ = rnn(packed)
            hidden, _ = pad_packed_sequence(output, batch_first=True, total_length=frames.shape[1])
            hidden = self.dropout(hidden)
        return torch.stack([self.activation(linear(hidden)) for linear in self.masks], dim=1)
