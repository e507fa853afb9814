"""Upstream bundles: frozen descriptions of an encoder that know how to build it.

A bundle is cheap to import (no torch); ``build()`` imports the implementation on
demand. This keeps ``bench list`` and ``bench --help`` fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.upstreams.base import Upstream


@dataclass(frozen=True)
class UpstreamBundle:
    """Describes one encoder: where its weights come from and how to build it.

    builder: ``"module:callable"`` returning an ``Upstream``; called with ``options``
        plus the keyword arguments given to ``build``.
    source: a HuggingFace hub id, a local path, or ``"builtin"`` for weight-free encoders.
    num_layers / hidden_size / frame_rate: what ``forward`` returns, for listings;
        None where it is only known once the checkpoint is read.
    remote_code: building it executes Python code that is not part of bench (code
        shipped with a checkpoint; a ``hear:<module>``'s module, which importing runs);
        refused unless the user passes ``--trust-remote-code``.
    extra: the pip extra that provides its dependencies (``pip install bench-ssl[extra]``).
    """

    name: str
    family: str
    builder: str
    source: str = "builtin"
    description: str = ""
    num_layers: int | None = None
    hidden_size: int | None = None
    frame_rate: float | None = None
    sample_rate: int = 16_000
    options: Mapping[str, Any] = field(default_factory=dict)
    remote_code: bool = False
    extra: str | None = None

    def build(self, *, trust_remote_code: bool = False, **overrides: Any) -> Upstream:
        """Build the encoder; a ``remote_code`` bundle needs ``trust_remote_code=True``."""
        if self.remote_code:
            if not trust_remote_code:
                raise RemoteCodeNotTrustedError(self.name, self.source)
            overrides["trust_remote_code"] = True
        module_name, _, attr = self.builder.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        return factory(**{**self.options, **overrides})


class RemoteCodeNotTrustedError(PermissionError):
    """Building would execute Python code that is not part of bench."""

    def __init__(self, name: str, source: str):
        super().__init__(
            f"upstream '{name}' runs Python code that is not part of bench ({source}); "
            "that code executes with your user's full permissions. Read it first, then pass "
            "--trust-remote-code (upstream.trust_remote_code=true in the config; "
            "trust_remote_code=True in Python) to allow it."
        )
