"""Batched Kaldi-compatible filterbank and MFCC features in plain PyTorch.

One implementation serves the classical SUPERB baselines (torchaudio.compliance.kaldi
settings: ``snip_edges=True``, mel bank up to Nyquist) and SPEAR's front end (lhotse
settings: ``snip_edges=False``, mel bank up to Nyquist - 400 Hz). A padded batch is
computed at once; every frame depends only on its own utterance's samples, so the result
equals computing each utterance alone.

The algorithm is Kaldi's: per frame, remove the DC offset, pre-emphasise, apply the
povey window, take the power spectrum of the zero-padded FFT, apply triangular mel
filters spaced on ``1127 ln(1 + f/700)``, and take ``log(max(energy, float32 eps))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

FLOAT32_EPS = float(torch.finfo(torch.float32).eps)


@dataclass(frozen=True)
class FbankOptions:
    sample_rate: int = 16_000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    #: <= 0 means relative to Nyquist (Kaldi's convention): 0 is Nyquist, -400 is Nyquist - 400
    high_freq: float = 0.0
    preemphasis: float = 0.97
    remove_dc_offset: bool = True
    snip_edges: bool = True

    @property
    def window_size(self) -> int:
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def window_shift(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    @property
    def fft_size(self) -> int:
        return 1 << (self.window_size - 1).bit_length()

    @property
    def first_frame_centre_s(self) -> float:
        """Centre of frame 0 (s): the middle of its window (frame i: this + i * shift).

        ``snip_edges``: frame i starts at ``i * shift``; otherwise (Kaldi's
        ``snip_edges=false``) frame i is centred on ``(i + 1/2) * shift``.
        """
        size, shift = self.window_size, self.window_shift
        first_sample = 0 if self.snip_edges else -((size - shift) // 2)
        return (first_sample + size / 2) / self.sample_rate

    def num_frames(self, num_samples: int) -> int:
        size, shift = self.window_size, self.window_shift
        if self.snip_edges:
            return 0 if num_samples < size else 1 + (num_samples - size) // shift
        return (num_samples + shift // 2) // shift


def povey_window(size: int) -> Tensor:
    """Kaldi's povey window: a symmetric Hann window raised to the power 0.85."""
    n = torch.arange(size, dtype=torch.float64)
    hann = 0.5 - 0.5 * torch.cos(2 * math.pi * n / (size - 1))
    return hann.pow(0.85).to(torch.float32)


def mel_filterbank(options: FbankOptions) -> Tensor:
    """``[fft_size // 2 + 1, num_mel_bins]`` triangular filters; the Nyquist row is zero."""
    nyquist = options.sample_rate / 2
    high = options.high_freq if options.high_freq > 0 else nyquist + options.high_freq
    if not 0 <= options.low_freq < high <= nyquist:
        raise ValueError(f"bad mel range: low_freq={options.low_freq}, high_freq={high}")

    def mel(freq: Tensor | float) -> Tensor:
        return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float32) / 700.0)

    num_bins = options.num_mel_bins
    mel_low, mel_high = mel(options.low_freq), mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    edges = mel_low + delta * torch.arange(num_bins + 2, dtype=torch.float32)
    left, center, right = edges[:-2], edges[1:-1], edges[2:]

    num_fft_bins = options.fft_size // 2
    bin_mel = mel(
        torch.arange(num_fft_bins, dtype=torch.float32) * (options.sample_rate / options.fft_size)
    )
    bin_mel = bin_mel[:, None]
    rising = (bin_mel - left) / (center - left)
    falling = (right - bin_mel) / (right - center)
    weights = torch.where(bin_mel <= center, rising, falling)
    weights = torch.where((bin_mel > left) & (bin_mel < right), weights, torch.zeros(()))
    return torch.cat([weights, torch.zeros(1, num_bins)], dim=0)


def _frame_indices(options: FbankOptions, wav_lens: Tensor, num_frames: int) -> Tensor:
    """``[B, F, window]`` sample indices of every frame, reflected at each utterance's edges."""
    size, shift = options.window_size, options.window_shift
    starts = torch.arange(num_frames) * shift
    if not options.snip_edges:
        starts = starts - (size - shift) // 2
    idx = starts[:, None] + torch.arange(size)[None, :]
    idx = idx[None].expand(len(wav_lens), -1, -1)
    if options.snip_edges:
        return idx
    # Mirror at both edges, the edge sample repeated, until every index is inside
    # (Kaldi reflects repeatedly when an utterance is shorter than a window).
    n = wav_lens.view(-1, 1, 1).clamp(min=1)
    while True:
        outside = (idx < 0) | (idx >= n)
        if not outside.any():
            return idx
        idx = torch.where(idx < 0, -idx - 1, idx)
        idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)


class KaldiFbank(torch.nn.Module):
    """Log-mel filterbank energies of a padded batch.

    forward(wavs ``[B, T]``, wav_lens ``[B]``) -> (feats ``[B, F, num_mel_bins]``, frame_lens ``[B]``);
    frames past an utterance's length are set to ``pad_value``.
    """

    def __init__(self, options: FbankOptions = FbankOptions(), pad_value: float = 0.0):
        super().__init__()
        self.options = options
        self.pad_value = pad_value
        self.register_buffer("window", povey_window(options.window_size), persistent=False)
        self.register_buffer("mel_banks", mel_filterbank(options), persistent=False)

    def frame_lengths(self, wav_lens: Tensor) -> Tensor:
        return torch.tensor([self.options.num_frames(int(n)) for n in wav_lens], dtype=torch.long)

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> tuple[Tensor, Tensor]:
        wavs = wavs.to(torch.float32)
        wav_lens = wav_lens.to(torch.long).cpu()
        frame_lens = self.frame_lengths(wav_lens)
        num_frames = int(frame_lens.max()) if len(frame_lens) else 0
        idx = _frame_indices(self.options, wav_lens, num_frames).to(wavs.device)
        flat = idx.reshape(len(wavs), -1).clamp(max=max(wavs.shape[1] - 1, 0))
        frames = torch.gather(wavs, 1, flat).view(idx.shape)

        if self.options.remove_dc_offset:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        if self.options.preemphasis:
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - self.options.preemphasis * previous
        frames = frames * self.window
        spectrum = torch.fft.rfft(frames, n=self.options.fft_size)
        power = spectrum.real.square() + spectrum.imag.square()
        feats = torch.matmul(power, self.mel_banks).clamp_min(FLOAT32_EPS).log()

        valid = (
            torch.arange(num_frames, device=feats.device)[None, :]
            < frame_lens.to(feats.device)[:, None]
        )
        feats = feats.masked_fill(~valid[..., None], self.pad_value)
        return feats, frame_lens


def dct_matrix(num_filters: int, num_ceps: int) -> Tensor:
    """Kaldi's orthonormal DCT-II, ``[num_filters, num_ceps]``."""
    n = torch.arange(num_filters, dtype=torch.float64)
    k = torch.arange(num_ceps, dtype=torch.float64)
    basis = torch.cos(math.pi / num_filters * (n[:, None] + 0.5) * k[None, :])
    scale = torch.full((num_ceps,), math.sqrt(2.0 / num_filters), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / num_filters)
    return (basis * scale).to(torch.float32)


class KaldiMfcc(torch.nn.Module):
    """Kaldi MFCCs (torchaudio defaults: 23 mel bins, 13 cepstra, lifter 22, no energy)."""

    def __init__(
        self,
        options: FbankOptions = FbankOptions(num_mel_bins=23),
        num_ceps: int = 13,
        cepstral_lifter: float = 22.0,
    ):
        super().__init__()
        self.options = options
        self.fbank = KaldiFbank(options)
        self.register_buffer("dct", dct_matrix(options.num_mel_bins, num_ceps), persistent=False)
        i = torch.arange(num_ceps, dtype=torch.float32)
        lifter = 1.0 + 0.5 * cepstral_lifter * torch.sin(math.pi * i / cepstral_lifter)
        self.register_buffer("lifter", lifter, persistent=False)

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> tuple[Tensor, Tensor]:
        log_mel, frame_lens = self.fbank(wavs, wav_lens)
        return torch.matmul(log_mel, self.dct) * self.lifter, frame_lens


def add_deltas(feats: Tensor, lengths: Tensor, order: int = 2, win_length: int = 5) -> Tensor:
    """Append delta features (torchaudio ``ComputeDeltas``: edge frames replicated).

    Edges are each utterance's own, so padding never leaks into valid frames.
    """
    half = (win_length - 1) // 2
    denom = 2 * sum(n * n for n in range(1, half + 1))
    last = (lengths.to(feats.device) - 1).clamp(min=0).view(-1, 1)
    t = torch.arange(feats.shape[1], device=feats.device).view(1, -1)

    def shifted(x: Tensor, offset: int) -> Tensor:
        """x[t + offset], clamped to each utterance's own first and last frame."""
        index = torch.minimum((t + offset).clamp(min=0), last)
        return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    outputs = [feats]
    for _ in range(order):
        x = outputs[-1]
        delta = sum(n * (shifted(x, n) - shifted(x, -n)) for n in range(1, half + 1))
        outputs.append(delta / denom)
    return torch.cat(outputs, dim=-1)


def utterance_cmvn(feats: Tensor, lengths: Tensor, eps: float = 1e-10) -> Tensor:
    """Per-utterance mean and variance normalisation over valid frames (s3prl's CMVN:
    unbiased standard deviation, ``eps`` added to it)."""
    mask = (
        torch.arange(feats.shape[1], device=feats.device)[None, :]
        < lengths.to(feats.device)[:, None]
    )
    mask = mask[..., None].to(feats.dtype)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (feats * mask).sum(dim=1, keepdim=True) / count
    var = ((feats - mean).square() * mask).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    return (feats - mean) / (var.sqrt() + eps) * mask
