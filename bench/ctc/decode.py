"""Greedy CTC decoding: the best class per frame, repeats collapsed, then blanks (and the
token set's other dropped tokens) removed, as both of s3prl's CTC experts decode."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bench.ctc.text import TokenSet

#: logits ``[B, T, V]``, valid lengths ``[B]``, the token set -> units per item
Decoder = Callable[[Tensor, Tensor, TokenSet], list[list[str]]]


def greedy_decode(logits: Tensor, lengths: Tensor, tokens: TokenSet) -> list[list[str]]:
    """logits ``[B, T, V]`` with valid lengths ``[B]`` -> one unit sequence per item."""
    best = logits.argmax(dim=-1).cpu()
    decoded = []
    for path, length in zip(best, lengths.tolist(), strict=True):
        collapsed = torch.unique_consecutive(path[:length]).tolist()
        decoded.append(tokens.decode(collapsed))
    return decoded


def greedy(tokens: TokenSet) -> tuple[Decoder, str]:
    """The default final decoding of a CTC task, and its description for the record."""
    return greedy_decode, "greedy"
