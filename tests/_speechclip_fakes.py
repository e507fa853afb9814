"""Tiny random-weight SpeechCLIP / SpeechCLIP+ Lightning checkpoints in the published layout.

The keys are those ``KWClip_GeneralTransformer.state_dict()`` has (read in the two
repositories' ``avssl/model/kwClip.py``, ``kw_branches.py``, ``speech_encoder_plus.py`` and
``kw_modules/TransformerModels.py``): the branch blocks are made with the same torch
modules, so their keys are torch's own. The config is pickled as an instance of
``avssl.base.ordered_namespace.OrderedNamespace`` (state = its ``_odict``), as Lightning's
``save_hyperparameters()`` leaves it.
"""

from __future__ import annotations

import sys
import types
from collections import OrderedDict
from pathlib import Path

import torch
from _mit_sls_fakes import WAVLM_ONLY, split_rspin_state

WIDTH, HEADS, KEYWORDS = 32, 2, 3


class OrderedNamespace:
    """Pickles like avssl's: ``__getstate__`` returns the ordered dict of entries."""

    def __init__(self, **entries):
        object.__setattr__(self, "_odict", OrderedDict())
        for key, value in entries.items():
            self._odict[key] = OrderedNamespace(**value) if isinstance(value, dict) else value

    def __getstate__(self):
        return self._odict

    def __setstate__(self, state):
        object.__setattr__(self, "_odict", OrderedDict(state))


def _save_with_avssl_class(obj: dict, path: Path) -> None:
    """``torch.save`` with OrderedNamespace importable as avssl.base.ordered_namespace's."""
    names = ("avssl", "avssl.base", "avssl.base.ordered_namespace")
    saved = {name: sys.modules.get(name) for name in names}
    module = types.ModuleType(names[-1])
    module.OrderedNamespace = OrderedNamespace
    OrderedNamespace.__module__, OrderedNamespace.__qualname__ = names[-1], "OrderedNamespace"
    sys.modules.update({names[0]: types.ModuleType(names[0]), names[1]: types.ModuleType(names[1])})
    sys.modules[names[-1]] = module
    try:
        torch.save(obj, path)
    finally:
        OrderedNamespace.__module__ = __name__
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def hubert_state() -> dict[str, torch.Tensor]:
    """A tiny fairseq HuBERT (the R-Spin fixture's WavLM without WavLM's own keys)."""
    encoder, _ = split_rspin_state()
    state = {k: v for k, v in encoder.items() if not any(p in k for p in WAVLM_ONLY)}
    state["label_embs_concat"] = torch.zeros(4, 8)
    state["final_proj.weight"], state["final_proj.bias"] = torch.zeros(8, WIDTH), torch.zeros(8)
    return state


def _prefixed(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().clone() for k, v in module.state_dict().items()}


def _attention_and_norm(heads: int) -> torch.nn.Module:
    """SpeechCLIP's MultiheadAttentionAndNorm: its two submodules, by name."""
    block = torch.nn.Module()
    block.multihead_attn_layer = torch.nn.MultiheadAttention(WIDTH, heads, batch_first=True)
    block.attentionBlock_Norm = torch.nn.LayerNorm(WIDTH)
    with torch.no_grad():
        block.attentionBlock_Norm.weight.uniform_(0.5, 1.5)
        block.attentionBlock_Norm.bias.normal_(0, 0.1)
        block.multihead_attn_layer.in_proj_bias.normal_(0, 0.1)
    return block


def _transformer_encoder() -> torch.nn.Module:
    """SpeechCLIP's TransformerEncoder: ``.model`` an nn.TransformerEncoder with a final norm."""
    layer = torch.nn.TransformerEncoderLayer(
        WIDTH, HEADS, dim_feedforward=48, activation="gelu", batch_first=True
    )
    block = torch.nn.Module()
    block.model = torch.nn.TransformerEncoder(
        layer, 1, torch.nn.LayerNorm(WIDTH), enable_nested_tensor=False
    )
    with torch.no_grad():
        for name, tensor in block.named_parameters():
            if "norm" in name:
                tensor.uniform_(0.5, 1.5) if name.endswith("weight") else tensor.normal_(0, 0.1)
    return block


def _transformer_args(block_type: str, heads: int, *, plus: bool) -> dict:
    args = {
        "n_layers": 1,
        "d_model": WIDTH,
        "nhead": heads,
        "dim_feedforward": 48,
        "dropout": 0.1,
        "activation": "gelu",
        "layer_norm_eps": 1e-5,
        "batch_first": True,
        "norm_first": False,
    }
    return (
        {"transformer_args": {"type": block_type, **args}}
        if plus
        else {
            "transformer_type": block_type,
            "transformer_args": args,
        }
    )


#: kind -> (cascaded branch type in the config, parallel objective, SpeechCLIP+ config style)
KINDS = {
    "parallel": (None, True, False),
    "cascaded": ("KW_CascadedBranch", False, False),
    "cascaded+": ("CascadedBranch_dynamic", False, True),
    "hybrid": ("HybridBranch", True, True),
    "hybrid+": ("HybridBranch_dynamic", True, True),
}


def speechclip_checkpoint(kind: str, *, large: bool = False, seed: int = 0) -> dict:
    """The checkpoint ``KWClip_GeneralTransformer`` of ``kind`` leaves (tiny, random)."""
    torch.manual_seed(seed)
    cascaded_type, parallel, plus = KINDS[kind]
    state = {f"audio_encoder.encoder.{k}": v for k, v in hubert_state().items()}
    state["audio_encoder.weightedsum_layer.weights"] = torch.randn(3)
    state["clip.model.token_embedding.weight"] = torch.randn(10, 16)
    state["clip.model.positional_embedding"] = torch.randn(7, 16)
    state["criterion.temperature"] = torch.tensor(0.07)
    heads = 2 if kind == "hybrid+" else 1
    settings = {
        "cascaded_objective_weight": 0.0 if cascaded_type is None else 1.0,
        "parallel_objective_weight": 1.0 if parallel else 0.0,
        "parallel_branch": _transformer_args("TransformerEncoder", HEADS, plus=plus),
        "cascaded_branch": {
            "type": cascaded_type or "KW_CascadedBranch",
            **_transformer_args("MultiheadAttentionAndNorm", heads, plus=plus),
            "keyword": {"number": KEYWORDS, "batchnorms": {"type": "eachKw", "std_scale": 1.0}},
            "vq": {"type": "SimpleVectorQuantizer", "args": {"temp": "fixed=0.1"}},
        },
    }
    if kind == "parallel":
        state |= _prefixed("parallel_branch.self_att.", _transformer_encoder())
        state["parallel_branch.cls"] = torch.randn(1, 1, WIDTH)
        state |= _prefixed("parallel_branch.linear_proj.", torch.nn.Linear(WIDTH, 16))
    else:
        branch = "cascaded_branch."
        state |= _prefixed(f"{branch}self_att.", _attention_and_norm(heads))
        state |= _prefixed(f"{branch}linear_proj.", torch.nn.Linear(WIDTH, 16))
        state[f"{branch}bn_layer.bn.weight"] = torch.ones(16)
        state[f"{branch}clip.model.token_embedding.weight"] = state[
            "clip.model.token_embedding.weight"
        ]
        if kind == "cascaded":
            state[f"{branch}cls"] = torch.randn(1, KEYWORDS, WIDTH)
        if kind == "hybrid":
            state[f"{branch}parallel_cls"] = torch.randn(1, 1, WIDTH)
            state[f"{branch}cascaded_cls"] = torch.randn(1, KEYWORDS, WIDTH)
        if kind == "hybrid+":
            state[f"{branch}cls"] = torch.randn(1, 1, WIDTH)
        if kind in ("hybrid", "hybrid+"):
            state |= _prefixed(f"{branch}parallel_proj.", torch.nn.Linear(WIDTH, 16))
        if kind in ("cascaded+", "hybrid+"):
            state[f"{branch}downsampling.weight_proj.weight"] = torch.randn(1, WIDTH, 3)
    hubert = "hubert_large_ll60k" if large else "hubert"
    config = OrderedNamespace(
        model_settings=settings,
        audio_encoder={
            "type": "FairseqHubert",
            "name": hubert,
            "pretrained": True,
            "trainable": False,
            "feat_select_idx": "weighted_sum",
            "normalize_hiddenstates": large,
        },
        clip={"name": "ViT-B/32"},
    )
    return {
        "epoch": 131,
        "global_step": 15443,
        "pytorch-lightning_version": "1.6.5",
        "state_dict": state,
        "callbacks": {},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"config": config},
    }


def write_speechclip(path: Path, kind: str, *, large: bool = False) -> Path:
    _save_with_avssl_class(speechclip_checkpoint(kind, large=large), path)
    return path
