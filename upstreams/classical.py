"""SUPERB's classical baselines: Kaldi filterbanks and MFCCs as one-layer upstreams.

They follow s3prl's ``baseline`` upstream (fbank.yaml, fbank_no_cmvn.yaml, mfcc.yaml):
torchaudio.compliance.kaldi with its defaults on float waveforms (25 ms povey windows every
10 ms, ``snip_edges``, no dither; MFCC: 23 mel bins, 13 cepstra, lifter 22, no energy),
deltas and delta-deltas over a 5-frame window, then per-utterance CMVN (unbiased standard
deviation + 1e-10). The registered names mirror s3prl's: ``fbank`` and ``mfcc`` are
SUPERB's (with CMVN), ``fbank_no_cmvn`` and ``mfcc_no_cmvn`` the same without it.

Why ``fbank`` and ``mfcc`` score at chance on mean-pooled utterance tasks: per-utterance
CMVN makes the time mean of every feature zero, and SUPERB's utterance head (Linear ->
mean pool -> Linear) sees only that mean. SUPERB's FBANK row shows it; bench reproduces it
on purpose. ``fbank_no_cmvn`` keeps the information and is the demo suite's default.

Frame ``i`` covers samples ``[i * shift, i * shift + window)``: centred at 12.5 + 10 i ms.
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

    @property
    def first_frame_centre_s(self) -> float:
        return self.options.first_frame_centre_s

    def num_frames(self, num_samples: int) -> int:
        return self.options.num_frames(num_samples)

    def hash_extra(self) -> str:
        return f"{type(self.extractor).__name__}:{self.options}:cmvn={self.cmvn}:delta={self.delta_order}"


def fbank(cmvn: bool = True, num_mel_bins: int = 80) -> KaldiFeatureUpstream:
    """80 log-mel filterbanks + deltas + delta-deltas (240 dims)."""
    return KaldiFeatureUpstream(
        KaldiFbank(FbankOptions(num_mel_bins=num_mel_bins)), num_mel_bins, cmvn
    )


def mfcc(cmvn: bool = True, num_ceps: int = 13) -> KaldiFeatureUpstream:
    """13 MFCCs + deltas + delta-deltas (39 dims); with CMVN, s3prl's ``mfcc``."""
    return KaldiFeatureUpstream(KaldiMfcc(num_ceps=num_ceps), num_ceps, cmvn)
