"""Reading ``torch.save`` checkpoints (Lightning ``.ckpt``, fairseq and plain ``.pt``) safely.

Only ``torch.load(weights_only=True)`` ever reads a file: tensors, primitives and plain
containers, never arbitrary code. Training checkpoints also pickle bookkeeping objects
(Lightning's ``AttributeDict``, fairseq's ``argparse.Namespace``, numpy scalars in meter
states...) that the weights-only unpickler refuses. For those, ``load_checkpoint`` names
each such class and reads its instances as inert ``OrderedDict``s that keep the items and
state the pickle gave them (``pickled_class_of`` names the class); none of the original
code runs. The weights never depend on them.

Checkpoint files come from a local path, ``$BENCH_CHECKPOINTS`` (for checkpoints published
only as URLs) or the Hugging Face hub cache (``hf_file``).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

#: Folder searched for checkpoints that are published only as download links.
CHECKPOINT_DIR_ENV = "BENCH_CHECKPOINTS"
DEFAULT_CHECKPOINT_DIR = "~/.cache/bench/checkpoints"


class CheckpointFileError(OSError):
    """A checkpoint file that is missing, unreadable or not in the expected format."""


def _stand_in(dotted_name: str) -> tuple[type, str]:
    """A class registered under ``dotted_name`` whose every use yields an inert OrderedDict.

    Constructing it (pickle's NEWOBJ or REDUCE) returns a plain ``OrderedDict``, which the
    weights-only unpickler lets receive items (SETITEMS) and attribute state (BUILD); the
    original class's name and arguments are kept as attributes (``pickled_class_of``).
    """

    def build(cls: type, *args: Any, **kwargs: Any) -> OrderedDict:
        stand_in = OrderedDict()
        stand_in.__dict__.update(pickled_class=dotted_name, pickled_args=args)
        return stand_in

    short = dotted_name.rsplit(".", 1)[-1]
    return type(short, (), {"__new__": build}), dotted_name


def pickled_class_of(value: Any) -> str | None:
    """The dotted name of the class an inert stand-in replaced, else None."""
    return (
        getattr(value, "__dict__", {}).get("pickled_class")
        if isinstance(value, OrderedDict)
        else None
    )


def plain_state(value: Any) -> Any:
    """``value`` with every stand-in replaced by a plain dict of what the pickle gave it.

    A stand-in receives a dict subclass's items (SETITEMS) and an object's ``__getstate__``
    (BUILD, kept as attributes); both end up in one dict, recursively. For configs pickled
    as custom namespace classes (SpeechCLIP's ``OrderedNamespace``).
    """
    if isinstance(value, OrderedDict) and pickled_class_of(value) is not None:
        state = {k: v for k, v in vars(value).items() if k not in ("pickled_class", "pickled_args")}
        return {key: plain_state(item) for key, item in {**value, **state}.items()}
    if isinstance(value, dict):
        return {key: plain_state(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain_state(item) for item in value)
    return value


def checkpoint_dir() -> Path:
    return Path(os.environ.get(CHECKPOINT_DIR_ENV) or DEFAULT_CHECKPOINT_DIR).expanduser()


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """The object stored at ``path``, read with the weights-only unpickler (on CPU).

    Classes the weights-only unpickler does not know are read as inert ``OrderedDict``s
    (logged once, by name); nothing from the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFileError(f"no checkpoint file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # names classes outside the allowlist: stand them in below
    except (RuntimeError, EOFError, ValueError) as err:
        raise CheckpointFileError(f"{path} is not a readable torch checkpoint: {err}") from err
    try:
        unknown = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as err:  # a file torch cannot even scan
        raise CheckpointFileError(f"{path} is not a readable torch checkpoint: {err}") from err
    log.info(
        "%s pickles %d class(es) outside the weights-only allowlist; reading them as inert "
        "stand-ins (none of their code runs): %s",
        path,
        len(unknown),
        ", ".join(unknown),
    )
    try:
        with torch.serialization.safe_globals([_stand_in(name) for name in unknown]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointFileError(
            f"{path} cannot be read without running code from it ({err}); bench reads "
            "checkpoints with torch.load(weights_only=True) only"
        ) from err


def find_local_checkpoint(filename: str) -> Path | None:
    """``$BENCH_CHECKPOINTS/filename`` if it exists."""
    candidate = checkpoint_dir() / filename
    return candidate if candidate.is_file() else None


def hf_file(
    repo_id: str, filename: str, *, repo_type: str = "model", revision: str | None = None
) -> Path:
    """A file of a hub repository: the local HF cache first, the hub if it is reachable."""
    import huggingface_hub
    from huggingface_hub import errors

    cached = huggingface_hub.try_to_load_from_cache(
        repo_id, filename, revision=revision, repo_type=repo_type
    )
    if isinstance(cached, str):
        return Path(cached)
    try:
        return Path(
            huggingface_hub.hf_hub_download(
                repo_id, filename, revision=revision, repo_type=repo_type
            )
        )
    except (errors.HfHubHTTPError, errors.LocalEntryNotFoundError, OSError, ValueError) as err:
        kind = " --repo-type dataset" if repo_type == "dataset" else ""
        raise CheckpointFileError(
            f"checkpoint {filename} of the hub {repo_type} {repo_id} is not in the Hugging Face "
            f"cache and could not be downloaded ({type(err).__name__}). Fetch it where the hub "
            f"is reachable (`hf download {repo_id} {filename}{kind}`) and copy the cache here, "
            f"or put the file in ${CHECKPOINT_DIR_ENV} ({checkpoint_dir()}), or pass its path "
            "as the upstream name."
        ) from err


def resolve_checkpoint_file(
    filename: str,
    *,
    path: str | None = None,
    hub_repo: str | None = None,
    hub_repo_type: str = "model",
    url: str | None = None,
    revision: str | None = None,
) -> Path:
    """Where a published checkpoint file is: ``path``, ``$BENCH_CHECKPOINTS``, else the hub.

    ``url`` (for checkpoints published only as links) goes into the error message.
    """
    if path is not None:
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise CheckpointFileError(f"no checkpoint file at {resolved}")
        return resolved
    local = find_local_checkpoint(filename)
    if local is not None:
        return local
    if hub_repo is not None:
        return hf_file(hub_repo, filename, repo_type=hub_repo_type, revision=revision)
    where = f" from {url}" if url else ""
    raise CheckpointFileError(
        f"checkpoint {filename} not found: download it{where} into ${CHECKPOINT_DIR_ENV} "
        f"({checkpoint_dir()}), or pass the file's path as the upstream name"
    )
