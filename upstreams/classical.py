"""SUPERB's classical baselines: Kaldi filterbanks and MFCCs as one-layer upstreams.

They follow s3prl's ``baseline`` upstream (torchaudio.compliance.kaldi with its defaults,
float waveforms, deltas of order 2 over a 5-frame window, optional per-utterance CMVN).

Why ``fbank`` scores at chance on mean-pooled utterance tasks: per-utterance CMVN makes
the time mean of every feature zero, and SUPERB's utterance head (Linear -> mean pool ->
Linear) sees only that mean. SUPERB's FBANK row shows it; bench reproduces it on purpose.
``fbank_no_cmvn`` keeps the information and is the demo suite's default.
"""

from __future__ import annotations

from torch import Tensor

from bench.upstreams.base import Upstream, UpstreamOutput
from bench.upstreams.kaldi import FbankOptions, KaldiFbank, KaldiMfcc, add_deltas, utterance_cmvn


class KaldiFeatureUpstream(Upstream):
    """Base features + deltas (+ CMVN) at 100 Hz as a single layer."""

    frame_rate = 100.0

    def __init__(
        self, extractor: KaldiFbank | KaldiMfcc, base_dim: int, cmvn: bool, delta_order: int = 2
    ):
        super().__init__()
        self.extractor = extractor
        self.options: FbankOptions = extractor.options
        self.cmvn = cmvn
        self.delta_order = delta_order
        self.hidden_sizes = (base_dim * (delta_order + 1),)

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        feats, lengths = self.extractor(wavs, wav_lens)
        if self.delta_order:
            feats = add_deltas(feats, lengths, order=self.delta_order)
        if self.cmvn:
            feats = utterance_cmvn(feats, lengths)
        return UpstreamOutput(hidden_states=[feats], lengths=lengths)

    def num_frames(self, num_samples: int) -> int:
        return self.options.num_frames(num_samples)

    def hash_extra(self) -> str:
        return f"{type(self.extractor).__name__}:{self.options}:cmvn={self.cmvn}:delta={self.delta_order}"


def fbank(cmvn: bool = True, num_mel_bins: int = 80) -> KaldiFeatureUpstream:
    """80 log-mel filterbanks + deltas + delta-deltas (240 dims)."""
    return KaldiFeatureUpstream(
        KaldiFbank(FbankOptions(num_mel_bins=num_mel_bins)), num_mel_bins, cmvn
    )


def mfcc(cmvn: bool = False, num_ceps: int = 13) -> KaldiFeatureUpstream:
    """13 MFCCs + deltas + delta-deltas (39 dims)."""
    return KaldiFeatureUpstream(KaldiMfcc(num_ceps=num_ceps), num_ceps, cmvn)
