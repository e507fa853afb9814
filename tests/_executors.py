"""Shared by the executor tests: one small demo run, and what must match between executors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bench.cli import main
from bench.records import read_records

#: one tiny pooled task and one frame-level task, one seed, a short schedule; small
#: shards, so that a cache is filled by several units at once
TASKS = ("demo.keywords", "demo.events")
SETTINGS = (
    "probe.seeds=[0]",
    "probe.lr_grid=[0.001]",
    "probe.max_steps=300",
    "runtime.progress=false",
    "extract.shard_seconds=100",
)


def run_demo(
    workspace: Path, demo_root: Path, mlflow_uri: str, *overrides: str, tasks=TASKS
) -> int:
    argv = ["run", "--upstream", "fbank_no_cmvn", "--data-root", str(demo_root)]
    for task in tasks:
        argv += ["--task", task]
    return main(
        [*argv, f"paths.workspace={workspace}", f"tracking.uri={mlflow_uri}", *SETTINGS, *overrides]
    )


def results(workspace: Path) -> dict[str, dict[str, Any]]:
    """What must be identical whichever executor ran: per task, the identity, metrics,
    selection, layer weights and every trial."""
    return {
        record.task: {
            "digest": record.digest,
            "metrics": record.metrics,
            "selected": record.selected,
            "layer_weights": record.layer_weights,
            "trials": record.trials,
        }
        for record in read_records(workspace / "records")
    }


def shard_digests(workspace: Path) -> dict[str, str]:
    """sha256 of every committed cache shard, by its path inside the cache."""
    cache = workspace / "cache"
    return {
        str(path.relative_to(cache)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(cache.glob("*/*/shard-*.npy"))
    }
