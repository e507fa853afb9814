"""fairseq / unilm wav2vec 2.0-family encoder state dicts onto transformers' modules.

Spin and R-Spin fine-tune s3prl's copies of fairseq's HuBERT and unilm's WavLM; DinoSR
trains fairseq's wav2vec 2.0 encoder with data2vec's positional convolutions. Their
checkpoints hold the original key layout. This module renames those keys onto
transformers' ``HubertModel`` / ``WavLMModel`` / ``Data2VecAudioModel`` (the same
implementations ``hf.py`` runs), infers the architecture from the tensors' shapes, and
checks that every key is used and every parameter is set.

Original layout (fairseq ``wav2vec2.py`` / unilm ``WavLM.py``, read in the Spin, R-Spin
and DinoSR repositories' copies), under the encoder's prefix:

    feature_extractor.conv_layers.{i}.0.{weight,bias}    Conv1d of CNN layer i
    feature_extractor.conv_layers.0.2.{weight,bias}      GroupNorm ("default" mode)
    feature_extractor.conv_layers.{i}.2.1.{weight,bias}  LayerNorm ("layer_norm" mode)
    layer_norm, post_extract_proj, mask_emb              feature projection
    encoder.pos_conv.0.{weight_g,weight_v,bias}          weight-normed positional conv
    encoder.pos_conv.{j}.0.{weight,bias}                 data2vec's stacked positional convs
    encoder.layers.{n}.self_attn.{q,k,v,out}_proj        attention
    encoder.layers.{n}.self_attn.{grep_linear,grep_a,relative_attention_bias}  (WavLM)
    encoder.layers.{n}.{self_attn_layer_norm,fc1,fc2,final_layer_norm}
    encoder.layer_norm
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

Architecture = Literal["hubert", "wavlm", "data2vec-audio"]

#: wav2vec 2.0's CNN: (kernel, stride) of each of its 7 layers (fairseq's
#: ``conv_feature_layers`` default, used by every published Base/Large model).
STANDARD_CONV = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
#: Attention heads of the published widths (fairseq/unilm Base and Large configs).
HEADS_BY_WIDTH = {768: 12, 1024: 16}

_RENAMES = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.",
        r"feature_extractor.conv_layers.\1.layer_norm.",
    ),
    (r"feature_extractor\.conv_layers\.0\.2\.", r"feature_extractor.conv_layers.0.layer_norm."),
    (r"layer_norm\.", r"feature_projection.layer_norm."),
    (r"post_extract_proj\.", r"feature_projection.projection."),
    (r"mask_emb$", r"masked_spec_embed"),
    (
        r"encoder\.pos_conv\.0\.weight_g$",
        r"encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    ),
    (
        r"encoder\.pos_conv\.0\.weight_v$",
        r"encoder.pos_conv_embed.conv.parametrizations.weight.original1",
    ),
    (r"encoder\.pos_conv\.0\.parametrizations\.", r"encoder.pos_conv_embed.conv.parametrizations."),
    (r"encoder\.pos_conv\.0\.bias$", r"encoder.pos_conv_embed.conv.bias"),
    (
        r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.",
        r"encoder.layers.\1.attention.\2_proj.",
    ),
    (
        r"encoder\.layers\.(\d+)\.self_attn\.grep_linear\.",
        r"encoder.layers.\1.attention.gru_rel_pos_linear.",
    ),
    (
        r"encoder\.layers\.(\d+)\.self_attn\.grep_a$",
        r"encoder.layers.\1.attention.gru_rel_pos_const",
    ),
    (
        r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.",
        r"encoder.layers.\1.attention.rel_attn_embed.",
    ),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    (r"encoder\.layer_norm\.", r"encoder.layer_norm."),
)
_COMPILED = [(re.compile(pattern), target) for pattern, target in _RENAMES]
_DATA2VEC_POS_CONV = (
    re.compile(r"encoder\.pos_conv\.(\d+)\.0\."),
    r"encoder.pos_conv_embed.layers.\1.conv.",
)


class LayoutError(ValueError):
    """A state dict that does not have the fairseq/unilm encoder layout expected."""


@dataclass(frozen=True)
class EncoderShape:
    """What the tensors say about the architecture (and what they cannot: heads, norms)."""

    architecture: Architecture
    hidden_size: int
    num_layers: int
    intermediate_size: int
    num_heads: int
    conv_dim: tuple[int, ...]
    conv_bias: bool
    feat_extract_norm: Literal["group", "layer"]
    pos_conv_kernel: int
    pos_conv_groups: int
    pos_conv_depth: int
    num_buckets: int | None
    layer_norm_first: bool


def rename_key(key: str, architecture: Architecture) -> str | None:
    """The transformers name of an original encoder key, or None if it has none."""
    renames = [_DATA2VEC_POS_CONV] if architecture == "data2vec-audio" else []
    for pattern, target in [*renames, *_COMPILED]:
        match = pattern.match(key)
        if match:
            return match.expand(target) + key[match.end() :]
    return None


def _require(state: Mapping[str, Tensor], key: str, what: str) -> Tensor:
    if key not in state:
        raise LayoutError(f"no '{key}' ({what}): not a fairseq/unilm wav2vec 2.0-family encoder")
    return state[key]


def infer_shape(
    state: Mapping[str, Tensor],
    architecture: Architecture,
    *,
    num_heads: int | None = None,
    layer_norm_first: bool = False,
) -> EncoderShape:
    """Read the architecture off the tensors of an original-layout encoder state dict."""
    conv_indices = sorted(
        int(m.group(1))
        for key in state
        if (m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", key))
    )
    if not conv_indices:
        _require(state, "feature_extractor.conv_layers.0.0.weight", "the CNN's first layer")
    kernels = tuple(
        int(state[f"feature_extractor.conv_layers.{i}.0.weight"].shape[-1]) for i in conv_indices
    )
    if kernels != tuple(kernel for kernel, _ in STANDARD_CONV):
        raise LayoutError(
            f"CNN kernels {kernels} are not wav2vec 2.0's {tuple(k for k, _ in STANDARD_CONV)}; "
            "their strides cannot be read from the weights"
        )
    conv_dim = tuple(
        int(state[f"feature_extractor.conv_layers.{i}.0.weight"].shape[0]) for i in conv_indices
    )
    if "feature_extractor.conv_layers.0.2.1.weight" in state:
        norm: Literal["group", "layer"] = "layer"
    elif "feature_extractor.conv_layers.0.2.weight" in state:
        norm = "group"
    else:
        raise LayoutError("the CNN's first layer has neither a group norm nor a layer norm")
    projection = _require(state, "post_extract_proj.weight", "the feature projection")
    hidden = int(projection.shape[0])
    layers = sorted(
        {int(m.group(1)) for key in state if (m := re.match(r"encoder\.layers\.(\d+)\.", key))}
    )
    if layers != list(range(len(layers))) or not layers:
        raise LayoutError(f"transformer layers {layers} are not numbered 0..N-1")
    intermediate = int(_require(state, "encoder.layers.0.fc1.weight", "the first FFN").shape[0])

    buckets = None
    if architecture == "wavlm":
        bias = _require(
            state,
            "encoder.layers.0.self_attn.relative_attention_bias.weight",
            "WavLM's relative position bias",
        )
        buckets, heads_from_weights = int(bias.shape[0]), int(bias.shape[1])
        if num_heads is not None and num_heads != heads_from_weights:
            raise LayoutError(f"num_heads={num_heads}, but the checkpoint has {heads_from_weights}")
        num_heads = heads_from_weights
    if num_heads is None:
        if hidden not in HEADS_BY_WIDTH:
            raise LayoutError(f"width {hidden} is not a published Base/Large width; pass num_heads")
        num_heads = HEADS_BY_WIDTH[hidden]

    if architecture == "data2vec-audio":
        depth = len(
            {
                int(m.group(1))
                for key in state
                if (m := re.match(r"encoder\.pos_conv\.(\d+)\.0\.weight$", key))
            }
        )
        pos_weight = _require(state, "encoder.pos_conv.0.0.weight", "the positional convolutions")
    else:
        depth = 1
        pos_weight = state.get("encoder.pos_conv.0.weight_v")
        if pos_weight is None:
            pos_weight = _require(
                state,
                "encoder.pos_conv.0.parametrizations.weight.original1",
                "the positional convolution",
            )
    return EncoderShape(
        architecture=architecture,
        hidden_size=hidden,
        num_layers=len(layers),
        intermediate_size=intermediate,
        num_heads=num_heads,
        conv_dim=conv_dim,
        conv_bias="feature_extractor.conv_layers.0.0.bias" in state,
        feat_extract_norm=norm,
        pos_conv_kernel=int(pos_weight.shape[-1]),
        pos_conv_groups=hidden // int(pos_weight.shape[1]),
        pos_conv_depth=depth,
        num_buckets=buckets,
        layer_norm_first=layer_norm_first,
    )


def transformers_config(shape: EncoderShape, **overrides: Any) -> Any:
    """The transformers config of that architecture (dropouts off: inference only)."""
    import transformers

    common: dict[str, Any] = {
        "hidden_size": shape.hidden_size,
        "num_hidden_layers": shape.num_layers,
        "num_attention_heads": shape.num_heads,
        "intermediate_size": shape.intermediate_size,
        "conv_dim": shape.conv_dim,
        "conv_kernel": tuple(kernel for kernel, _ in STANDARD_CONV),
        "conv_stride": tuple(stride for _, stride in STANDARD_CONV),
        "conv_bias": shape.conv_bias,
        "num_conv_pos_embedding_groups": shape.pos_conv_groups,
        "layerdrop": 0.0,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "feat_proj_dropout": 0.0,
        "apply_spec_augment": False,
    }
    if shape.architecture == "data2vec-audio":
        common.update(
            num_conv_pos_embeddings=shape.pos_conv_depth, conv_pos_kernel_size=shape.pos_conv_kernel
        )
        if shape.feat_extract_norm != "layer" or shape.layer_norm_first:
            raise LayoutError("data2vec-audio needs a layer-norm CNN and a post-LN transformer")
        return transformers.Data2VecAudioConfig(**common, **overrides)
    common.update(
        num_conv_pos_embeddings=shape.pos_conv_kernel,
        feat_extract_norm=shape.feat_extract_norm,
        do_stable_layer_norm=shape.layer_norm_first,
    )
    if shape.architecture == "wavlm":
        return transformers.WavLMConfig(**common, num_buckets=shape.num_buckets, **overrides)
    return transformers.HubertConfig(**common, feat_proj_layer_norm=True, **overrides)


def remap_state_dict(
    state: Mapping[str, Tensor], architecture: Architecture, ignore: re.Pattern[str] | None = None
) -> dict[str, Tensor]:
    """Rename every key; a key with no transformers name (and not ``ignore``d) is an error."""
    renamed, unknown = {}, []
    for key, tensor in state.items():
        if ignore is not None and ignore.fullmatch(key):
            continue
        target = rename_key(key, architecture)
        if target is None:
            unknown.append(key)
        else:
            renamed[target] = tensor
    if unknown:
        raise LayoutError(f"keys with no place in a {architecture} encoder: {sorted(unknown)[:8]}")
    return renamed


def build_encoder(
    state: Mapping[str, Tensor],
    architecture: Architecture,
    *,
    num_heads: int | None = None,
    layer_norm_first: bool = False,
    ignore: re.Pattern[str] | None = None,
    **config_overrides: Any,
) -> torch.nn.Module:
    """A frozen transformers encoder holding ``state`` (original layout, prefix stripped)."""
    import transformers

    shape = infer_shape(state, architecture, num_heads=num_heads, layer_norm_first=layer_norm_first)
    config = transformers_config(shape, **config_overrides)
    model_class = {
        "hubert": transformers.HubertModel,
        "wavlm": transformers.WavLMModel,
        "data2vec-audio": transformers.Data2VecAudioModel,
    }[architecture]
    model = model_class(config)
    weights = remap_state_dict(state, architecture, ignore)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    misshaped = [
        f"{name}: checkpoint {tuple(weights[name].shape)}, model {tuple(t.shape)}"
        for name, t in expected.items()
        if name in weights and weights[name].shape != t.shape
    ]
    problems = [
        *(f"missing {name}" for name in missing),
        *(f"unexpected {name}" for name in unexpected),
        *(f"shape mismatch {line}" for line in misshaped),
    ]
    if problems:
        raise LayoutError(
            f"{architecture} encoder does not match the checkpoint: " + "; ".join(problems[:10])
        )
    model.load_state_dict({name: t.float() for name, t in weights.items()}, strict=True)
    return model.eval().requires_grad_(False)


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries under ``prefix`` with it removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
