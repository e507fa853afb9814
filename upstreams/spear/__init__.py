"""SPEAR (Zipformer2 speech/audio encoder), implemented natively for inference.

Reads the published checkpoints (``config.json`` + ``model.safetensors``) directly: no
transformers remote code, no pickle. Typical use::

    from bench.upstreams.spear import SpearUpstream

    upstream = SpearUpstream.from_pretrained("marcoyang/spear-large-speech")  # or a folder
    out = upstream(wavs, wav_lens)  # out.hidden_states: one [B, T, D] per layer, 50 Hz

Importing this package stays torch-free (the registry's detector parses configs with
``config``); the torch-based names below are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_EXPORTS = {
    "SpearUpstream": "bench.upstreams.spear.upstream",
    "build_spear": "bench.upstreams.spear.upstream",
    "SpearModel": "bench.upstreams.spear.model",
    "SpearEncoderOutput": "bench.upstreams.spear.model",
    "load_spear_model": "bench.upstreams.spear.load",
    "CheckpointNotFoundError": "bench.upstreams.spear.load",
    "CheckpointKeyError": "bench.upstreams.spear.load",
    "SpearConfig": "bench.upstreams.spear.config",
    "SpearConfigError": "bench.upstreams.spear.config",
}

__all__ = sorted(_LAZY_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
