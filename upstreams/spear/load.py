"""Load SPEAR checkpoints (config.json + model.safetensors) from a folder or the HF hub.

Only safetensors are read: no pickle, no remote code, no transformers. The key check
is strict: every checkpoint tensor must be used, except the few the reference itself
never reads at inference, and every model parameter must be present.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from bench.upstreams.spear.config import (
    CONFIG_NAME,
    SHARDED_WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    SpearConfig,
)
from bench.upstreams.spear.model import SpearModel

#: Prefix of every key in the published checkpoints (HF wrapper -> SpearModel).
CHECKPOINT_PREFIX = "model.model."
#: Checkpoint tensors with no effect at inference (training-time masking embedding, and
#: each layer's own bypass_scale: only bypass.* and bypass_mid.* are used).
UNUSED_KEYS = re.compile(r"mask_emb|encoder\.encoders\.\d+\.(encoder\.)?layers\.\d+\.bypass_scale")


class CheckpointNotFoundError(FileNotFoundError):
    """A SPEAR checkpoint that is neither a local folder nor obtainable from the hub."""


class CheckpointKeyError(KeyError):
    """A state dict whose keys or shapes do not match the model built from its config."""

    def __str__(self) -> str:  # KeyError would print the message repr-quoted
        return str(self.args[0])


def resolve_checkpoint_dir(source: str | os.PathLike[str], revision: str | None = None) -> Path:
    """A local folder holding config.json + weights, downloading ``source`` if it is a hub id.

    With no network (or ``HF_HUB_OFFLINE=1``) an uncached hub id raises
    ``CheckpointNotFoundError`` explaining how to fetch it.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    repo_id = str(source)
    if path.is_absolute() or repo_id.startswith(".") or repo_id.count("/") != 1:
        raise CheckpointNotFoundError(f"no SPEAR checkpoint folder at {repo_id}")

    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=[CONFIG_NAME, "*.safetensors", SHARDED_WEIGHTS_INDEX_NAME],
            )
        )
    except (OSError, ValueError) as err:  # offline, unknown repo or revision, bad id
        raise CheckpointNotFoundError(_fetch_instructions(repo_id, revision, err)) from err


def _fetch_instructions(repo_id: str, revision: str | None, err: Exception) -> str:
    at_revision = f" at revision {revision}" if revision else ""
    revision_flag = f" --revision {revision}" if revision else ""
    return (
        f"SPEAR checkpoint {repo_id!r}{at_revision}: no local folder of that name, not in "
        f"the local HF cache, and it could not be downloaded ({type(err).__name__}). "
        "Fetch it where the hub is reachable:\n"
        f"    hf download {repo_id}{revision_flag} --local-dir <dir>\n"
        f"(or `huggingface-cli download {repo_id}{revision_flag} --local-dir <dir>`), "
        "then pass <dir> instead of the hub id."
    )


def read_state_dict(checkpoint_dir: Path) -> dict[str, Tensor]:
    """All tensors of ``model.safetensors`` (or of its shards, if the checkpoint is sharded)."""
    single = checkpoint_dir / WEIGHTS_NAME
    if single.is_file():
        return load_file(single)
    index = checkpoint_dir / SHARDED_WEIGHTS_INDEX_NAME
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state_dict: dict[str, Tensor] = {}
        for shard in shards:
            state_dict.update(load_file(checkpoint_dir / shard))
        return state_dict
    raise CheckpointNotFoundError(
        f"{checkpoint_dir} has no {WEIGHTS_NAME} (SPEAR weights are read from safetensors only)"
    )


def strip_checkpoint_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the ``model.model.`` prefix and the tensors unused at inference.

    A key without the prefix is an error: it belongs to no known part of the model.
    """
    stripped = {}
    for key, tensor in state_dict.items():
        if not key.startswith(CHECKPOINT_PREFIX):
            raise CheckpointKeyError(f"unexpected key {key} (not under {CHECKPOINT_PREFIX})")
        name = key.removeprefix(CHECKPOINT_PREFIX)
        if not UNUSED_KEYS.fullmatch(name):
            stripped[name] = tensor
    return stripped


def check_keys(model: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raise ``CheckpointKeyError`` naming every missing, unexpected or misshaped key."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{CHECKPOINT_PREFIX}{name}: checkpoint {tuple(state_dict[name].shape)}, model {shape}"
        for name, shape in sorted(expected.items())
        if name in state_dict and tuple(state_dict[name].shape) != shape
    ]
    problems = [
        *(f"missing key {CHECKPOINT_PREFIX}{name}" for name in missing),
        *(f"unexpected key {CHECKPOINT_PREFIX}{name}" for name in unexpected),
        *(f"shape mismatch for {line}" for line in misshaped),
    ]
    if problems:
        raise CheckpointKeyError(
            "checkpoint does not match its config.json:\n  " + "\n  ".join(problems)
        )


def build_model(
    config: SpearConfig, state_dict: Mapping[str, Tensor], dtype: torch.dtype = torch.float32
) -> SpearModel:
    """A frozen, eval-mode ``SpearModel`` holding ``state_dict`` (checkpoint key names)."""
    weights = strip_checkpoint_keys(state_dict)
    with torch.device("meta"):  # no time or memory spent on an initialisation we overwrite
        model = SpearModel(config)
    check_keys(model, weights)
    weights = {name: tensor.to(dtype) for name, tensor in weights.items()}
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_spear_model(
    source: str | os.PathLike[str],
    revision: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[SpearModel, Path]:
    """Build the model stored at ``source`` (a folder or a hub id); returns it and its folder."""
    checkpoint_dir = resolve_checkpoint_dir(source, revision)
    config_path = checkpoint_dir / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointNotFoundError(f"{checkpoint_dir} has no {CONFIG_NAME}")
    config = SpearConfig.from_json_file(config_path)
    return build_model(config, read_state_dict(checkpoint_dir), dtype), checkpoint_dir
