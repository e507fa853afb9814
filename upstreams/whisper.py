"""Whisper's encoder as an upstream: batched log-mel in torch, 30 s windows, trimmed states.

What Whisper requires, and how this module meets it (transformers 5.23's
``WhisperFeatureExtractor`` and ``WhisperEncoder``):

- Input: an 80- (128 for large-v3) bin log-mel of exactly ``max_source_positions * 2``
  frames (3000 = 30 s); shorter audio is zero-padded to 30 s before the STFT. The log-mel
  is an STFT (400-point periodic Hann window, hop 160, centred, reflect padding) whose last
  frame is dropped, a Slaney-scale, Slaney-normalised mel filter bank over 0-8 kHz,
  log10 clamped at 1e-10, floored at the window's maximum minus 8, then (x + 4) / 4.
  ``WhisperLogMel`` computes it for the whole batch at once; a test checks it against
  ``WhisperFeatureExtractor``.
- States: the convolutional front-end plus positions, then each layer, the last after the
  final layer norm (L+1); 50 Hz (hop 160, conv stride 2).
- Trimming: encoder frame i is centred on sample 320 * i, so an utterance of n samples
  keeps ceil(n / 320) frames: those whose centre lies inside the audio. This equals
  transformers' own length rule (mel mask ``[::160]`` -> ceil(n / 160) mel frames, then
  the encoder's ``(L - 1) // 2 + 1``).
- Longer than 30 s: the audio is cut into consecutive 30 s windows, each encoded on its
  own (no context crosses a window edge, as in Whisper's own long-form use), and the
  trimmed states are concatenated; a full window gives exactly 1500 frames, so the total
  is still ceil(n / 320).
- Padding invariance: every window is zero-padded to 30 s whatever the batch holds, so an
  utterance's states do not depend on its batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.upstreams.base import Upstream, UpstreamOutput
from bench.upstreams.hf import float32_kwargs, import_transformers, quiet_transformers
from bench.upstreams.hf_checkpoint import CheckpointUnavailableError, read_json, unavailable_message

#: Checkpoints of WhisperModel ("encoder.") and WhisperForConditionalGeneration
#: ("model.encoder.") both map onto a bare WhisperEncoder; decoder weights are skipped.
ENCODER_KEY_MAPPING = {r"^model\.encoder\.": "", r"^encoder\.": ""}


def _hz_to_slaney_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale: linear below 1 kHz (3 mel / 200 Hz), logarithmic above."""
    linear = hz * 3.0 / 200.0
    log_part = 15.0 + torch.log(hz.clamp(min=1e-10) / 1000.0) * (27.0 / math.log(6.4))
    return torch.where(hz >= 1000.0, log_part, linear)


def _slaney_mel_to_hz(mel: Tensor) -> Tensor:
    linear = mel * 200.0 / 3.0
    log_part = 1000.0 * torch.exp((mel - 15.0) * (math.log(6.4) / 27.0))
    return torch.where(mel >= 15.0, log_part, linear)


def slaney_mel_filters(
    num_freqs: int, num_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float = 8000.0
) -> Tensor:
    """``[num_freqs, num_mels]`` triangular filters, Slaney-spaced and area-normalised (float64)."""
    fft_hz = torch.linspace(0.0, sample_rate / 2, num_freqs, dtype=torch.float64)
    mel_edges = torch.linspace(
        _hz_to_slaney_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
        _hz_to_slaney_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
        num_mels + 2,
        dtype=torch.float64,
    )
    edges_hz = _slaney_mel_to_hz(mel_edges)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (fft_hz[:, None] - lower) / (centre - lower)
    falling = (upper - fft_hz[:, None]) / (upper - centre)
    triangles = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return triangles * (2.0 / (upper - lower))  # equal area per filter (Slaney norm)


class WhisperLogMel(torch.nn.Module):
    """Whisper's log-mel spectrogram of a batch of equal-length windows."""

    def __init__(
        self, num_mels: int, n_fft: int = 400, hop_length: int = 160, sample_rate: int = 16_000
    ):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        # Derived from the settings, so kept out of state_dict (and the weights hash).
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        filters = slaney_mel_filters(n_fft // 2 + 1, num_mels, sample_rate).float()
        self.register_buffer("filters", filters, persistent=False)

    def forward(self, windows: Tensor) -> Tensor:
        """``[N, samples]`` -> ``[N, num_mels, samples // hop_length]``."""
        spectrum = torch.stft(
            windows, self.n_fft, self.hop_length, window=self.window, return_complex=True
        )
        power = spectrum[..., :-1].abs().square()
        log_mel = torch.clamp(self.filters.T @ power, min=1e-10).log10()
        peak = log_mel.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log_mel, peak - 8.0) + 4.0) / 4.0


class WhisperEncoderUpstream(Upstream):
    """The encoder of a Whisper checkpoint: L+1 states at 50 Hz, trimmed to each utterance."""

    padding_invariant = True
    first_frame_centre_s = 0.0  # frame i is centred on sample 320 * i

    def __init__(
        self,
        encoder: torch.nn.Module,
        *,
        n_fft: int = 400,
        hop_length: int = 160,
        sample_rate: int = 16_000,
    ):
        super().__init__()
        config = encoder.config
        self.encoder = encoder.eval().requires_grad_(False)
        self.log_mel = WhisperLogMel(config.num_mel_bins, n_fft, hop_length, sample_rate)
        self.sample_rate = sample_rate
        self.samples_per_frame = hop_length * encoder.conv1.stride[0] * encoder.conv2.stride[0]
        self.frames_per_window = config.max_source_positions
        self.window_samples = self.frames_per_window * self.samples_per_frame
        self.frame_rate = sample_rate / self.samples_per_frame
        self.hidden_sizes = (config.d_model,) * (config.encoder_layers + 1)

    def num_frames(self, num_samples: int) -> int:
        return -(-num_samples // self.samples_per_frame)

    def hash_extra(self) -> str:
        mel = self.log_mel
        return f"whisper:mels={mel.filters.shape[1]}:n_fft={mel.n_fft}:hop={mel.hop_length}:sr={self.sample_rate}"

    @torch.no_grad()
    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        wav_lens = wav_lens.to(wavs.device).long()
        windows, owner, index_in_utterance, window_lens = self._split_windows(wavs, wav_lens)
        out = self.encoder(self.log_mel(windows), output_hidden_states=True)
        states = [*out.hidden_states[:-1], out.last_hidden_state]
        lengths = -(-wav_lens // self.samples_per_frame)
        window_frames = -(-window_lens // self.samples_per_frame)
        merged = [
            self._merge_windows(state.float(), owner, index_in_utterance, window_frames, lengths)
            for state in states
        ]
        return UpstreamOutput(merged, lengths)

    def _split_windows(
        self, wavs: Tensor, wav_lens: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Cut every utterance into zero-padded 30 s windows, all in one ``[N, samples]`` batch."""
        size = self.window_samples
        batch = wavs.shape[0]
        counts = ((wav_lens + size - 1) // size).clamp(min=1)
        most = int(counts.max())
        wavs = F.pad(wavs[:, : most * size], (0, most * size - min(wavs.shape[1], most * size)))
        owner = torch.repeat_interleave(torch.arange(batch, device=wavs.device), counts)
        first_window = torch.cumsum(counts, 0) - counts
        index_in_utterance = torch.arange(len(owner), device=wavs.device) - first_window[owner]
        window_lens = (wav_lens[owner] - index_in_utterance * size).clamp(0, size)
        windows = wavs.view(batch, most, size)[owner, index_in_utterance]
        valid = torch.arange(size, device=wavs.device) < window_lens[:, None]
        return windows * valid, owner, index_in_utterance, window_lens

    def _merge_windows(
        self,
        state: Tensor,
        owner: Tensor,
        index_in_utterance: Tensor,
        window_frames: Tensor,
        lengths: Tensor,
    ) -> Tensor:
        """Concatenate each utterance's windows, keeping only frames centred inside the audio."""
        frames = torch.arange(state.shape[1], device=state.device)
        keep = frames[None, :] < window_frames[:, None]
        position = index_in_utterance[:, None] * self.frames_per_window + frames[None, :]
        merged = state.new_zeros(len(lengths), int(lengths.max()), state.shape[-1])
        merged[owner[:, None].expand_as(keep)[keep], position[keep]] = state[keep]
        return merged


def build_whisper(source: str, revision: str | None = None) -> WhisperEncoderUpstream:
    """The encoder of a Whisper checkpoint (hub id or local dir); decoder weights are not kept."""
    transformers = import_transformers()
    encoder_class = transformers.models.whisper.modeling_whisper.WhisperEncoder
    preprocessor = read_json(source, "preprocessor_config.json", revision, optional=True) or {}
    try:
        with quiet_transformers():
            encoder, info = encoder_class.from_pretrained(
                source,
                revision=revision,
                key_mapping=ENCODER_KEY_MAPPING,
                output_loading_info=True,
                **float32_kwargs(),
            )
    except OSError as err:
        raise CheckpointUnavailableError(unavailable_message(source, revision, err)) from err
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ValueError(f"'{source}' lacks Whisper encoder weights, e.g. {missing[:3]}")
    return WhisperEncoderUpstream(
        encoder,
        n_fft=int(preprocessor.get("n_fft", 400)),
        hop_length=int(preprocessor.get("hop_length", 160)),
        sample_rate=int(preprocessor.get("sampling_rate", 16_000)),
    )
