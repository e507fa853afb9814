"""SPEAR as a bench ``Upstream``: waveforms in, one hidden state per Zipformer layer out."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict

import torch
from torch import Tensor

from bench.upstreams.base import Upstream, UpstreamOutput
from bench.upstreams.kaldi import FbankOptions, KaldiFbank
from bench.upstreams.spear.load import load_spear_model
from bench.upstreams.spear.model import SpearEncoderOutput, SpearModel

#: Features padded past each utterance's end carry this value, as in the reference.
FBANK_PAD_VALUE = math.log(1e-10)


def spear_fbank_options(num_mel_bins: int = 128) -> FbankOptions:
    """lhotse's ``Fbank(FbankConfig(num_mel_bins=128))``, the reference's features."""
    return FbankOptions(num_mel_bins=num_mel_bins, snip_edges=False, high_freq=-400.0)


class SpearUpstream(Upstream):
    """The SPEAR encoder on 16 kHz float waveforms in [-1, 1] (used as is, no int16 scaling).

    hidden_states: one ``[B, T, D]`` tensor per Zipformer layer at 50 Hz (layers of
    downsampled stacks are repeated back to 50 Hz and trimmed, as the reference returns
    them): 11 for Large, 12 for Base, 13 for XLarge. With ``include_frontend=True`` the
    front end's output (after its BiasNorm) comes first, as an extra layer.

    The output depends on the batch's padding (see ``padding_invariant``), as the
    reference's does; a batch reproduces the reference run on that same batch.
    """

    sample_rate = 16_000
    frame_rate = 50.0
    padding_invariant = False

    def __init__(
        self, model: SpearModel, include_frontend: bool = False, source: str | None = None
    ):
        super().__init__()
        self.model = model
        self.config = model.config
        self.include_frontend = include_frontend
        self.source = source
        self.fbank = KaldiFbank(spear_fbank_options(self.config.num_mel_bins), FBANK_PAD_VALUE)
        frontend = (self.config.encoder_dim[0],) if include_frontend else ()
        self.hidden_sizes = (*frontend, *self.config.layer_dims)
        self.eval().requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        revision: str | None = None,
        include_frontend: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> SpearUpstream:
        """Load from a local checkpoint folder or a HF hub id (``marcoyang/spear-...``)."""
        model, _ = load_spear_model(source, revision=revision, dtype=dtype)
        return cls(model, include_frontend=include_frontend, source=str(source))

    @property
    def layer_names(self) -> list[str]:
        names = [f"zipformer_{i}" for i in range(self.config.num_layers)]
        return ["frontend", *names] if self.include_frontend else names

    @torch.no_grad()
    def encode(self, wavs: Tensor, wav_lens: Tensor) -> SpearEncoderOutput:
        """Every output of the reference model (including ``encoder_out``) for a batch."""
        fbank, fbank_lens = self.fbank(wavs, wav_lens)
        return self.model(fbank.to(self._dtype), fbank_lens)

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        out = self.encode(wavs, wav_lens)
        frontend = [out.frontend_out] if self.include_frontend else []
        return UpstreamOutput(hidden_states=[*frontend, *out.hidden_states], lengths=out.lengths)

    @property
    def first_frame_centre_s(self) -> float:
        """The front end's frame v sees fbank frames 2v .. 2v + 8 (time kernels 3, 3, 3 with
        strides 1, 2, 1; the ConvNeXt is symmetric): centred on fbank frame 2v + 4, 45 ms."""
        fbank = self.fbank.options
        return fbank.first_frame_centre_s + 4 * fbank.window_shift / fbank.sample_rate

    def num_frames(self, num_samples: int) -> int:
        fbank_frames = self.fbank.options.num_frames(num_samples)
        return max(0, (fbank_frames - 7) // 2)

    def hash_extra(self) -> str:
        settings = {
            "config": asdict(self.config),
            "fbank": asdict(self.fbank.options),
            "fbank_pad_value": FBANK_PAD_VALUE,
            "include_frontend": self.include_frontend,
        }
        return json.dumps(settings, sort_keys=True)

    @property
    def _dtype(self) -> torch.dtype:
        return self.model.encoder_embed.out.weight.dtype


def build_spear(
    source: str, revision: str | None = None, include_frontend: bool = False
) -> SpearUpstream:
    """Bundle builder: a SPEAR upstream from a local folder or a hub id."""
    return SpearUpstream.from_pretrained(
        source, revision=revision, include_frontend=include_frontend
    )
