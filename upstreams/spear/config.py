"""SPEAR's ``config.json``, parsed and checked (torch-free, so detectors can use it).

The published checkpoints store per-stack hyper-parameters as comma-separated strings
(``"encoder_dim": "1024,1024,..."``); one value is broadcast to every stack, as the
reference does. Anything this implementation would compute differently from the
reference is refused with an error naming the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SHARDED_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"

#: Per-stack keys that shape the model, with the reference SpearConfig's defaults (Large).
PER_STACK_DEFAULTS: dict[str, str] = {
    "downsampling_factor": "1,2,4,8,4,2,1",
    "num_encoder_layers": "1,2,2,3,1,1,1",
    "encoder_dim": "1024",
    "feedforward_dim": "3072",
    "num_heads": "8",
    "cnn_module_kernel": "31,31,15,15,15,31,31",
}
#: Integer keys that shape the model (the dataclass holds their defaults).
INT_KEYS = ("num_mel_bins", "pos_dim", "output_downsampling_factor")
#: Keys that carry nothing about inference numerics: HF bookkeeping, the training-only
#: masking width, and the streaming settings (used only when causal, which is refused).
IGNORED_KEYS = frozenset(
    {
        "architectures",
        "auto_map",
        "model_type",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "_name_or_path",
        "encoder_unmasked_dim",
        "chunk_size",
        "left_context_frames",
    }
)
KNOWN_KEYS = frozenset(PER_STACK_DEFAULTS) | frozenset(INT_KEYS) | {"causal"} | IGNORED_KEYS
#: Keys a config must have to be recognised as SPEAR's schema without ``model_type``.
SCHEMA_KEYS = frozenset({"downsampling_factor", "num_encoder_layers", "encoder_dim"})


class SpearConfigError(ValueError):
    """A config.json this implementation cannot reproduce exactly."""


@dataclass(frozen=True)
class SpearConfig:
    """Hyper-parameters of a SPEAR (Zipformer2) encoder; one tuple entry per stack."""

    downsampling_factor: tuple[int, ...]
    num_encoder_layers: tuple[int, ...]
    encoder_dim: tuple[int, ...]
    feedforward_dim: tuple[int, ...]
    num_heads: tuple[int, ...]
    cnn_module_kernel: tuple[int, ...]
    num_mel_bins: int = 128
    pos_dim: int = 48
    output_downsampling_factor: int = 1

    # Fixed in the reference code, not read from config.json.
    query_head_dim: int = 32
    pos_head_dim: int = 4
    value_head_dim: int = 12
    frontend_channels: tuple[int, int, int] = (8, 32, 128)

    def __post_init__(self) -> None:
        self._validate()

    @property
    def num_stacks(self) -> int:
        return len(self.downsampling_factor)

    @property
    def num_layers(self) -> int:
        return sum(self.num_encoder_layers)

    @property
    def output_dim(self) -> int:
        """Channels of ``encoder_out``: the widest stack's (see ``full_dim_output``)."""
        return max(self.encoder_dim)

    @property
    def layer_dims(self) -> tuple[int, ...]:
        """Channels of each per-layer hidden state, in layer order."""
        return tuple(
            dim
            for dim, count in zip(self.encoder_dim, self.num_encoder_layers, strict=True)
            for _ in range(count)
        )

    @property
    def frontend_out_width(self) -> int:
        """Frequency bins left after the front end's convolutions (31 for 128 mel bins)."""
        return (((self.num_mel_bins - 1) // 2) - 1) // 2

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SpearConfig:
        """Parse a config.json dict; raises ``SpearConfigError`` naming the offending key."""
        model_type = raw.get("model_type", "spear")
        if model_type != "spear":
            raise SpearConfigError(f"model_type: expected 'spear', got {model_type!r}")
        unknown = sorted(set(raw) - KNOWN_KEYS)
        if unknown:
            raise SpearConfigError(
                f"unknown config key(s) {', '.join(unknown)}: they may change the model's "
                "numerics, which this implementation does not reproduce"
            )
        causal = raw.get("causal", False)
        if causal is not False:
            raise SpearConfigError(
                f"causal: {json.dumps(causal)} is not supported (the causal variant has "
                "different conv modules and chunked attention); only causal: false loads"
            )
        num_stacks = len(
            _int_tuple(
                "downsampling_factor",
                raw.get("downsampling_factor", PER_STACK_DEFAULTS["downsampling_factor"]),
            )
        )
        per_stack = {
            key: _per_stack(key, raw.get(key, default), num_stacks)
            for key, default in PER_STACK_DEFAULTS.items()
        }
        ints = {key: _int(key, raw[key]) for key in INT_KEYS if key in raw}
        return cls(**per_stack, **ints)

    @classmethod
    def from_json_file(cls, path: str | Path) -> SpearConfig:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def _validate(self) -> None:
        for key in PER_STACK_DEFAULTS:
            values = getattr(self, key)
            if len(values) != self.num_stacks:
                raise SpearConfigError(
                    f"{key}: {len(values)} values for {self.num_stacks} stacks ({values})"
                )
            if any(v <= 0 for v in values):
                raise SpearConfigError(f"{key}: every value must be positive, got {values}")
        if any(k % 2 == 0 for k in self.cnn_module_kernel):
            raise SpearConfigError(
                f"cnn_module_kernel: kernels must be odd, got {self.cnn_module_kernel}"
            )
        if self.output_downsampling_factor not in (1, 2):
            raise SpearConfigError(
                f"output_downsampling_factor: only 1 and 2 are supported, got "
                f"{self.output_downsampling_factor}"
            )
        if self.pos_dim <= 0 or self.pos_dim % 2:
            raise SpearConfigError(f"pos_dim: must be a positive even number, got {self.pos_dim}")
        if self.frontend_out_width < 1:
            raise SpearConfigError(f"num_mel_bins: too few for the front end ({self.num_mel_bins})")


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpearConfigError(f"{key}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise SpearConfigError(f"{key}: expected an integer, got {value!r}") from None


def _int_tuple(key: str, value: Any) -> tuple[int, ...]:
    """``"1,2,4"``, ``[1, 2, 4]`` or ``4`` as a tuple of ints."""
    if isinstance(value, str):
        items: list[Any] = [item.strip() for item in value.split(",")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    if not items or items == [""]:
        raise SpearConfigError(f"{key}: empty value")
    return tuple(_int(key, item) for item in items)


def _per_stack(key: str, value: Any, num_stacks: int) -> tuple[int, ...]:
    values = _int_tuple(key, value)
    if len(values) == 1:
        return values * num_stacks
    if len(values) != num_stacks:
        raise SpearConfigError(
            f"{key}: {len(values)} values, but downsampling_factor defines {num_stacks} stacks"
        )
    return values


def is_spear_config(raw: Mapping[str, Any]) -> bool:
    """True for a config.json that declares SPEAR or has its schema."""
    return raw.get("model_type") == "spear" or set(raw) >= SCHEMA_KEYS
