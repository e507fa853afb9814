"""fairseq's ``SequenceGenerator`` beam search, as s3prl's ``generatorrc`` configures it.

Per sentence, ``beam`` hypotheses grow one token a step. Each step scores every extension by
its summed log-probability and takes the best ``2 x beam`` candidates over all hypotheses
(at step 0 only the first hypothesis: they are all ``</s>``); a candidate ending in ``</s>``
among the first ``beam`` is finished, its score divided by its length (tokens including
``</s>``) to the power ``len_penalty``; the first ``beam`` other candidates go on. A sentence
is done once it has ``beam`` finished hypotheses, or at ``max_length`` tokens, where ``</s>``
is forced; the best finished score wins (the first on ties). ``<pad>`` is never chosen and
``</s>`` not before ``min_len`` tokens. With ``beam`` 1 this is greedy decoding. A survivor's
parent is always a hypothesis of the same utterance (``reorder`` keeps the encoder memory).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from bench.translation.recipe import EOS, PAD, TranslationRecipe


class Decoder(Protocol):
    def encode(self, frames: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]: ...

    def start(self, memory: Tensor, padded: Tensor) -> object: ...

    def step(self, tokens: Tensor, state: object) -> Tensor: ...


def constrain(log_probs: Tensor, step: int, max_length: int, min_len: int) -> Tensor:
    """fairseq's rules on the next token's log-probabilities (in place; NaN counts as -inf)."""
    log_probs.masked_fill_(torch.isnan(log_probs), -math.inf)
    log_probs[:, PAD] = -math.inf
    if step >= max_length:
        log_probs[:, :EOS] = -math.inf
        log_probs[:, EOS + 1 :] = -math.inf
    if step < min_len:
        log_probs[:, EOS] = -math.inf
    return log_probs


@torch.no_grad()
def beam_search(
    model: Decoder,
    frames: Tensor,
    lengths: Tensor,
    recipe: TranslationRecipe,
    beam: int | None = None,
) -> list[list[int]]:
    """The best hypothesis of each utterance, as token ids without ``</s>``."""
    beam = beam or recipe.beam
    memory, padded = model.encode(frames, lengths)
    batch, device = memory.shape[0], memory.device
    max_length = recipe.max_length(frames.shape[1])
    rows = torch.arange(batch, device=device).repeat_interleave(beam)
    state = model.start(memory.index_select(0, rows), padded.index_select(0, rows))
    tokens = torch.full((batch * beam, 1), EOS, dtype=torch.long, device=device)
    scores = torch.zeros(batch * beam, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    offsets = torch.arange(batch, device=device)[:, None] * beam
    for step in range(max_length + 1):
        log_probs = constrain(model.step(tokens[:, -1], state), step, max_length, recipe.min_len)
        vocabulary = log_probs.shape[1]
        candidates = (scores[:, None] + log_probs).view(batch, beam * vocabulary)
        if step == 0:
            candidates = candidates[:, :vocabulary]
        k = min(2 * beam, candidates.shape[1] - 1)
        if k <= beam:
            raise ValueError(f"beam {beam} needs a vocabulary of more than {beam + 1} tokens")
        top_scores, top_index = candidates.topk(k, dim=1)
        parent_beam = torch.div(top_index, vocabulary, rounding_mode="floor")
        token = top_index % vocabulary
        ended = token.eq(EOS) & torch.isfinite(top_scores)
        for b, j in ended[:, :beam].nonzero().tolist():
            if done[b] or len(finished[b]) >= beam:
                continue
            parent = b * beam + int(parent_beam[b, j])
            score = float(top_scores[b, j]) / (step + 1) ** recipe.len_penalty
            finished[b].append((score, tokens[parent, 1:].tolist()))
        for b in range(batch):
            done[b] = done[b] or len(finished[b]) >= beam or step >= max_length
        if all(done):
            break
        # the first ``beam`` candidates that did not end go on
        rank = ended.long() * (k + 1) + torch.arange(k, device=device)[None]
        pick = rank.topk(beam, dim=1, largest=False).indices
        parents = (offsets + parent_beam.gather(1, pick)).view(-1)
        tokens = torch.cat([tokens[parents], token.gather(1, pick).view(-1, 1)], dim=1)
        scores = top_scores.gather(1, pick).view(-1)
        state.reorder(parents)  # type: ignore[attr-defined]
    return [max(hypotheses, key=lambda h: h[0])[1] if hypotheses else [] for hypotheses in finished]
