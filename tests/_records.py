"""Hand-made result records for report and gate tests (no probe is trained)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench.records import ResultRecord

PROBE = {
    "lr_grid": [0.001],
    "seeds": [0, 1, 2],
    "batch_size": 32,
    "max_steps": 100,
    "eval_every": 10,
    "patience": 3,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "layers": "weighted",
    "layer_norm": False,
}


def stat(values: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def make_record(
    upstream: str,
    task: str,
    values: Sequence[float],
    *,
    main_metric: str = "accuracy",
    higher_is_better: bool = True,
    other_metrics: Mapping[str, Sequence[float]] | None = None,
    layer_weights: Sequence[float] | None = None,
    weights_hash: str = "hash-of-weights",
    probe: Mapping[str, Any] | None = None,
    items: Mapping[str, int] | None = None,
) -> ResultRecord:
    """A record whose test ``main_metric`` takes ``values`` over seeds."""
    test = {main_metric: stat(values)}
    for name, metric_values in (other_metrics or {}).items():
        test[name] = stat(metric_values)
    return ResultRecord(
        task=task,
        suite=task.split(".", 1)[0],
        upstream=upstream,
        main_metric=main_metric,
        higher_is_better=higher_is_better,
        metrics={"dev": {main_metric: stat(values)}, "test": test},
        selected={"lr": 0.001},
        probe=dict(probe or {**PROBE, "seeds": list(range(len(values)))}),
        layer_weights=list(layer_weights) if layer_weights is not None else None,
        upstream_info={"weights_hash": weights_hash, "source": "test", "family": "test"},
        data={"items": dict(items or {"train": 100, "dev": 20, "test": 30})},
        timings={"total_s": 1.0},
        versions={"bench": "0.1.0", "torch": "test"},
        config={},
    )
