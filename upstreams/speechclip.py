"""SpeechCLIP and SpeechCLIP+ (speech branch): frozen HuBERT plus the branch transformer.

Read from the published Lightning checkpoints, no Lightning, fairseq, s3prl or CLIP:

- SpeechCLIP (github.com/atosystem/SpeechCLIP; HF ``speechclip/models``): ``parallel``
  (``KW_ParallelBranch``: a [CLS] token and a 1-layer ``nn.TransformerEncoder``) and
  ``cascaded`` (``KW_CascadedBranch``: 8 keyword tokens and ``MultiheadAttentionAndNorm``,
  i.e. ``LayerNorm(x + MultiheadAttention(x))``).
- SpeechCLIP+ (github.com/ShampooWang/SpeechCLIP_plus; HF ``ShampooWang/speechclip_plus``):
  ``cascaded+`` (``KW_CascadedBranchPlus``: the attention block over the frames alone,
  then CIF), ``hybrid`` (``KW_HybridBranch``: a [CLS] and 8 keyword tokens in one block)
  and ``hybrid+`` (``KW_HybridBranchPlus``: a [CLS] token, then CIF).

Checkpoint: ``state_dict`` with ``audio_encoder.encoder.*`` (fairseq's HuBERT, frozen in
every published config), ``audio_encoder.weightedsum_layer.weights`` and the branch under
``parallel_branch.*`` or ``cascaded_branch.*`` (``cls`` / ``parallel_cls`` /
``cascaded_cls`` tokens, ``self_att.*``); CLIP, the keyword projection, VQ, CIF and the
loss are not read. ``hyper_parameters["config"]`` (an ``OrderedNamespace``, read as plain
data) gives what the weights cannot: the branch type, attention heads, activation and
HuBERT's name (``hubert``/``hubert_base`` or ``hubert_large_ll60k``).

Hidden states, as the models' own ``feature_extractor_s3prl``: HuBERT's L+1 states as
SpeechCLIP's patched fairseq forward returns them (state 0 the transformer input, then
every layer's output; for Large the last one *without* the encoder's final layer norm),
then the branch block's output at the frame positions (the prepended tokens dropped; for
the ``nn.TransformerEncoder`` the output before its final norm). The block's input is
``softmax(weights)``-weighted HuBERT states, each layer-normed first where the config says
``normalize_hiddenstates`` (the Large configs). Audio is layer-normed per utterance where
HuBERT's pre-training task did (Large).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.upstreams.base import UpstreamOutput
from bench.upstreams.fairseq_layout import LayoutError, build_encoder, strip_prefix
from bench.upstreams.hf import TransformersSSLUpstream, conv_output_frames
from bench.upstreams.torch_checkpoint import (
    CheckpointFileError,
    load_checkpoint,
    plain_state,
    resolve_checkpoint_file,
)

log = logging.getLogger(__name__)

SPEECHCLIP_HUB = "speechclip/models"
SPEECHCLIP_PLUS_HUB = "ShampooWang/speechclip_plus"
#: HuBERT pre-training heads fairseq keeps in the model (unused for features).
_HUBERT_TRAINING_KEYS = re.compile(r"label_embs_concat|final_proj\..*")
#: fairseq task.normalize of the HuBERT checkpoints SpeechCLIP loads.
_NORMALIZED_AUDIO = {"hubert": False, "hubert_base": False, "hubert_large_ll60k": True}


@dataclass(frozen=True)
class BranchKind:
    """How one branch type builds its attention block's input."""

    name: str
    #: tokens prepended to the frames, in order (state-dict names under the branch)
    tokens: tuple[str, ...]
    #: ``model_settings.<section>`` whose transformer settings the block uses
    config_section: str


#: Branch types by their (normalised) config name, as SpeechCLIP+'s ``kwClip.py`` maps them.
BRANCH_KINDS = {
    "ParallelBranch": BranchKind("parallel", ("cls",), "parallel_branch"),
    "CascadedBranch": BranchKind("cascaded", ("cls",), "cascaded_branch"),
    "CascadedBranch_plus": BranchKind("cascaded+", (), "cascaded_branch"),
    "HybridBranch": BranchKind("hybrid", ("parallel_cls", "cascaded_cls"), "cascaded_branch"),
    "HybridBranch_plus": BranchKind("hybrid+", ("cls",), "cascaded_branch"),
}


def _branch_type(name: str) -> str:
    return name.replace("KW_", "").replace("dynamic", "plus")


class AttentionAndNorm(torch.nn.Module):
    """``LayerNorm(x + MultiheadAttention(x, x, x))`` (SpeechCLIP's MultiheadAttentionAndNorm)."""

    def __init__(self, width: int, heads: int, eps: float):
        super().__init__()
        self.multihead_attn_layer = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.attentionBlock_Norm = torch.nn.LayerNorm(width, eps=eps)

    def forward(self, x: Tensor, padding: Tensor) -> list[Tensor]:
        attended = self.multihead_attn_layer(x, x, x, key_padding_mask=padding)[0]
        return [self.attentionBlock_Norm(attended + x)]


class EncoderLayers(torch.nn.Module):
    """``nn.TransformerEncoder`` layers; each layer's output, before the final norm."""

    def __init__(self, layers: list[torch.nn.TransformerEncoderLayer]):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x: Tensor, padding: Tensor) -> list[Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
            outputs.append(x)
        return outputs


class Branch(torch.nn.Module):
    """Learned tokens + attention block over a branch's input frames."""

    def __init__(self, kind: BranchKind, tokens: list[Tensor], block: torch.nn.Module):
        super().__init__()
        self.kind = kind.name
        width = next(block.parameters()).shape[-1]
        self.register_buffer(
            "tokens", torch.cat(tokens, dim=1) if tokens else torch.zeros(1, 0, width)
        )
        self.block = block

    @property
    def num_outputs(self) -> int:
        return len(self.block.layers) if isinstance(self.block, EncoderLayers) else 1

    def forward(self, frames: Tensor, lengths: Tensor) -> list[Tensor]:
        """``frames`` ``[B, T, D]`` -> the block's outputs at the frame positions."""
        batch, steps = frames.shape[:2]
        count = self.tokens.shape[1]
        x = torch.cat([self.tokens.expand(batch, -1, -1).to(frames), frames], dim=1)
        padding = torch.arange(count + steps, device=frames.device) >= (lengths[:, None] + count)
        return [out[:, count:] for out in self.block(x, padding)]


def _section(config: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    value: Any = config
    for name in names:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _block(state: Mapping[str, Tensor], section: Mapping[str, Any], where: str) -> torch.nn.Module:
    """The branch's ``self_att`` as the config and the tensors describe it."""
    settings = _section(section, "transformer_args")
    heads = settings.get("nhead")
    if heads is None:
        raise LayoutError(f"{where}: the config gives no transformer_args.nhead")
    eps = float(settings.get("layer_norm_eps", 1e-5))
    attention = "multihead_attn_layer.in_proj_weight" in state
    actual = "MultiheadAttentionAndNorm" if attention else "TransformerEncoder"
    declared = settings.get("type") or section.get("transformer_type")
    if declared is not None and declared != actual:
        raise LayoutError(f"{where}: the config says {declared}, the weights are a {actual}")
    if attention:
        width = int(state["multihead_attn_layer.in_proj_weight"].shape[1])
        block: torch.nn.Module = AttentionAndNorm(width, int(heads), eps)
        weights = state
    else:
        layers = strip_prefix(state, "model.layers.")
        count = len({key.split(".")[0] for key in layers})
        if not count:
            raise LayoutError(
                f"{where}: self_att has neither an attention block nor encoder layers"
            )
        width = int(layers["0.self_attn.in_proj_weight"].shape[1])
        block = EncoderLayers(
            [
                torch.nn.TransformerEncoderLayer(
                    width,
                    int(heads),
                    dim_feedforward=int(layers["0.linear1.weight"].shape[0]),
                    dropout=0.0,
                    activation=str(settings.get("activation", "relu")),
                    layer_norm_eps=eps,
                    batch_first=True,
                    norm_first=bool(settings.get("norm_first", False)),
                )
                for _ in range(count)
            ]
        )
        # the encoder's final norm only follows the CLS output, never the hidden states
        weights = {f"layers.{key}": value for key, value in layers.items()}
        if not {"model.norm.weight", "model.norm.bias"} <= set(state):
            raise LayoutError(f"{where}: self_att.model.norm is missing")
    try:
        block.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    except RuntimeError as err:
        raise LayoutError(f"{where}: self_att does not match its config: {err}") from None
    return block


def _branches(state: Mapping[str, Tensor], config: Mapping[str, Any], path: Path) -> list[Branch]:
    """The checkpoint's branches, in ``feature_extractor_s3prl``'s order (cascaded first)."""
    settings = _section(config, "model_settings")
    found = []
    if float(settings.get("cascaded_objective_weight", 0)) > 0:
        name = _branch_type(str(_section(settings, "cascaded_branch").get("type", "")))
        found.append(("cascaded_branch", name))
    # SpeechCLIP+ builds no parallel branch beside a hybrid one: go by the weights
    if any(key.startswith("parallel_branch.") for key in state):
        found.append(("parallel_branch", "ParallelBranch"))
    if not found:
        raise LayoutError(f"{path}: the checkpoint has neither a cascaded nor a parallel branch")
    branches = []
    for module, name in found:
        if name not in BRANCH_KINDS:
            raise LayoutError(f"{path}: branch type {name!r} is not a published SpeechCLIP branch")
        kind = BRANCH_KINDS[name]
        branch_state = strip_prefix(state, f"{module}.")
        missing = [token for token in kind.tokens if token not in branch_state]
        if missing:
            raise LayoutError(f"{path}: a {kind.name} branch needs {module}.{missing[0]}")
        section = _section(settings, kind.config_section)
        block = _block(strip_prefix(branch_state, "self_att."), section, f"{path} {module}")
        tokens = [branch_state[token].float() for token in kind.tokens]
        branches.append(Branch(kind, tokens, block).eval().requires_grad_(False))
    return branches


class SpeechCLIPUpstream(TransformersSSLUpstream):
    """HuBERT's L+1 states plus each branch's block output (see the module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        layer_weights: Tensor,
        branches: list[Branch],
        *,
        normalize_audio: bool,
        normalize_states: bool,
        source: str,
    ):
        super().__init__(model, normalize=False, attention_mask=True)
        states = model.config.num_hidden_layers + 1
        if layer_weights.shape != (states,):
            raise LayoutError(
                f"{source}: {layer_weights.shape[0]} weighted-sum weights for {states} HuBERT states"
            )
        self.register_buffer("layer_weights", layer_weights.float())
        self.branches = torch.nn.ModuleList(branches)
        self.normalize_audio = normalize_audio
        self.normalize_states = normalize_states
        self.source = source
        extra = sum(branch.num_outputs for branch in branches)
        self.hidden_sizes = (model.config.hidden_size,) * (states + extra)

    @property
    def branch_kinds(self) -> list[str]:
        return [branch.kind for branch in self.branches]

    @torch.no_grad()
    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        wav_lens = wav_lens.to(wavs.device)
        valid = torch.arange(wavs.shape[1], device=wavs.device) < wav_lens[:, None]
        if self.normalize_audio:  # fairseq's F.layer_norm(wav, wav.shape), per utterance
            wavs = torch.stack(
                [
                    F.pad(F.layer_norm(wav[:n], (int(n),)), (0, wavs.shape[1] - int(n)))
                    for wav, n in zip(wavs, wav_lens, strict=True)
                ]
            )
        last_layer: list[Tensor] = []
        hook = self.model.encoder.layers[-1].register_forward_hook(
            lambda _m, _i, out: last_layer.append(out[0] if isinstance(out, tuple) else out)
        )
        try:
            out = self.model(wavs * valid, attention_mask=valid.long(), output_hidden_states=True)
        finally:
            hook.remove()
        # every layer's own output: for pre-LN (Large) the last one before the final norm
        states = [*(s.float() for s in out.hidden_states[:-1]), last_layer[0].float()]
        lengths = conv_output_frames(wav_lens.long(), self.kernels, self.strides)
        stacked = torch.stack(states)
        if self.normalize_states:
            stacked = F.layer_norm(stacked, (stacked.shape[-1],))
        weights = torch.softmax(self.layer_weights, dim=0).view(-1, 1, 1, 1)
        mixed = (weights * stacked).sum(dim=0)
        for branch in self.branches:
            states += branch(mixed, lengths)
        return UpstreamOutput(states, lengths)

    def hash_extra(self) -> str:
        return (
            f"speechclip:{','.join(self.branch_kinds)}:audio_norm={self.normalize_audio}:"
            f"state_norm={self.normalize_states}"
        )


def load_speechclip(
    path: str | Path, *, num_heads: int | None = None, source: str | None = None
) -> SpeechCLIPUpstream:
    """A SpeechCLIP / SpeechCLIP+ Lightning checkpoint as an upstream.

    num_heads: HuBERT's attention heads, needed only for widths other than Base's and Large's.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointFileError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    state = checkpoint["state_dict"]
    config = plain_state(checkpoint.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, Mapping):
        raise CheckpointFileError(
            f"{path} has no hyper_parameters['config'] (the SpeechCLIP recipe): the branch "
            "type and attention heads cannot be read from the weights alone"
        )
    audio = _section(config, "audio_encoder")
    if audio.get("type", "FairseqHubert") != "FairseqHubert":  # every published config
        raise LayoutError(f"{path}: audio encoder type {audio.get('type')!r} is not supported")
    hubert_name = str(audio.get("name", "hubert"))
    if hubert_name not in _NORMALIZED_AUDIO:
        raise LayoutError(f"{path}: audio encoder {hubert_name!r} is not a published HuBERT")
    if audio.get("normalize_hiddenstates") and audio.get("normalize_type", "s3prl") != "s3prl":
        raise LayoutError(
            f"{path}: normalize_type {audio.get('normalize_type')!r} is not supported"
        )
    encoder_state = strip_prefix(state, "audio_encoder.encoder.")
    if not encoder_state or "audio_encoder.weightedsum_layer.weights" not in state:
        raise CheckpointFileError(
            f"{path} is not a SpeechCLIP checkpoint: expected audio_encoder.encoder.* and "
            "audio_encoder.weightedsum_layer.weights (the speech branch's weighted sum)"
        )
    model = build_encoder(
        encoder_state,
        "hubert",
        num_heads=num_heads,
        layer_norm_first=hubert_name == "hubert_large_ll60k",
        ignore=_HUBERT_TRAINING_KEYS,
    )
    branches = _branches(state, config, path)
    log.debug("%s: SpeechCLIP branches %s", path, [b.kind for b in branches])
    return SpeechCLIPUpstream(
        model,
        state["audio_encoder.weightedsum_layer.weights"],
        branches,
        normalize_audio=_NORMALIZED_AUDIO[hubert_name],
        normalize_states=bool(audio.get("normalize_hiddenstates", False)),
        source=source or str(path),
    )


def build_speechclip(
    filename: str,
    hub_repo: str = SPEECHCLIP_HUB,
    path: str | None = None,
    revision: str | None = None,
    num_heads: int | None = None,
) -> SpeechCLIPUpstream:
    """Bundle builder: ``filename`` (its path in the hub repo) from ``path``,
    ``$BENCH_CHECKPOINTS/<filename>``, else the hub."""
    file = resolve_checkpoint_file(filename, path=path, hub_repo=hub_repo, revision=revision)
    return load_speechclip(file, num_heads=num_heads, source=path or f"{hub_repo}/{filename}")
