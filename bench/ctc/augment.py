"""SpecAugment on features, as s3prl applies it to SUPERB ASR (``downstream/specaug.py``,
configured in ``downstream/asr/config.yaml``).

It acts on the weighted sum of layers ``[B, T, D]`` while training, in this order: a time
warp of each utterance (a random centre moved by up to ``time_warp_window`` frames, both
sides resized by bicubic interpolation), ``num_freq_masks`` bands of ``[0, 50)`` feature
dimensions and ``num_time_masks`` spans of ``[0, 40)`` frames set to zero per utterance
(mask positions drawn over the batch's padded length, as s3prl does). Random numbers come
from the probe's own generator instead of torch's global one; otherwise the draws are
s3prl's, in its order. Being applied after the frame source, it is valid for cached and
streamed features alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.ctc.recipe import SpecAugment


def spec_augment(
    features: Tensor, lengths: Tensor, config: SpecAugment, generator: torch.Generator
) -> Tensor:
    """Time warp, then feature masks, then time masks (``config``: ``bench.ctc.recipe``)."""
    warped = time_warp(features, lengths, config.time_warp_window, generator)
    masked = mask_along(warped, 2, config.freq_mask_widths, config.num_freq_masks, generator)
    return mask_along(masked, 1, config.time_mask_widths, config.num_time_masks, generator)


def _randint(low: int, high: int, size: tuple[int, ...], generator: torch.Generator) -> Tensor:
    return torch.randint(low, high, size, generator=generator)


def time_warp(features: Tensor, lengths: Tensor, window: int, generator: torch.Generator) -> Tensor:
    """Each utterance's valid frames warped around a random centre; padding becomes zero."""
    out = features.new_zeros(features.shape)
    for i, length in enumerate(lengths.tolist()):
        frames = features[i, :length][None, None]  # [1, 1, T, D]
        if length - window > window:
            centre = int(_randint(window, length - window, (1,), generator))
            moved = int(_randint(centre - window, centre + window, (1,), generator)) + 1
            size = frames.shape[-1]
            left = F.interpolate(
                frames[:, :, :centre], (moved, size), mode="bicubic", align_corners=False
            )
            right = F.interpolate(
                frames[:, :, centre:], (length - moved, size), mode="bicubic", align_corners=False
            )
            frames = torch.cat([left, right], dim=-2)
        out[i, :length] = frames[0, 0]
    return out


def mask_along(
    features: Tensor, dim: int, widths: tuple[int, int], count: int, generator: torch.Generator
) -> Tensor:
    """``count`` zeroed spans per utterance along ``dim`` (1: time, 2: features)."""
    batch, extent = features.shape[0], features.shape[dim]
    width = _randint(widths[0], widths[1], (batch, count), generator).unsqueeze(2)
    start = _randint(0, max(1, extent - int(width.max())), (batch, count), generator).unsqueeze(2)
    positions = torch.arange(extent)[None, None, :]
    mask = ((start <= positions) & (positions < start + width)).any(dim=1)
    mask = mask.unsqueeze(2) if dim == 1 else mask.unsqueeze(1)
    return features.masked_fill(mask.to(features.device), 0.0)
