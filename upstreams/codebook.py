"""Encoders that come with their own discrete units (Spin, R-Spin, DinoSR).

``UnitQuantizer`` maps the hidden states of one layer to unit ids, exactly as the family's
own code does after its encoder; ``CodebookUpstream`` is a transformers wav2vec 2.0-family
encoder (``hf.TransformersSSLUpstream``) that also owns such a quantizer. A task that wants
units asks any upstream for ``unit_quantizer()`` (None: it has no units of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.upstreams.base import UpstreamOutput
from bench.upstreams.hf import TransformersSSLUpstream

FrontendState = Literal["projection", "encoder_input"]


class UnitQuantizer(torch.nn.Module):
    """Hidden states of layer ``layer`` -> unit ids in ``[0, num_units)``.

    mode "cosine" (Spin, R-Spin): ``argmax(codebook @ normalize(head(h)))``, the head a
    stack of Linear layers with ReLU between them; ``normalize_codebook`` also scales each
    codeword to unit norm first. mode "logits" (DinoSR's prediction heads):
    ``argmax(head(h))``.
    """

    def __init__(
        self,
        layer: int,
        head: Sequence[tuple[Tensor, Tensor | None]],
        codebook: Tensor | None,
        *,
        mode: Literal["cosine", "logits"],
        normalize_codebook: bool = False,
        description: str = "",
    ):
        super().__init__()
        self.layer = layer
        self.mode = mode
        self.description = description
        self.head = torch.nn.ModuleList()
        for weight, bias in head:
            linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            linear.weight.data.copy_(weight)
            if bias is not None:
                linear.bias.data.copy_(bias)
            self.head.append(linear)
        if mode == "cosine":
            if codebook is None:
                raise ValueError("cosine units need a codebook")
            codebook = codebook.float()
            if normalize_codebook:
                codebook = F.normalize(codebook, dim=1)
            self.register_buffer("codebook", codebook)
            self.num_units = int(codebook.shape[0])
        else:
            self.codebook = None
            self.num_units = int(self.head[-1].out_features)
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, states: Tensor) -> Tensor:
        """states: ``[..., D]`` of layer ``self.layer``; returns ``[...]`` int64 unit ids."""
        x = states.float()
        for index, linear in enumerate(self.head):
            x = linear(x)
            if index < len(self.head) - 1:
                x = F.relu(x)
        if self.mode == "cosine":
            x = F.normalize(x, dim=-1) @ self.codebook.T
        return x.argmax(dim=-1)


class CodebookUpstream(TransformersSSLUpstream):
    """A wav2vec 2.0-family encoder with the family's unit quantizer.

    frontend_state: what state 0 is. "projection": the CNN features after the feature
    projection, before the positional convolution (what Spin's and R-Spin's own feature
    lists and s3prl experts return); "encoder_input": the transformer's input after the
    positional convolution (s3prl's convention for HuBERT/wav2vec 2.0, as ``hf.py``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        quantizer: UnitQuantizer | None,
        *,
        frontend_state: FrontendState,
        normalize: bool = False,
        family: str,
        source: str,
    ):
        super().__init__(model, normalize=normalize, attention_mask=True)
        if frontend_state not in ("projection", "encoder_input"):
            raise ValueError(
                f"frontend_state must be 'projection' or 'encoder_input', not {frontend_state!r}"
            )
        self.quantizer = quantizer
        self.frontend_state = frontend_state
        self.family = family
        self.source = source

    def unit_quantizer(self) -> UnitQuantizer | None:
        return self.quantizer

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        if self.frontend_state == "encoder_input":
            return super().forward(wavs, wav_lens)
        captured: list[Tensor] = []

        def keep(_module: torch.nn.Module, _inputs: object, output: object) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)

        handle = self.model.feature_projection.register_forward_hook(keep)
        try:
            out = super().forward(wavs, wav_lens)
        finally:
            handle.remove()
        out.hidden_states[0] = captured[0].float()
        return out

    @torch.no_grad()
    def units(self, wavs: Tensor, wav_lens: Tensor) -> tuple[Tensor, Tensor]:
        """``([B, T] unit ids, [B] lengths)`` straight from the waveform, in float32."""
        if self.quantizer is None:
            raise ValueError(f"{self.source} has no unit quantizer")
        out = self.forward(wavs, wav_lens)
        return self.quantizer(out.hidden_states[self.quantizer.layer]), out.lengths

    def hash_extra(self) -> str:
        return f"{super().hash_extra()}:{self.family}:frontend={self.frontend_state}"
