"""Throughput of SUPERB QbE's DTW (``bench.protocols.dtw.subsequence_costs``).

On random frames of QUESST-like shapes (queries of 0.4-1.6 s and documents of 2-8 s at the
upstream's frame rate, ``--dim`` features), every query against every document:

(a) bench's engine: blocks of queries x documents, one matrix product per block, the
    recursion vectorised over the block (``--device cpu`` or ``cuda``);
(b) s3prl's way, the reference: one pair at a time, scipy's ``cdist`` (cosine), its
    ``exp(d) - 1`` and min-max, then dtw-python's ``dtw(asymmetric, open_begin, open_end)``
    (``pip install dtw-python``), in a process pool of as many workers as (a) has threads
    (s3prl's ``ProcessPoolExecutor``); without dtw-python, a plain NumPy loop of the same
    recursion stands in and is labelled so.

(b) is slow, so both run on the same first ``--reference-queries`` queries (all documents);
(a) then runs on every query for its throughput at size. Figures are frame pairs (query
frames x document frames) per second, and the ratio (a) / (b) within this run; the largest
difference between the two costs checks that they compute the same thing. The load average
is printed: other processes on the machine distort every figure. Not a test: run it by
hand, ``python benchmarks/qbe_dtw.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench sets it, before torch loads

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bench.protocols.dtw import subsequence_costs
from bench.runtime import configure_threads

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _s3prl_qbe import local_distances, s3prl_match


def numpy_pair(query: np.ndarray, document: np.ndarray) -> float:
    """The same pair with a NumPy recursion (when dtw-python is not installed)."""
    dist = local_distances(query, document)
    cost = dist[0].copy()
    for row in dist[1:]:
        previous = np.concatenate([[np.inf, np.inf], cost])
        cost = row + np.minimum(np.minimum(previous[2:], previous[1:-1]), previous[:-2])
    return float(cost.min() / len(dist))


def reference_pair() -> tuple[str, Callable[[np.ndarray, np.ndarray], float]]:
    try:
        import dtw  # noqa: F401
    except ImportError:
        return "plain NumPy loop (dtw-python not installed)", numpy_pair
    return "s3prl: scipy cdist + dtw-python, pair by pair", s3prl_match


def random_frames(count: int, seconds: tuple[float, float], rate: float, dim: int, rng):
    return [
        rng.standard_normal((max(1, round(rng.uniform(*seconds) * rate)), dim)).astype(np.float32)
        for _ in range(count)
    ]


def cells(queries, documents) -> int:
    return sum(len(q) for q in queries) * sum(len(d) for d in documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--reference-queries", type=int, default=8)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--frame-rate", type=float, default=50.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    configure_threads(args.threads)
    rng = np.random.default_rng(0)
    queries = random_frames(args.queries, (0.4, 1.6), args.frame_rate, args.dim, rng)
    documents = random_frames(args.documents, (2.0, 8.0), args.frame_rate, args.dim, rng)
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}"
    )
    print(
        f"{args.queries} queries x {args.documents} documents, {args.dim} dims at "
        f"{args.frame_rate:g} Hz: {cells(queries, documents) / 1e9:.2f} G frame pairs"
    )

    def engine(chosen):
        started = time.perf_counter()
        costs = subsequence_costs(
            [torch.from_numpy(q) for q in chosen],
            [torch.from_numpy(d) for d in documents],
            device=args.device,
        )
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return costs, time.perf_counter() - started

    subset = queries[: args.reference_queries]
    engine(subset[:1])  # warm-up
    label, pair = reference_pair()
    workers = torch.get_num_threads()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(pair, subset[:workers], documents[:workers]))  # start the workers
        started = time.perf_counter()
        flat = pool.map(
            pair, *zip(*itertools.product(subset, documents), strict=True), chunksize=64
        )
        reference = np.array(list(flat)).reshape(len(subset), len(documents))
        reference_seconds = time.perf_counter() - started
    ours, ours_seconds = engine(subset)
    size = cells(subset, documents)
    print(f"\non the first {len(subset)} queries ({size / 1e6:.0f} M frame pairs):")
    print(f"  (b) {label}, {workers} processes: {size / reference_seconds / 1e6:10.1f} M pairs/s")
    print(f"  (a) bench, {args.device}: {size / ours_seconds / 1e6:10.1f} M pairs/s")
    print(f"  (a) / (b): {reference_seconds / ours_seconds:.1f}x")
    print(f"  largest cost difference: {np.abs(ours - reference).max():.2e}")
    _, full_seconds = engine(queries)
    print(
        f"\n(a) on all {args.queries} queries: {cells(queries, documents) / full_seconds / 1e6:.1f} "
        f"M pairs/s ({args.queries * args.documents / full_seconds:,.0f} query-document pairs/s)"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
