"""Encoders ("upstreams") behind one interface; see ``base.Upstream``.

``UPSTREAMS`` maps registered names to ``UpstreamBundle``s (see ``catalog``);
``resolve_upstream`` also accepts what is not registered: a local checkpoint directory
or a hub id whose format a family recognises.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bench.registry import Registry, UnknownNameError
from bench.upstreams.bundle import UpstreamBundle


def _populate() -> None:
    from bench.upstreams import catalog  # noqa: F401  (registers on import)


UPSTREAMS: Registry[UpstreamBundle] = Registry("upstream", populate=_populate)

#: Functions that turn an unregistered name (a local dir, a hub id) into a bundle, or None.
#: Families append theirs.
DETECTORS: list[Callable[[str], UpstreamBundle | None]] = []


class CheckpointNotRecognisedError(ValueError):
    """A path that no family can load; the message says what was found and what is missing."""


def resolve_upstream(name: str) -> UpstreamBundle:
    """The bundle for a registered name, else the first detector that recognises ``name``."""
    if name in UPSTREAMS:
        return UPSTREAMS.get(name)
    for detect in DETECTORS:
        bundle = detect(name)
        if bundle is not None:
            return bundle
    path = Path(name).expanduser()
    if path.exists():
        raise CheckpointNotRecognisedError(describe_unrecognised(name, path))
    if _looks_like_a_path(name):
        raise CheckpointNotRecognisedError(
            f"no checkpoint at '{name}': {path.absolute()} does not exist (and '{name}' is no "
            "registered upstream; `bench list upstreams` shows them)"
        )
    try:
        return UPSTREAMS.get(name)
    except UnknownNameError as error:
        if name.count("/") == 1:  # shaped like a hub id that is not in the local cache
            raise UnknownNameError(
                "upstream", name, error.known, hint=f"For a Hugging Face hub id, use hf:{name}"
            ) from None
        raise


#: files a checkpoint folder's weights come in, by the families bench reads
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def describe_unrecognised(name: str, path: Path) -> str:
    """What is at ``path``, and what a loadable checkpoint would have that it lacks."""
    if path.is_file():
        return (
            f"'{name}' is a file ({path.resolve()}); an upstream is a registered name, a "
            "checkpoint folder (config.json + model.safetensors), a hub id, or s3prl:/hear:"
        )
    entries = sorted(entry.name for entry in path.iterdir())
    shown = ", ".join(entries[:12]) + (
        f" and {len(entries) - 12} more" if len(entries) > 12 else ""
    )
    found = f"found {shown}" if entries else "it is empty"
    config = path / "config.json"
    missing = [] if config.is_file() else ["config.json"]
    if not any((path / weights).is_file() for weights in WEIGHT_FILES):
        missing.append("weights file (model.safetensors or pytorch_model.bin)")
    model_type = _model_type(config)
    declared = f"; config.json declares model_type '{model_type}'" if model_type else ""
    lacks = f", but no {' and no '.join(missing)}" if missing else ""
    return (
        f"no upstream family can load the folder {path.resolve()}: {found}{declared}{lacks}. "
        "bench reads checkpoint folders as config.json + model.safetensors (SPEAR and the "
        "transformers families; docs/upstreams.md lists the others)"
    )


def _model_type(config: Path) -> str | None:
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _looks_like_a_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name
