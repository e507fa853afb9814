"""Baselines for regression checks: a reference checkpoint's results, stored as JSON.

Per task, a baseline keeps the main test metric (mean, standard deviation over seeds, n, the
per-seed values, direction, unit) and what produced it: the protocol label (bench.profiles),
the probe settings, the task options and the data's item counts per split. For the whole
file: the upstream, its weights hash, bench's version and the date. ``bench baseline save`` writes one; ``bench check`` (bench.gate)
compares a checkpoint with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.fileio import atomic_write_text
from bench.records import ResultRecord, task_options_of
from bench.report.units import unit_of

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "bench baseline"
REPORTED_SPLIT = "test"
#: probe settings that change what a number means; a checked result must match the baseline's
COMPARABLE_PROBE_KEYS = (
    "lr_grid",
    "seeds",
    "batch_size",
    "max_steps",
    "eval_every",
    "patience",
    "optimizer",
    "weight_decay",
    "layers",
    "layer_norm",
)


class BaselineError(ValueError):
    """A baseline cannot be made or read."""


@dataclass(frozen=True)
class BaselineTask:
    """One task of a baseline: the main metric on test, and what produced it."""

    metric: str
    higher_is_better: bool
    unit: str
    mean: float
    std: float
    n: int
    values: list[float]
    probe: dict[str, Any]
    items: dict[str, int]
    task_options: dict[str, Any] = field(default_factory=dict)
    record_created_at: str = ""
    #: the record's identity (bench.identity): the gate picks a checkpoint's result with
    #: the same settings digest; "" in baselines saved before identities
    settings_digest: str = ""
    identity: str = ""
    #: the record's protocol label (bench.profiles.protocol_label): the gate compares only
    #: results made under the same protocol; "fast" in baselines saved before profiles
    protocol: str = "fast"


@dataclass(frozen=True)
class Baseline:
    upstream: str
    weights_hash: str
    bench_version: str
    created_at: str
    tasks: dict[str, BaselineTask]
    schema_version: int = BASELINE_SCHEMA_VERSION
    kind: str = BASELINE_KIND

    def to_json(self) -> str:
        payload = asdict(self)
        # What the file is comes first, for a reader opening it.
        header = {key: payload.pop(key) for key in ("kind", "schema_version")}
        return json.dumps({**header, **payload}, indent=2, allow_nan=False)

    def save(self, path: Path) -> Path:
        atomic_write_text(Path(path), self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> Baseline:
        try:
            payload = json.loads(Path(path).read_text())
            if payload.get("kind") != BASELINE_KIND:
                raise ValueError("not a bench baseline")
            if payload.get("schema_version") != BASELINE_SCHEMA_VERSION:
                raise ValueError(f"schema version {payload.get('schema_version')} is not supported")
            tasks = {name: BaselineTask(**task) for name, task in payload.pop("tasks").items()}
            return cls(**payload, tasks=tasks)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise BaselineError(f"{path}: cannot read the baseline ({error})") from None


def baseline_from_records(
    records: Sequence[ResultRecord], created_at: str | None = None
) -> Baseline:
    """The baseline of one upstream's records (one per task, all from the same weights)."""
    if not records:
        raise BaselineError("no records to make a baseline from")
    quick = sorted(record.task for record in records if record.is_quick)
    if quick:
        raise BaselineError(
            f"quick-mode results are smoke tests, not a baseline: {', '.join(quick)}"
        )
    tasks = [record.task for record in records]
    twice = sorted({task for task in tasks if tasks.count(task) > 1})
    if twice:
        made = "; ".join(
            task
            + ": "
            + ", ".join(f"{r.protocol_label} #{r.digest[:8]}" for r in records if r.task == task)
            for task in twice
        )
        raise BaselineError(
            f"a baseline holds one result per task, under one protocol; got several for {made} "
            "(choose with --identity DIGEST)"
        )
    upstreams = {record.upstream for record in records}
    hashes = {str(record.upstream_info.get("weights_hash", "")) for record in records}
    if len(upstreams) != 1:
        raise BaselineError(f"a baseline is one upstream's; got {sorted(upstreams)}")
    if len(hashes) != 1:
        raise BaselineError(
            f"the records of {records[0].upstream} come from different weights {sorted(hashes)}; "
            "re-run the tasks with one checkpoint"
        )
    return Baseline(
        upstream=records[0].upstream,
        weights_hash=hashes.pop(),
        bench_version=records[0].versions.get("bench", ""),
        created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        tasks={
            record.task: _baseline_task(record) for record in sorted(records, key=lambda r: r.task)
        },
    )


def _baseline_task(record: ResultRecord) -> BaselineTask:
    stat = record.metrics.get(REPORTED_SPLIT, {}).get(record.main_metric)
    if stat is None or stat.get("mean") is None:
        raise BaselineError(
            f"{record.upstream} on {record.task}: no finite test {record.main_metric} to keep"
        )
    return BaselineTask(
        metric=record.main_metric,
        higher_is_better=record.higher_is_better,
        unit=unit_of(record.main_metric).label,
        mean=float(stat["mean"]),
        std=float(stat.get("std") or 0.0),
        n=len(stat.get("values") or []),
        values=[float(v) for v in stat.get("values") or [] if v is not None],
        probe={key: record.probe.get(key) for key in COMPARABLE_PROBE_KEYS if key in record.probe},
        items=dict(record.data.get("items", {})),
        task_options=task_options_of(record),
        record_created_at=record.created_at,
        settings_digest=record.settings_digest,
        identity=record.digest,
        protocol=record.protocol_label,
    )


def mixing_warnings(records: Sequence[ResultRecord]) -> list[str]:
    """A baseline whose tasks were run differently compares unevenly: say how."""
    warnings = []
    protocols = {record.protocol_label for record in records}
    if len(protocols) > 1:
        warnings.append(f"the baseline mixes protocols ({', '.join(sorted(protocols))})")
    seeds = {record.task: record.seed_count for record in records}
    if len(set(seeds.values())) > 1:
        counts = ", ".join(f"{task} {n}" for task, n in seeds.items())
        warnings.append(f"the baseline mixes seed counts ({counts})")
    for key in ("layers", "layer_norm"):
        values = {str(record.probe.get(key)) for record in records}
        if len(values) > 1:
            warnings.append(f"the baseline mixes probe.{key} values ({', '.join(sorted(values))})")
    overridden = sorted(r.task for r in records if not r.uses_task_schedule)
    if overridden and len(overridden) < len(records):
        warnings.append(
            "the baseline mixes the tasks' own schedules with probe overrides "
            f"(overridden: {', '.join(overridden)})"
        )
    return warnings
