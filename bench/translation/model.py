"""fairseq's ``s2t_transformer`` on the layer weighted sum, in plain PyTorch.

weighted sum ``[B, T, L, D] -> [B, T, D]`` -> Conv1d subsampler (x4 in time) -> pre-norm
transformer encoder -> pre-norm transformer decoder with encoder attention -> logits over
the target vocabulary (sizes and sources: ``bench.translation.recipe``). Parameters are
initialised as fairseq does where it is cheap to say (attention projections Xavier-uniform,
q/k/v with gain 1/sqrt(2); embeddings and the output projection N(0, 1/sqrt(512)); other
linear layers PyTorch's default, as fairseq's). Every dropout draws from the head's own
generator (``seed``), so probes trained side by side in threads are reproducible.

Padding: the subsampler zeroes each utterance's frames past its length after every
convolution, and attention never reads padded frames, so an utterance's output does not
depend on its batch (fairseq's convolutions read the neighbours' padding at the end).
``start``/``step``/``reorder`` decode incrementally (self-attention keys and values kept per
layer), as the beam search needs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.featurizer import WeightedSum
from bench.hear.predictor import SeededDropout
from bench.translation.recipe import PAD, TranslationRecipe

#: fairseq's positions start after the padding index (``padding_idx + 1``)
FIRST_POSITION = PAD + 1


def sinusoids(length: int, dim: int, offset: int = 0, device: Any = None) -> Tensor:
    """fairseq's sinusoidal embeddings of positions ``FIRST_POSITION + offset + t``:
    ``[sin(p w_0..w_h-1), cos(p w_0..w_h-1)]`` with ``w_i = 10000^(-i / (h - 1))``."""
    half = dim // 2
    frequencies = torch.exp(
        torch.arange(half, dtype=torch.float, device=device) * -(math.log(10000) / (half - 1))
    )
    positions = torch.arange(length, dtype=torch.float, device=device) + FIRST_POSITION + offset
    angles = positions[:, None] * frequencies[None]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


def subsampled_lengths(lengths: Tensor, layers: int) -> Tensor:
    """fairseq's ``get_out_seq_lens_tensor``: ``floor((n - 1) / 2 + 1)`` per convolution."""
    for _ in range(layers):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


def _time_mask(lengths: Tensor, length: int) -> Tensor:
    """``[B, length]``: True at valid positions."""
    return torch.arange(length, device=lengths.device)[None] < lengths[:, None]


class ConvSubsampler(nn.Module):
    """fairseq's ``Conv1dSubsampler``: stride-2 convolutions, each followed by a GLU."""

    def __init__(self, input_dim: int, channels: int, output_dim: int, kernels: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(
                input_dim if i == 0 else channels // 2,
                channels if i < len(kernels) - 1 else output_dim * 2,
                kernel,
                stride=2,
                padding=kernel // 2,
            )
            for i, kernel in enumerate(kernels)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T, D]``, ``[B]`` -> ``[B, T', D']``, ``[B]`` (zero past each length)."""
        x = x.transpose(1, 2)
        for layer, conv in enumerate(self.convs, start=1):
            x = F.glu(conv(x), dim=1)
            valid = _time_mask(subsampled_lengths(lengths, layer), x.shape[-1])
            x = x * valid[:, None, :].to(x.dtype)
        return x.transpose(1, 2), subsampled_lengths(lengths, len(self.convs))


class Attention(nn.Module):
    """Multi-head attention (fairseq's ``MultiheadAttention``), dropout on the weights."""

    def __init__(self, dim: int, heads: int, dropout: nn.Module):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.out_proj = nn.Linear(dim, dim)
        for projection in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(projection.weight, gain=1 / math.sqrt(2))
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)
        self.dropout = dropout

    def split(self, x: Tensor, projection: nn.Linear) -> Tensor:
        """``[B, T, D]`` -> ``[B, H, T, D / H]``."""
        batch, length, _ = x.shape
        return projection(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)

    def attend(self, query: Tensor, keys: Tensor, values: Tensor, blocked: Tensor | None) -> Tensor:
        """``query`` ``[B, Tq, D]`` on split ``keys``/``values``; ``blocked`` broadcasts to
        ``[B, H, Tq, Tk]`` (True: not attended)."""
        q = self.split(query, self.q_proj) * self.head_dim**-0.5
        scores = q @ keys.transpose(-1, -2)
        if blocked is not None:
            scores = scores.masked_fill(blocked, float("-inf"))
        weights = self.dropout(torch.softmax(scores.float(), dim=-1).to(q.dtype))
        output = (weights @ values).transpose(1, 2).flatten(2)
        return self.out_proj(output)

    def forward(self, query: Tensor, source: Tensor, blocked: Tensor | None) -> Tensor:
        return self.attend(
            query, self.split(source, self.k_proj), self.split(source, self.v_proj), blocked
        )


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: nn.Module):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    """Pre-norm: ``x + drop(attn(LN x))``, then ``x + drop(ffn(LN x))``."""

    def __init__(self, recipe: TranslationRecipe, dropout: nn.Module):
        super().__init__()
        dim = recipe.embed_dim
        self.self_attn = Attention(dim, recipe.heads, dropout)
        self.self_attn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, recipe.ffn_dim, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = dropout

    def forward(self, x: Tensor, blocked: Tensor) -> Tensor:
        normed = self.self_attn_norm(x)
        x = x + self.dropout(self.self_attn(normed, normed, blocked))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderLayer(nn.Module):
    """Pre-norm self-attention (causal), encoder attention and FFN, each residual."""

    def __init__(self, recipe: TranslationRecipe, dropout: nn.Module):
        super().__init__()
        dim = recipe.embed_dim
        self.self_attn = Attention(dim, recipe.heads, dropout)
        self.self_attn_norm = nn.LayerNorm(dim)
        self.encoder_attn = Attention(dim, recipe.heads, dropout)
        self.encoder_attn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, recipe.ffn_dim, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = dropout

    def forward(
        self,
        x: Tensor,
        memory: tuple[Tensor, Tensor],
        memory_blocked: Tensor,
        cache: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """``x`` ``[B, U, D]`` (with ``cache``: the newest position only, ``U = 1``);
        ``memory``: the encoder output's split keys and values for this layer."""
        normed = self.self_attn_norm(x)
        keys = self.self_attn.split(normed, self.self_attn.k_proj)
        values = self.self_attn.split(normed, self.self_attn.v_proj)
        if cache is not None:
            if "k" in cache:
                keys = torch.cat([cache["k"], keys], dim=2)
                values = torch.cat([cache["v"], values], dim=2)
            cache["k"], cache["v"] = keys, values
            causal = None
        else:
            length = x.shape[1]
            causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        x = x + self.dropout(self.self_attn.attend(normed, keys, values, causal))
        attended = self.encoder_attn.attend(self.encoder_attn_norm(x), *memory, memory_blocked)
        x = x + self.dropout(attended)
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderState:
    """An incremental decoding's per-layer caches, encoder memory and position."""

    def __init__(self, memory: list[tuple[Tensor, Tensor]], blocked: Tensor, layers: int):
        self.memory, self.blocked = memory, blocked
        self.caches: list[dict[str, Tensor]] = [{} for _ in range(layers)]
        self.position = 0

    def reorder(self, index: Tensor) -> None:
        """Keep cache rows ``index`` (beam search: each survivor's parent). The encoder memory
        stays: a row's parent is a hypothesis of the same utterance, with the same memory."""
        for cache in self.caches:
            for name in cache:
                cache[name] = cache[name].index_select(0, index)


class SpeechToTextTransformer(nn.Module):
    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        vocabulary_size: int,
        recipe: TranslationRecipe,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.recipe = recipe
        dim = recipe.embed_dim
        self.embed_scale = math.sqrt(dim)
        self.dropout = SeededDropout(recipe.dropout)  # one module: one generator for all
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        self.subsample = ConvSubsampler(input_dim, recipe.conv_channels, dim, recipe.conv_kernels)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(recipe, self.dropout) for _ in range(recipe.encoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(dim)
        self.embed_tokens = nn.Embedding(vocabulary_size, dim, padding_idx=PAD)
        nn.init.normal_(self.embed_tokens.weight, mean=0, std=dim**-0.5)
        with torch.no_grad():
            self.embed_tokens.weight[PAD].zero_()
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(recipe, self.dropout) for _ in range(recipe.decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(dim)
        self.output_projection = nn.Linear(dim, vocabulary_size, bias=False)
        nn.init.normal_(self.output_projection.weight, mean=0, std=dim**-0.5)

    def seed(self, seed: int, device: torch.device | str = "cpu") -> None:
        """Dropout draws from its own generator (probes train side by side in threads)."""
        self.dropout.generator = torch.Generator(device=device).manual_seed(seed + 1)

    def encode(self, frames: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T, L, D]`` frames -> encoder output ``[B, S, E]`` and its padding ``[B, S]``
        (True: padded). Frames past ``max_source_positions`` are cut."""
        limit = self.recipe.max_source_positions
        frames, lengths = frames[:, :limit], lengths.clamp(max=limit).to(frames.device)
        x, lengths = self.subsample(self.featurizer(frames), lengths)
        x = self.embed_scale * x + sinusoids(x.shape[1], x.shape[2], device=x.device)
        x = self.dropout(x)
        padded = ~_time_mask(lengths, x.shape[1])
        blocked = padded[:, None, None, :]
        for layer in self.encoder_layers:
            x = layer(x, blocked)
        return self.encoder_norm(x), padded

    def _memory(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [
            (
                layer.encoder_attn.split(memory, layer.encoder_attn.k_proj),
                layer.encoder_attn.split(memory, layer.encoder_attn.v_proj),
            )
            for layer in self.decoder_layers
        ]

    def _embed(self, tokens: Tensor, offset: int = 0) -> Tensor:
        x = self.embed_scale * self.embed_tokens(tokens)
        x = x + sinusoids(tokens.shape[1], x.shape[-1], offset, device=x.device)
        return self.dropout(x)

    def decode(self, tokens: Tensor, memory: Tensor, padded: Tensor) -> Tensor:
        """Teacher-forced logits ``[B, U, V]`` for the decoder input ``tokens`` ``[B, U]``."""
        x = self._embed(tokens)
        blocked = padded[:, None, None, :]
        for layer, keys_values in zip(self.decoder_layers, self._memory(memory), strict=True):
            x = layer(x, keys_values, blocked)
        return self.output_projection(self.decoder_norm(x))

    def forward(self, frames: Tensor, lengths: Tensor, tokens: Tensor) -> Tensor:
        memory, padded = self.encode(frames, lengths)
        return self.decode(tokens, memory, padded)

    def start(self, memory: Tensor, padded: Tensor) -> DecoderState:
        return DecoderState(
            self._memory(memory), padded[:, None, None, :], len(self.decoder_layers)
        )

    def step(self, tokens: Tensor, state: DecoderState) -> Tensor:
        """Log-probabilities ``[N, V]`` (float32) of the next token after ``tokens`` ``[N]``
        (the newest token of each row), advancing ``state``."""
        x = self._embed(tokens[:, None], state.position)
        for layer, cache, keys_values in zip(
            self.decoder_layers, state.caches, state.memory, strict=True
        ):
            x = layer(x, keys_values, state.blocked, cache)
        state.position += 1
        logits = self.output_projection(self.decoder_norm(x))[:, 0]
        return torch.log_softmax(logits.float(), dim=-1)
