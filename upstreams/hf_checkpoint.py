"""Finding transformers checkpoints: local dirs, the Hugging Face cache, the hub.

Torch-free and transformers-free, so detectors can run while resolving a name (``bench
list``, ``bench check-upstream``) without importing anything heavy. Reading a JSON file
of a hub id uses the local cache first and the network only when the hub is reachable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

from bench.upstreams.bundle import UpstreamBundle

#: transformers ``model_type``s of the wav2vec 2.0 family (CNN front-end + transformer).
SSL_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
WHISPER_MODEL_TYPE = "whisper"
SUPPORTED_MODEL_TYPES = (*SSL_MODEL_TYPES, WHISPER_MODEL_TYPE)

HF_PREFIX = "hf:"
BUILDER = "bench.upstreams.hf:build"
REMOTE_CODE_BUILDER = "bench.upstreams.hf:build_remote_code"


class CheckpointUnavailableError(OSError):
    """A checkpoint that is neither a local dir, nor cached, nor downloadable now."""


def split_revision(spec: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; local paths keep any ``@``."""
    if Path(spec).expanduser().exists():
        return spec, None
    source, at, revision = spec.rpartition("@")
    return (source, revision) if at and source else (spec, None)


def is_local_dir(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def unavailable_message(source: str, revision: str | None = None, cause: object = "") -> str:
    """Why ``source`` could not be read and how to get it."""
    at = f" (revision {revision})" if revision else ""
    fetch = f"hf download {source}" + (f" --revision {revision}" if revision else "")
    where = "HF_HUB_OFFLINE=1 forbids downloading" if hub_offline() else "downloading it failed"
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    detail = f" ({first_line})" if first_line else ""
    return (
        f"checkpoint '{source}'{at} is not a local directory, not in the Hugging Face cache "
        f"({_cache_dir()}), and {where}{detail}. Fetch it on a machine with network access "
        f"(`{fetch}`, or `huggingface-cli download {source}` with older huggingface_hub) and "
        "copy the cache or the folder here, or pass the path of a local checkpoint directory."
    )


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def read_json(
    source: str,
    filename: str,
    revision: str | None = None,
    *,
    cache_only: bool = False,
    optional: bool = False,
) -> dict[str, Any] | None:
    """``filename`` of a checkpoint as a dict; None where the checkpoint has no such file.

    Raises ``CheckpointUnavailableError`` when the file cannot be reached (offline and not
    cached), unless it is ``optional``: a cached checkpoint may lack optional files.
    ``cache_only`` never touches the network and returns None for anything not cached.
    """
    try:
        path = _local_file(source, filename, revision, cache_only=cache_only)
    except CheckpointUnavailableError:
        if optional:
            return None
        raise
    if path is None:
        return None
    with open(path, encoding="utf-8") as file:
        loaded = json.load(file)
    return loaded if isinstance(loaded, dict) else None


def _local_file(
    source: str, filename: str, revision: str | None, *, cache_only: bool
) -> str | None:
    if is_local_dir(source):
        path = Path(source).expanduser() / filename
        return str(path) if path.is_file() else None
    import huggingface_hub
    from huggingface_hub import errors

    try:
        cached = huggingface_hub.try_to_load_from_cache(source, filename, revision=revision)
    except errors.HFValidationError as err:  # not a valid repo id
        if cache_only:
            return None
        raise CheckpointUnavailableError(f"'{source}' is neither a directory nor a hub id") from err
    if isinstance(cached, str):
        return cached
    if cache_only or cached is not None:  # not cached, or cached as known-missing
        return None
    try:
        return huggingface_hub.hf_hub_download(source, filename, revision=revision)
    except errors.LocalEntryNotFoundError as err:  # offline, or the hub unreachable
        raise CheckpointUnavailableError(unavailable_message(source, revision, err)) from err
    except errors.EntryNotFoundError:  # the checkpoint exists but has no such file
        return None
    except (errors.HfHubHTTPError, errors.HFValidationError) as err:
        raise CheckpointUnavailableError(unavailable_message(source, revision, err)) from err
    except OSError as err:  # no network at all
        raise CheckpointUnavailableError(unavailable_message(source, revision, err)) from err


def bundle_for_config(source: str, revision: str | None, config: dict[str, Any]) -> UpstreamBundle:
    """A bundle for a transformers checkpoint, from its config.json."""
    model_type = str(config.get("model_type", ""))
    options: dict[str, Any] = {"source": source}
    if revision:
        options["revision"] = revision
    name = f"{HF_PREFIX}{source}" + (f"@{revision}" if revision else "")
    if model_type in SUPPORTED_MODEL_TYPES:
        is_whisper = model_type == WHISPER_MODEL_TYPE
        layers = config.get("encoder_layers" if is_whisper else "num_hidden_layers")
        return UpstreamBundle(
            name=name,
            family="transformers",
            builder=BUILDER,
            source=source,
            description=f"transformers {model_type} checkpoint {source}",
            num_layers=None if layers is None else int(layers) + 1,
            hidden_size=config.get("d_model" if is_whisper else "hidden_size"),
            frame_rate=50.0,
            options=options,
            extra="hf",
        )
    # Anything else runs through AutoModel with the checkpoint's own code.
    return UpstreamBundle(
        name=name,
        family="transformers-remote-code",
        builder=REMOTE_CODE_BUILDER,
        source=source,
        description=f"transformers checkpoint {source} (model_type '{model_type}', its own code)",
        options=options,
        remote_code=True,
        extra="hf",
    )


def detect_hf_checkpoint(name: str) -> UpstreamBundle | None:
    """``hf:<hub id or dir>[@revision]``, a local dir of a supported family, or a cached hub id.

    The ``hf:`` prefix claims the name for this family (fetching config.json when the hub
    is reachable); bare names are claimed only when their config.json is already on disk
    and names a supported ``model_type``, so other families' checkpoints pass through.
    """
    explicit = name.startswith(HF_PREFIX)
    spec = name[len(HF_PREFIX) :] if explicit else name
    source, revision = split_revision(spec)
    if not explicit and not is_local_dir(source) and source.count("/") != 1:
        return None  # neither a directory nor shaped like a hub id
    try:
        config = read_json(source, "config.json", revision, cache_only=not explicit)
    except (CheckpointUnavailableError, json.JSONDecodeError, UnicodeDecodeError) as err:
        return _unavailable_bundle(name, source, str(err)) if explicit else None
    if config is None:
        missing = f"'{source}' has no config.json, so it is not a transformers checkpoint"
        return _unavailable_bundle(name, source, missing) if explicit else None
    if not explicit and config.get("model_type") not in SUPPORTED_MODEL_TYPES:
        return None
    return bundle_for_config(source, revision, config)


def _unavailable_bundle(name: str, source: str, message: str) -> UpstreamBundle:
    """A claimed checkpoint that cannot be read: building it raises ``message``."""
    return UpstreamBundle(
        name=name,
        family="transformers",
        builder="bench.upstreams.hf_checkpoint:raise_unavailable",
        source=source,
        description=f"transformers checkpoint {source} (unavailable)",
        options={"message": message},
        extra="hf",
    )


def raise_unavailable(message: str) -> NoReturn:
    """Builder of checkpoints the detector could not read: report why, do not retry."""
    raise CheckpointUnavailableError(message)
