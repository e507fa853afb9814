"""Tiny random-weight Spin, R-Spin and DinoSR checkpoints in their published formats.

The WavLM weights (and golden outputs) come from tests/fixtures/rspin/ (made with R-Spin's
reference code, see its README); the HuBERT and DinoSR layouts are written here key by
key, as fairseq names them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

FIXTURE = Path(__file__).parent / "fixtures" / "rspin"
#: WavLM-only keys: without them a unilm WavLM state dict is fairseq's HuBERT layout.
WAVLM_ONLY = ("grep_linear", "grep_a", "relative_attention_bias")


def rspin_state() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "tiny_state_dict.safetensors")


def golden() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "tiny_golden.safetensors")


def write_rspin(path: Path) -> Path:
    """The R-Spin release format: ``{"cfg": ..., "state_dict": ...}`` via ``torch.save``."""
    cfg = json.loads((FIXTURE / "tiny_cfg.json").read_text())
    torch.save(
        {
            "cfg": {k: cfg[k] for k in ("codebook_dim", "codebook_size")},
            "state_dict": rspin_state(),
        },
        path,
    )
    return path


def spin_recipe(encoder_type: str, use_layer: int) -> dict:
    """The ``hyper_parameters`` Spin's recipe (config/spin.yaml) leaves in a checkpoint."""
    return {
        "model": {
            "encoder": {
                "type": encoder_type,
                "use_layer": use_layer,
                "normalize": False,
                "feat_select": "x",
                "freeze_layers": ["pos", 0, 1],
            },
            "pred_head": {"type": "DNN", "hid_dims": [8], "dropout": 0, "activation": "ReLU"},
            "loss": {"type": "SwavVQDisentangle", "num_vars": 16, "l2_norm": True, "temp": 0.1},
        },
        "optim": {"optimizer": {"name": "Adam", "args": {"lr": 1e-4}}},
    }


def spin_checkpoint(
    encoder: dict[str, torch.Tensor], head: dict[str, torch.Tensor], recipe: dict
) -> dict:
    """A Lightning checkpoint of ``SpinModel`` (the keys Lightning 2 writes)."""
    state = {f"encoder.model.{k}": v for k, v in encoder.items()}
    state["pred_head.layers.0.weight"] = head["pred_head.weight"]
    state["pred_head.layers.0.bias"] = head["pred_head.bias"]
    state["loss_module.codebook.weight"] = head["codebook.weight"]
    return {
        "epoch": 3,
        "global_step": 5000,
        "pytorch-lightning_version": "2.0.2",
        "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4}}}},
        "callbacks": {
            "ModelCheckpoint{'monitor': None}": {"best_model_path": "", "best_model_score": None}
        },
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-6, "params": [0, 1]}]}],
        "lr_schedulers": [{"last_epoch": 5000, "lr_lambdas": [None]}],
        "hparams_name": "config",
        "hyper_parameters": recipe,
    }


def split_rspin_state() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    state = rspin_state()
    encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    head = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    return encoder, head


def write_spin_wavlm(path: Path, recipe: dict | None = None) -> Path:
    encoder, head = split_rspin_state()
    torch.save(spin_checkpoint(encoder, head, recipe or spin_recipe("WavLM", 2)), path)
    return path


def write_spin_hubert(path: Path, use_layer: int = 2) -> Path:
    encoder, head = split_rspin_state()
    hubert = {k: v for k, v in encoder.items() if not any(part in k for part in WAVLM_ONLY)}
    torch.save(spin_checkpoint(hubert, head, spin_recipe("HuBERT", use_layer)), path)
    return path


def dinosr_model_state(
    *, dim: int = 32, layers: int = 2, heads: int = 2, codebook: int = 16, seed: int = 0
) -> dict:
    """``DinosrModel.state_dict()``: layer-norm CNN, 2 stacked positional convs, 2 heads."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def norm(n: int) -> dict[str, torch.Tensor]:
        return {"weight": 1 + rand(n, scale=0.1), "bias": rand(n, scale=0.1)}

    channels, kernels = 16, (10, 3, 3, 3, 3, 2, 2)
    state: dict[str, torch.Tensor] = {"mask_emb": rand(dim)}
    for i, kernel in enumerate(kernels):
        state[f"feature_extractor.conv_layers.{i}.0.weight"] = rand(
            channels, 1 if i == 0 else channels, kernel
        )
        for name, t in norm(channels).items():
            state[f"feature_extractor.conv_layers.{i}.2.1.{name}"] = t
    for name, t in norm(channels).items():
        state[f"layer_norm.{name}"] = t
    state["post_extract_proj.weight"] = rand(dim, channels)
    state["post_extract_proj.bias"] = rand(dim, scale=0.1)
    for j in range(2):
        state[f"encoder.pos_conv.{j}.0.weight"] = rand(dim, dim // 2, 5)
        state[f"encoder.pos_conv.{j}.0.bias"] = rand(dim, scale=0.1)
    for n in range(layers):
        prefix = f"encoder.layers.{n}."
        for proj in ("q", "k", "v", "out"):
            state[f"{prefix}self_attn.{proj}_proj.weight"] = rand(dim, dim)
            state[f"{prefix}self_attn.{proj}_proj.bias"] = rand(dim, scale=0.1)
        state[f"{prefix}fc1.weight"], state[f"{prefix}fc1.bias"] = (
            rand(64, dim),
            rand(64, scale=0.1),
        )
        state[f"{prefix}fc2.weight"], state[f"{prefix}fc2.bias"] = (
            rand(dim, 64),
            rand(dim, scale=0.1),
        )
        for ln in ("self_attn_layer_norm", "final_layer_norm"):
            for name, t in norm(dim).items():
                state[f"{prefix}{ln}.{name}"] = t
    for name, t in norm(dim).items():
        state[f"encoder.layer_norm.{name}"] = t
    for i in range(heads):
        state[f"heads.{i}.weight"], state[f"heads.{i}.bias"] = (
            rand(codebook, dim),
            rand(codebook, scale=0.1),
        )
        state[f"_codebook{i}"] = rand(codebook, dim)
        state[f"_codebook_cnts{i}"] = torch.ones(codebook)
    # the EMA teacher's weights (a nested dict of the encoder's own names)
    state["_ema"] = {
        k.removeprefix("encoder."): v.clone()
        for k, v in state.items()
        if k.startswith("encoder.layers.")
    }
    return state


def write_dinosr(path: Path, state: dict | None = None, normalize: bool = True) -> Path:
    """A fairseq checkpoint as ``checkpoint_utils.save_state`` writes it (cfg as containers)."""
    checkpoint = {
        "args": None,
        "cfg": {
            "model": {
                "_name": "dinosr",
                "encoder_layers": 2,
                "encoder_attention_heads": 2,
                "average_top_k_layers": 2,
                "layer_norm_first": False,
            },
            "task": {"_name": "audio_pretraining", "normalize": normalize},
        },
        "model": state if state is not None else dinosr_model_state(),
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "ModelCriterion",
                "optimizer_name": "FairseqAdam",
                "num_updates": 400000,
            }
        ],
        "task_state": {},
        "extra_state": {"epoch": 200, "previous_best": None},
    }
    torch.save(checkpoint, path)
    return path
