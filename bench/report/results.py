"""Measured results, read from JSON records and/or MLflow, reconciled into one list.

Candidates: the latest record of each identity (bench.identity), and the latest finished
MLflow run of each identity. Precedence: the JSON records are bench's durable source of
truth, so an identity present in both is taken from its record. A record that names its
MLflow run (``record.mlflow["run_id"]``) is checked against that run when the store holds it:
test metrics (mean and std) must agree, else the report stops (:class:`ReportError`),
because one of the two stores has been altered. Identities found only in MLflow are taken
from MLflow. Then ``bench.identity.choose`` picks one result per (upstream, task, protocol), never by
last write alone: quick checks are left out, the most complete protocol wins, and every
choice among several is noted.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.profiles import DEFAULT_PROFILE
from bench.records import ResultRecord, read_records
from bench.report import ReportError

Source = Literal["records", "mlflow", "both"]
REPORTED_SPLIT = "test"


@dataclass(frozen=True)
class MetricSummary:
    """A metric over seeds: mean, sample standard deviation, number of values (None: not finite)."""

    mean: float | None
    std: float | None
    n: int


@dataclass(frozen=True)
class TaskResult:
    """One upstream's result on one task, as reports need it (test split only)."""

    upstream: str
    task: str
    suite: str
    main_metric: str
    higher_is_better: bool
    metrics: Mapping[str, MetricSummary]
    layer_weights: tuple[float, ...] | None = None
    weights_hash: str = ""
    bench_version: str = ""
    origin: Literal["records", "mlflow"] = "records"
    run_id: str | None = None
    #: the identity digest (bench.identity); "" for MLflow runs logged before identities
    digest: str = ""
    quick: bool = False
    #: how complete the protocol is, for bench.identity.choose
    rank: tuple = ()
    description: str = ""
    #: the protocol label (bench.profiles.protocol_label): results of one upstream under
    #: two protocols are two leaderboard rows, never one
    protocol_label: str = DEFAULT_PROFILE

    @property
    def row(self) -> str:
        """The leaderboard row: the upstream, with its protocol unless that is ``fast``."""
        if self.protocol_label == DEFAULT_PROFILE:
            return self.upstream
        return f"{self.upstream} [{self.protocol_label}]"

    @property
    def key(self) -> tuple[str, str]:
        return (self.upstream, self.task)

    @property
    def is_quick(self) -> bool:
        return self.quick

    @property
    def main(self) -> MetricSummary | None:
        return self.metrics.get(self.main_metric)


@dataclass
class CollectedResults:
    results: list[TaskResult]
    notes: list[str] = field(default_factory=list)


def result_from_record(record: ResultRecord) -> TaskResult:
    metrics = {
        name: MetricSummary(
            mean=_finite(stat.get("mean")),
            std=_finite(stat.get("std")),
            n=len(stat.get("values") or []),
        )
        for name, stat in record.metrics.get(REPORTED_SPLIT, {}).items()
    }
    return TaskResult(
        upstream=record.upstream,
        task=record.task,
        suite=record.suite,
        main_metric=record.main_metric,
        higher_is_better=record.higher_is_better,
        metrics=metrics,
        layer_weights=tuple(record.layer_weights) if record.layer_weights else None,
        weights_hash=str(record.upstream_info.get("weights_hash", "")),
        bench_version=record.versions.get("bench", ""),
        origin="records",
        run_id=(record.mlflow or {}).get("run_id"),
        digest=record.digest,
        quick=record.is_quick,
        rank=record.rank,
        description=record.description,
        protocol_label=record.protocol_label,
    )


def results_from_records(records_dir: Path) -> list[TaskResult]:
    try:
        return [result_from_record(record) for record in read_records(Path(records_dir))]
    except ValueError as error:
        raise ReportError(str(error)) from None


def collect(
    source: Source,
    records_dir: Path | None = None,
    tracking_uri: str | None = None,
    identities: Sequence[str] = (),
    include_quick: bool = False,
) -> CollectedResults:
    """One result per (upstream, task) from the records, MLflow, or both (reconciled and
    chosen as the module docstring says)."""
    from bench.identity import choose

    candidates = _candidates(source, records_dir, tracking_uri)
    choice = choose(candidates.results, identities, include_quick)
    return CollectedResults(choice.chosen, [*candidates.notes, *choice.notes])


def _candidates(
    source: Source, records_dir: Path | None, tracking_uri: str | None
) -> CollectedResults:
    from_records = (
        results_from_records(records_dir) if source in ("records", "both") and records_dir else []
    )
    if source == "records":
        return CollectedResults(from_records)
    if not tracking_uri:
        raise ReportError("reading MLflow needs a tracking URI")
    from bench.report.mlflow_reader import read_runs

    runs = read_runs(tracking_uri)
    if source == "mlflow":
        return CollectedResults(latest_per_identity(runs))
    return reconcile(from_records, runs)


def latest_per_identity(runs: Sequence[TaskResult]) -> list[TaskResult]:
    """The first run of each (upstream, task, identity); ``runs`` come newest first."""
    latest: dict[tuple[str, str, str], TaskResult] = {}
    for run in runs:
        latest.setdefault((*run.key, run.digest), run)
    return sorted(latest.values(), key=lambda r: r.key)


def reconcile(records: Sequence[TaskResult], runs: Sequence[TaskResult]) -> CollectedResults:
    """Records first; each checked against its own MLflow run; MLflow adds the identities
    that no record has."""
    runs_by_id = {run.run_id: run for run in runs if run.run_id}
    latest = {(*run.key, run.digest): run for run in latest_per_identity(runs)}
    notes: list[str] = []
    disagreements = []
    for record in records:
        own_run = runs_by_id.get(record.run_id) if record.run_id else None
        if own_run is not None:
            disagreements += [
                f"{record.upstream}/{record.task}: {d}" for d in _differences(record, own_run)
            ]
        elif (*record.key, record.digest) in latest:
            notes.append(
                f"{record.upstream}/{record.task}: MLflow has other runs of this identity "
                "but not the record's own; the record was used"
            )
    if disagreements:
        raise ReportError(
            "the records and MLflow disagree (records are the source of truth; re-run the "
            "tasks or remove the stale runs): " + "; ".join(disagreements)
        )
    recorded = {(*record.key, record.digest) for record in records}
    own_runs = {record.run_id for record in records if record.run_id}
    only_in_mlflow = [
        run for key, run in latest.items() if key not in recorded and run.run_id not in own_runs
    ]
    if only_in_mlflow:
        notes.append(
            "taken from MLflow (no record): "
            + ", ".join(f"{r.upstream}/{r.task}" for r in only_in_mlflow)
        )
    results = sorted([*records, *only_in_mlflow], key=lambda r: r.key)
    return CollectedResults(results, notes)


def _differences(record: TaskResult, run: TaskResult) -> list[str]:
    differences = []
    for name, stat in record.metrics.items():
        logged = run.metrics.get(name)
        for field_name in ("mean", "std"):
            ours = getattr(stat, field_name)
            theirs = getattr(logged, field_name) if logged else None
            if not _same(ours, theirs):
                differences.append(f"test {name} {field_name}: record {ours}, MLflow {theirs}")
    return differences


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def select(
    results: Iterable[TaskResult],
    upstreams: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
) -> list[TaskResult]:
    """The results of these upstreams (names as recorded: existing checkpoint paths are
    resolved) and tasks (names or glob patterns)."""
    from bench.identity import canonical_upstream_arg

    upstreams = [canonical_upstream_arg(u) for u in upstreams or []]
    return [
        result
        for result in results
        if (not upstreams or result.upstream in upstreams)
        and (not tasks or matches_any(result.task, tasks))
    ]


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None
