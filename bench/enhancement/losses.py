"""s3prl's mask loss for SE and SS (``MSELoss`` / ``SepLoss`` with ``mask_type: NPSM``).

The target of source s is its magnitude times ``relu(cos(mixture phase - source phase))``
(the non-negative phase-sensitive mask target); the estimate is the mask times the mixture
magnitude (both as log1p for ``separation_stft2``). Per utterance the squared error is
summed over frames and bins, for the permutation of sources that gives the least total
(utterance-level PIT), divided by its STFT frames and the number of sources; the batch loss
is the mean over utterances. (v1 and v2 write this two ways; the number is the same.)
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor


def phase_sensitive_targets(mixture: Tensor, sources: Tensor) -> Tensor:
    """``[B, T, F]`` complex mixture, ``[B, S, T, F]`` complex sources -> ``[B, S, T, F]``."""
    cosine = torch.cos(mixture.angle().unsqueeze(1) - sources.angle())
    return sources.abs() * F.relu(cosine)


def pit_mask_loss(
    masks: Tensor, mixture: Tensor, sources: Tensor, frames: Tensor, log1p: bool = False
) -> Tensor:
    """masks ``[B, S, T, F]``; mixture ``[B, T, F]`` and sources ``[B, S, T, F]`` complex STFTs
    (zero past each utterance's ``frames``)."""
    magnitude = mixture.abs().unsqueeze(1)
    targets = phase_sensitive_targets(mixture, sources)
    if log1p:
        magnitude, targets = torch.log1p(magnitude), torch.log1p(targets)
    estimates = masks * magnitude
    valid = (torch.arange(masks.shape[2], device=masks.device) < frames.unsqueeze(1)).to(masks)
    count = masks.shape[1]
    totals = []
    for order in itertools.permutations(range(count)):
        error = (estimates - targets[:, list(order)]) ** 2
        totals.append((error.sum(dim=3) * valid.unsqueeze(1)).sum(dim=(1, 2)))
    best = torch.stack(totals).min(dim=0).values
    return (best / (frames.to(best) * count)).mean()
