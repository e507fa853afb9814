"""transformers-family encoders: WavLM, HuBERT, wav2vec 2.0, data2vec-audio, remote-code models.

Whisper's encoder lives in ``whisper.py``; ``build`` dispatches on the checkpoint's
``model_type``. transformers is the optional extra ``hf``.

Facts this module relies on (read in transformers 5.23's source, s3prl 0.4.18, fairseq):

- Layers (SUPERB's L+1): s3prl hooks the input of every transformer layer plus the
  encoder's output, i.e. the front-end state (CNN -> projection -> positional conv, and
  the encoder layer norm of post-LN models) followed by the L layer outputs, the last one
  after the final layer norm of pre-LN ("stable layer norm") models. transformers'
  ``hidden_states`` has the same L+1 entries, except that transformers 5 records the last
  one *before* that final norm for pre-LN models (``capture_outputs(tie_last_hidden_states
  =False)``), so we take ``hidden_states[:-1]`` plus ``last_hidden_state``.
- Attention mask: transformers' docs say to pass one only where the checkpoint's
  preprocessor_config.json has ``return_attention_mask: true``; wav2vec2-base (group-norm
  CNN, trained on unpadded crops) must get zero padding and no mask. We follow the
  checkpoint's preprocessor config; without one, layer-norm CNNs get a mask and group-norm
  CNNs do not.
- Input normalisation: fairseq trains layer-norm CNNs on per-utterance zero-mean,
  unit-variance audio and group-norm CNNs on raw audio (fairseq issue 4687; s3prl applies
  ``task.normalize`` the same way). ``do_normalize`` in preprocessor_config.json says which;
  registered bundles pin the training recipe's value.
- Lengths: each CNN layer maps n -> floor((n - kernel) / stride) + 1 (transformers'
  ``_get_feat_extract_output_lengths``); 320 samples per frame, 50 Hz at 16 kHz.
- Padding invariance: a group-norm CNN normalises over the whole padded time axis, and
  data2vec-audio's stacked positional convolutions let padding leak into the last frames,
  so only layer-norm wav2vec2 / HuBERT / WavLM with an attention mask are invariant.
- Weights: transformers prefers model.safetensors and reads .bin only through
  ``torch.load(weights_only=True)`` (``modeling_utils.load_state_dict``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from bench.upstreams.base import Upstream, UpstreamOutput
from bench.upstreams.bundle import RemoteCodeNotTrustedError
from bench.upstreams.hf_checkpoint import (
    SSL_MODEL_TYPES,
    SUPPORTED_MODEL_TYPES,
    WHISPER_MODEL_TYPE,
    CheckpointUnavailableError,
    is_local_dir,
    read_json,
    unavailable_message,
)

INSTALL_HINT = "pip install 'bench-ssl[hf]'"
#: Variance floor of transformers' Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm.
NORMALIZE_EPS = 1e-7


def import_transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise ImportError(
            f"transformers-family upstreams need the 'hf' extra: {INSTALL_HINT}"
        ) from err
    return transformers


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (we check missing weights ourselves)."""
    logging = import_transformers().utils.logging
    previous = logging.get_verbosity()
    bars_were_enabled = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(previous)
        if bars_were_enabled:
            logging.enable_progress_bar()


def float32_kwargs() -> dict[str, Any]:
    """Load in float32 whatever the checkpoint's dtype (transformers 5 renamed the argument)."""
    major = int(import_transformers().__version__.split(".")[0])
    return {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}


def load_config(source: str, revision: str | None = None) -> Any:
    """The checkpoint's transformers config, or a clear error naming what is missing."""
    transformers = import_transformers()
    try:
        return transformers.AutoConfig.from_pretrained(source, revision=revision)
    except OSError as err:
        if is_local_dir(source):
            raise CheckpointUnavailableError(
                f"'{source}' has no readable config.json: {err}"
            ) from err
        raise CheckpointUnavailableError(unavailable_message(source, revision, err)) from err


def conv_output_frames(
    num_samples: Tensor | int, kernels: Sequence[int], strides: Sequence[int]
) -> Tensor | int:
    """Frames a stack of unpadded 1-D convolutions returns for ``num_samples`` inputs."""
    frames = num_samples
    for kernel, stride in zip(kernels, strides, strict=True):
        frames = (frames - kernel) // stride + 1
    return frames.clamp(min=0) if isinstance(frames, Tensor) else max(frames, 0)


def receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Input samples one output frame of the convolution stack sees."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * jump
        jump *= stride
    return field


def normalize_waveforms(wavs: Tensor, valid: Tensor) -> Tensor:
    """Per-utterance zero mean, unit variance over the valid samples; padding stays zero."""
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (wavs * valid).sum(dim=1, keepdim=True) / count
    centred = (wavs - mean) * valid
    variance = centred.square().sum(dim=1, keepdim=True) / count
    return centred / torch.sqrt(variance + NORMALIZE_EPS)


class TransformersSSLUpstream(Upstream):
    """A wav2vec2-family model (wav2vec2, HuBERT, WavLM, data2vec-audio): L+1 states at 50 Hz."""

    def __init__(self, model: torch.nn.Module, *, normalize: bool, attention_mask: bool):
        super().__init__()
        config = model.config
        if getattr(config, "add_adapter", False):
            raise ValueError(
                "checkpoints with an output adapter (add_adapter=True) are not encoders"
            )
        self.model = model.eval().requires_grad_(False)
        self.normalize = normalize
        self.attention_mask = attention_mask
        self.model_type = config.model_type
        self.kernels = tuple(config.conv_kernel)
        self.strides = tuple(config.conv_stride)
        self.sample_rate = 16_000
        self.frame_rate = self.sample_rate / math.prod(self.strides)
        self.hidden_sizes = (config.hidden_size,) * (config.num_hidden_layers + 1)
        layer_norm_cnn = getattr(config, "feat_extract_norm", "layer") == "layer"
        self.padding_invariant = (
            attention_mask and layer_norm_cnn and self.model_type != "data2vec-audio"
        )

    @property
    def first_frame_centre_s(self) -> float:
        return receptive_field(self.kernels, self.strides) / 2 / self.sample_rate

    def num_frames(self, num_samples: int) -> int:
        return conv_output_frames(num_samples, self.kernels, self.strides)

    @torch.no_grad()
    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        wav_lens = wav_lens.to(wavs.device)
        valid = torch.arange(wavs.shape[1], device=wavs.device) < wav_lens[:, None]
        inputs = normalize_waveforms(wavs, valid) if self.normalize else wavs * valid
        mask = valid.long() if self.attention_mask else None
        out = self.model(inputs, attention_mask=mask, output_hidden_states=True)
        states = [*out.hidden_states[:-1], out.last_hidden_state]
        lengths = conv_output_frames(wav_lens.long(), self.kernels, self.strides)
        return UpstreamOutput([state.float() for state in states], lengths)

    def hash_extra(self) -> str:
        return f"{self.model_type}:normalize={self.normalize}:attention_mask={self.attention_mask}"


def build(
    source: str,
    revision: str | None = None,
    *,
    normalize: bool | None = None,
    attention_mask: bool | None = None,
) -> Upstream:
    """Any supported transformers checkpoint (hub id or local dir) as an upstream.

    normalize / attention_mask: None reads the checkpoint's preprocessor_config.json
    (``do_normalize`` / ``return_attention_mask``); ignored for Whisper.
    """
    config = load_config(source, revision)
    if config.model_type == WHISPER_MODEL_TYPE:
        from bench.upstreams.whisper import build_whisper

        return build_whisper(source, revision)
    if config.model_type not in SSL_MODEL_TYPES:
        raise ValueError(
            f"'{source}' is a '{config.model_type}' model; bench runs {', '.join(SUPPORTED_MODEL_TYPES)}. "
            f"If it ships its own modelling code, use 'hf:{source}' with --trust-remote-code."
        )
    preprocessor = read_json(source, "preprocessor_config.json", revision, optional=True) or {}
    layer_norm_cnn = getattr(config, "feat_extract_norm", "layer") == "layer"
    if normalize is None:
        normalize = bool(preprocessor.get("do_normalize", layer_norm_cnn))
    if attention_mask is None:
        attention_mask = bool(preprocessor.get("return_attention_mask", layer_norm_cnn))
    model = _load_model(source, revision)
    return TransformersSSLUpstream(model, normalize=normalize, attention_mask=attention_mask)


def _load_model(source: str, revision: str | None, **kwargs: Any) -> torch.nn.Module:
    transformers = import_transformers()
    try:
        with quiet_transformers():
            model, info = transformers.AutoModel.from_pretrained(
                source, revision=revision, output_loading_info=True, **float32_kwargs(), **kwargs
            )
    except OSError as err:
        raise CheckpointUnavailableError(unavailable_message(source, revision, err)) from err
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"'{source}' lacks weights for {len(missing)} parameters, e.g. {missing[:3]}"
        )
    return model


class RemoteCodeUpstream(Upstream):
    """A model that ships its own code (e.g. USAD), run one utterance at a time.

    The model's code is opaque, so nothing is assumed about padding: each utterance runs
    alone and unpadded (hence padding-invariant by construction), and ``num_frames`` is
    measured by running the model on silence of that length (cached).
    """

    padding_invariant = True

    def __init__(self, model: torch.nn.Module, *, frame_rate: float | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        parameters = inspect.signature(model.forward).parameters
        self._call_kwargs = (
            {"output_hidden_states": True} if "output_hidden_states" in parameters else {}
        )
        self._frame_counts: dict[int, int] = {}
        probe = self._states(torch.zeros(1, self.sample_rate))
        self.hidden_sizes = tuple(state.shape[-1] for state in probe)
        self.frame_rate = frame_rate or self.num_frames(10 * self.sample_rate) / 10

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _states(self, wav: Tensor) -> list[Tensor]:
        out = self.model(wav.to(self._device()), **self._call_kwargs)
        states = (
            out.get("hidden_states")
            if isinstance(out, Mapping)
            else getattr(out, "hidden_states", None)
        )
        if not states:
            returned = sorted(out) if isinstance(out, Mapping) else type(out).__name__
            raise TypeError(
                f"{type(self.model).__name__} returned no 'hidden_states' (it returned "
                f"{returned}); bench needs every layer's states"
            )
        return [state.float() for state in states]

    def num_frames(self, num_samples: int) -> int:
        if num_samples not in self._frame_counts:
            states = self._states(torch.zeros(1, num_samples))
            self._frame_counts[num_samples] = states[0].shape[1]
        return self._frame_counts[num_samples]

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        per_utterance = [
            self._states(wav[None, : int(n)]) for wav, n in zip(wavs, wav_lens, strict=True)
        ]
        lengths = torch.tensor([states[0].shape[1] for states in per_utterance], dtype=torch.long)
        padded = []
        for layer in range(self.num_layers):
            layer_states = [states[layer][0] for states in per_utterance]
            padded.append(torch.nn.utils.rnn.pad_sequence(layer_states, batch_first=True))
        return UpstreamOutput(padded, lengths.to(wavs.device))


def build_remote_code(
    source: str,
    revision: str | None = None,
    *,
    trust_remote_code: bool = False,
    frame_rate: float | None = None,
) -> RemoteCodeUpstream:
    """A checkpoint with its own modelling code, through ``AutoModel(trust_remote_code=True)``."""
    if not trust_remote_code:
        raise RemoteCodeNotTrustedError(source, source)
    model = _load_model(source, revision, trust_remote_code=True)
    return RemoteCodeUpstream(model, frame_rate=frame_rate)
