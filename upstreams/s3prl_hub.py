"""Any s3prl hub upstream (``s3prl.nn.S3PRLUpstream``) behind bench's interface.

s3prl 0.4.18's interface, as read in its source (``s3prl/nn/upstream.py``):
``S3PRLUpstream(name, path_or_url=None, refresh=False, normalize=False, extra_conf=None)``;
``forward(wavs [B, T], wavs_len [B]) -> (all_hs, all_hs_len)``, one ``[B, T', D]`` tensor
and one ``[B]`` length tensor per layer; ``num_layers``, ``hidden_sizes`` and
``downsample_rates`` (input samples per frame, per layer). It pads or trims every layer
to ``max_len // rate + 1`` frames and reports ``len // rate + 1`` valid frames, so that
is ``num_frames`` here. Its constructor leaves the model in train mode; we switch to eval.

s3prl imports torchaudio at import time; PyPI's torchaudio does not load beside every
torch build (e.g. the CPU torch 2.13 wheel). The error below says which pair works.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bench.upstreams.base import Upstream, UpstreamOutput

#: The torch/torchaudio pair s3prl 0.4.18's recipes run with unmodified (see DESIGN.md).
WORKING_PAIR = "torch==2.8.0 torchaudio==2.8.0"


class S3PRLUnavailableError(ImportError):
    """s3prl is missing or cannot be imported beside this torch."""


def import_s3prl_upstream() -> type:
    """``s3prl.nn.S3PRLUpstream``, or an error that says how to get a working install."""
    try:
        from s3prl.nn import S3PRLUpstream
    except Exception as err:  # s3prl fails with OSError/RuntimeError too when torchaudio breaks
        raise S3PRLUnavailableError(
            f"s3prl upstreams need s3prl, which could not be imported "
            f"({type(err).__name__}: {err}). s3prl imports torchaudio, and torchaudio must "
            f"match torch exactly (this environment has torch {torch.__version__}). In a "
            f"separate virtual environment, install a matching pair first, then s3prl: "
            f"`pip install {WORKING_PAIR} && pip install 'bench-ssl[s3prl]'`."
        ) from err
    return S3PRLUpstream


class S3PRLHubUpstream(Upstream):
    """One s3prl hub entry: all its hidden states at one frame rate.

    Not padding-invariant as far as bench can tell: s3prl's experts pad the batch their
    own way (several with group-norm front-ends), so extraction runs it per utterance.
    """

    padding_invariant = False

    def __init__(self, model: torch.nn.Module, name: str):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.name = name
        rates = set(model.downsample_rates)
        if len(rates) != 1:
            raise ValueError(
                f"s3prl upstream '{name}' has layers at different frame rates "
                f"(downsample rates {sorted(rates)}); bench needs one rate for all layers"
            )
        self.downsample_rate = int(rates.pop())
        self.sample_rate = 16_000  # every s3prl upstream takes 16 kHz audio
        self.frame_rate = self.sample_rate / self.downsample_rate
        self.hidden_sizes = tuple(int(size) for size in model.hidden_sizes)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.downsample_rate + 1

    @torch.no_grad()
    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        all_hs, all_lens = self.model(wavs, wav_lens.to(wavs.device).long())
        return UpstreamOutput([hs.float() for hs in all_hs], all_lens[0].long())

    def hash_extra(self) -> str:
        return f"s3prl:{self.name}"


def build(
    name: str, path_or_url: str | None = None, extra_conf: dict[str, Any] | None = None
) -> S3PRLHubUpstream:
    """``S3PRLUpstream(name, path_or_url)``; checkpoints come from s3prl's own download cache."""
    upstream_class = import_s3prl_upstream()
    model = upstream_class(name, path_or_url=path_or_url, extra_conf=extra_conf)
    return S3PRLHubUpstream(model, name)
