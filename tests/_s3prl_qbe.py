"""s3prl's QbE match of one query against one document (``downstream/quesst14_dtw``'s
``match`` with its config.yaml settings), restated with the libraries it calls: scipy's
cosine ``cdist``, the distance transform, per-row min-max, then dtw-python's
``dtw(asymmetric, open_begin, open_end)`` and its ``normalizedDistance``. The independent
reference for bench's DTW engine (tests and benchmarks/qbe_dtw.py)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import distance


def local_distances(
    query: np.ndarray, document: np.ndarray, kind: str = "cosine_exp", minmax: bool = True
) -> np.ndarray:
    dist = distance.cdist(query, document, "cosine")
    if kind == "cosine_exp":
        dist = np.exp(dist) - 1
    elif kind == "cosine_neg_log":
        dist = -1 * np.log(1 - dist)
    if minmax:
        low, high = dist.min(1)[:, None], dist.max(1)[:, None]
        dist = (dist - low) / np.clip(high - low, 1e-9, np.inf)
    return dist


def s3prl_match(
    query: np.ndarray, document: np.ndarray, kind: str = "cosine_exp", minmax: bool = True
) -> float:
    from dtw import dtw  # dtw-python, the package s3prl imports as ``dtw``

    result = dtw(
        x=local_distances(query, document, kind, minmax),
        step_pattern="asymmetric",
        keep_internals=False,
        distance_only=False,
        open_begin=True,
        open_end=True,
    )
    return result.normalizedDistance
