"""ABX phone discriminability (Libri-Light, ZeroSpeech 2021), scored by zerospeech-libriabx2.

An ABX error is the rate at which a token X of phone ``x`` is closer (frame-wise DTW on
the chosen distance) to a token B of another phone than to a token A of ``x``; tokens and
their contexts come from a ``.item`` file (see ``bench.tasks.corpora.abx_items``).
Within speaker, A, B and X share a speaker; across speaker, A and B share one and X has
another. "within context" (Libri-Light's and ZeroSpeech 2021's score) also requires A, B
and X to share the preceding and following phone; "any context" (zrc_abx2's addition)
does not.

Every number is the library's own: ``zrc_abx2.eval_ABX.EvalABX`` (the ZeroSpeech team's
reworking of Libri-Light's ``eval_ABX.py``), given the features from memory instead of
one file per utterance. Its ``_ABX`` is the step that ``eval_abx`` runs after listing the
feature files, so the version is pinned (``zerospeech-libriabx2==0.9.8``).

The library imports torchaudio for its CPC feature extractor, which bench never calls;
torchaudio does not load beside every torch build (PyPI's CUDA torchaudio next to a CPU
torch, for one). So while zrc_abx2 is imported, a placeholder stands in for a torchaudio
that is not already loaded; anything that touched it would get a clear error.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "ABX needs zerospeech-libriabx2: pip install --no-deps zerospeech-libriabx2==0.9.8 "
    "(--no-deps keeps pip from installing a torchaudio for another torch build; its other "
    "dependencies come with bench)"
)
DISTANCES = ("cosine", "euclidean", "kl", "kl_symmetric")
POOLINGS = ("none", "mean", "hamming")
SPEAKER_MODES = ("within", "across")


class AbxUnavailable(ImportError):
    """zerospeech-libriabx2 is not installed (or cannot be imported)."""


def abx_available() -> bool:
    return importlib.util.find_spec("zrc_abx2") is not None


def _placeholder_torchaudio() -> types.ModuleType:
    module = types.ModuleType("torchaudio")

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # import machinery and introspection probe these
            raise AttributeError(name)
        raise ImportError(
            f"torchaudio.{name}: bench imported zrc_abx2 without torchaudio, for precomputed "
            "features only; its CPC path needs a torchaudio that matches your torch"
        )

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _evaluator() -> Any:
    """``zrc_abx2.eval_ABX`` (the module), imported as the module docstring says."""
    if not abx_available():
        raise AbxUnavailable(INSTALL_HINT)
    if "zrc_abx2.eval_ABX" in sys.modules:
        return sys.modules["zrc_abx2.eval_ABX"]
    stand_in = "torchaudio" not in sys.modules
    if stand_in:
        sys.modules["torchaudio"] = _placeholder_torchaudio()
    try:
        return importlib.import_module("zrc_abx2.eval_ABX")
    except ImportError as error:
        raise AbxUnavailable(f"zrc_abx2 does not import: {error}. {INSTALL_HINT}") from error
    finally:
        if stand_in:
            sys.modules.pop("torchaudio", None)


@contextlib.contextmanager
def _no_triplets(item_file: Path) -> Iterator[None]:
    """The library fails building an empty sparse tensor when no A, B, X triple exists."""
    try:
        yield
    except RuntimeError as error:
        if "sparse_dim" not in str(error):
            raise
        raise ValueError(
            f"{item_file}: no ABX triplet for a speaker condition: each needs two tokens of one "
            "phone and one of another, in one context (and, within speaker, from one speaker)"
        ) from error


def one_hot(units: np.ndarray, num_units: int) -> np.ndarray:
    """``[T]`` unit ids -> ``[T, num_units]`` float32 one-hot rows (ABX on discrete units)."""
    units = np.asarray(units, dtype=np.int64)
    if units.size and (units.min() < 0 or units.max() >= num_units):
        raise ValueError(f"unit ids must lie in [0, {num_units}), got {units.min()}..{units.max()}")
    rows = np.zeros((len(units), num_units), dtype=np.float32)
    rows[np.arange(len(units)), units] = 1.0
    return rows


def abx_error_rates(
    features: Mapping[str, np.ndarray],
    item_file: Path,
    frame_rate: float,
    *,
    distance: str = "cosine",
    context: str = "within",
    pooling: str = "none",
    max_size_group: int = 10,
    max_x_across: int = 5,
    seed: int = 3459,
    cuda: bool = False,
) -> dict[str, float]:
    """ABX error rates in percent, ``{"within": ..., "across": ...}`` (speaker conditions).

    features: file id of the item file -> ``[T, D]`` frames at ``frame_rate`` Hz from the
        file's start (the library takes a token's frames from its onset and offset);
        tokens of files missing here are left out, as the library does.
    context: "within" (Libri-Light, ZeroSpeech 2021) or "any".
    The other arguments are the library's, with its defaults.
    """
    if distance not in DISTANCES:
        raise ValueError(f"ABX distance must be one of {DISTANCES}, not {distance!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"ABX pooling must be one of {POOLINGS}, not {pooling!r}")
    if context not in ("within", "any"):
        raise ValueError(f"ABX context must be 'within' or 'any', not {context!r}")
    if not features:
        raise ValueError("ABX needs the features of at least one file of the item file")
    module = _evaluator()
    evaluator = module.EvalABX()

    def frames_of(file_id: str) -> Any:
        import torch

        # the library normalises the tensor in place: hand it a fresh float32 copy
        return torch.tensor(np.asarray(features[file_id], dtype=np.float32))

    output = io.StringIO()
    with contextlib.redirect_stdout(output), warnings.catch_warnings(), _no_triplets(item_file):
        # the library builds sparse tensors with constructors torch deprecates
        warnings.filterwarnings("ignore", message=r".*torch\.sparse", category=UserWarning)
        scores = evaluator._ABX(
            evaluator._pooling_type(pooling),
            seed,
            frames_of,
            str(item_file),
            [(file_id, file_id) for file_id in features],
            distance,
            float(frame_rate),
            list(SPEAKER_MODES),
            [context],
            cuda=cuda,
            max_x_across=max_x_across,
            max_size_group=max_size_group,
        )
    log.debug("zrc_abx2 output:\n%s", output.getvalue())
    return {mode: 100.0 * float(scores[f"{mode}-{context}"]) for mode in SPEAKER_MODES}
