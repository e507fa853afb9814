"""fairseq's ``label_smoothed_cross_entropy`` as s3prl's expert reduces it."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.translation.recipe import PAD


def label_smoothed_nll(logits: Tensor, targets: Tensor, epsilon: float) -> tuple[Tensor, Tensor]:
    """Summed over the non-padding target tokens: the smoothed loss and the plain NLL.

    ``(1 - eps - eps_i) nll + eps_i sum_v(-log p_v)`` with ``eps_i = eps / (V - 1)``
    (fairseq's ``label_smoothed_nll_loss``); ``logits`` ``[B, U, V]``, ``targets`` ``[B, U]``
    padded with ``PAD``."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    keep = targets.ne(PAD)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    smooth = -log_probs.sum(dim=-1)
    nll, smooth = nll[keep].sum(), smooth[keep].sum()
    eps_i = epsilon / (logits.shape[-1] - 1)
    return (1.0 - epsilon - eps_i) * nll + eps_i * smooth, nll


def sentence_loss(logits: Tensor, targets: Tensor, epsilon: float) -> Tensor:
    """s3prl's ST loss: the summed smoothed loss divided by the batch's sentences."""
    loss, _ = label_smoothed_nll(logits, targets, epsilon)
    return loss / targets.shape[0]
