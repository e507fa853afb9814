"""A child process for the fault-injection tests: one extraction, killed at a chosen point.

    python tests/_fault_child.py JOB.json

JOB names the audio, the cache root and kind, and ``kill_at``: the extraction stops with
``signal`` at the ``kill_at``-th call (Python or built-in, e.g. ``os.replace``, a file's
``write``) made from bench's cache, file, audio and extraction code in the main thread.
``kill_at`` 0 runs to the end; either way the child prints how many such calls it made,
so a test can first count them, then draw kill points from a seeded generator.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch
from _fakes import ToyUpstream

import bench
from bench.cache import FeatureCache
from bench.data import Item
from bench.extract import Extractor

WATCHED = tuple(
    str(Path(bench.__file__).parent / name)
    for name in ("cache.py", "fileio.py", "extract.py", "audio.py")
)


def key_fields(kind: str) -> dict:
    upstream = ToyUpstream()
    return {
        "upstream": "toy",
        "weights_hash": upstream.weights_hash(),
        "hidden_sizes": upstream.hidden_sizes,
        "frame_rate": upstream.frame_rate,
        "sample_rate": 16000,
        "kind": kind,
    }


def extract(job: dict) -> FeatureCache:
    items = [Item(key=key, path=Path(path)) for key, path in job["items"]]
    cache = FeatureCache.open(
        Path(job["root"]), key_fields(job["kind"]), items, job["shard_seconds"]
    )
    extractor = Extractor(
        ToyUpstream(),
        "toy",
        torch.device("cpu"),
        batch_seconds=job["batch_seconds"],
        show_progress=False,
    )
    extractor.fill(cache)
    return cache


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    kill_at, sig = job["kill_at"], getattr(signal, job.get("signal", "SIGKILL"))
    count = 0

    def watch(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call") and frame.f_code.co_filename.startswith(WATCHED):
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), sig)

    sys.setprofile(watch)
    extract(job)
    sys.setprofile(None)
    print(json.dumps({"calls": count}))


if __name__ == "__main__":
    main()
