"""Regression gate: compare a checkpoint's results with a stored baseline, task by task.

``compare`` checks a checkpoint's result records against a baseline (bench.baseline),
direction-aware: a change for the worse larger than the task's tolerance is a regression.
Results made differently from the baseline's (another protocol, bench.profiles; other probe
settings, task options, data sizes, metric or direction) are not comparable. Pure: records in, verdicts out.

Tolerance syntax (``--tolerance``, repeatable): ``[TASK=]AMOUNT[,AMOUNT]`` where AMOUNT is
a number in the metric's own unit (``0.5``: half a point of accuracy, or 0.005 of a HEAR
top-1 accuracy) or ``<k>sd`` (k times the baseline's standard deviation over seeds). With
both, the larger drop is allowed (``0.5,2sd``). A spec without ``TASK=`` applies to every
task without its own. Default: ``2sd`` (which is 0 for a one-seed baseline: any drop fails).

Which result is checked (``pick_records``): among the checkpoint's latest record of each
identity for a task, the one made with the baseline's settings (same settings digest, see
bench.identity); else the most complete protocol, compared field by field. Quick-mode
results are never checked. The verdict's notes say which record was used.

Outcome: exit code 1 if any task regressed; else 2 if any task could not be evaluated
(no result, or not comparable: other protocol, metric, probe settings or data); else 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bench.baseline import REPORTED_SPLIT, Baseline, BaselineTask
from bench.records import ResultRecord, task_options_of
from bench.report.markdown import markdown_table
from bench.report.units import unit_of

DEFAULT_TOLERANCE = "2sd"


class GateError(ValueError):
    """A bad tolerance or request; the check cannot run."""


# -- tolerances -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the baseline a task may get: the larger of an absolute amount
    (metric units) and ``seed_sds`` baseline standard deviations."""

    absolute: float = 0.0
    seed_sds: float = 0.0

    def allowed_drop(self, baseline_std: float) -> float:
        return max(self.absolute, self.seed_sds * baseline_std)

    def __str__(self) -> str:
        parts = ([f"{self.absolute:g}"] if self.absolute else []) + (
            [f"{self.seed_sds:g}sd"] if self.seed_sds else []
        )
        return ",".join(parts) or "0"


@dataclass(frozen=True)
class TolerancePolicy:
    default: Tolerance
    per_task: Mapping[str, Tolerance] = field(default_factory=dict)

    def for_task(self, task: str) -> Tolerance:
        return self.per_task.get(task, self.default)


def parse_tolerance(text: str) -> Tolerance:
    """``0.5``, ``2sd``, ``0.5,2sd``."""
    absolute = seed_sds = 0.0
    for part in text.split(","):
        part = part.strip().lower()
        try:
            if part.endswith("sd"):
                seed_sds = float(part[:-2])
            else:
                absolute = float(part)
        except ValueError:
            raise GateError(
                f"bad tolerance '{text}': expected a number (metric units), <k>sd, or both "
                "separated by a comma, e.g. 0.5, 2sd, 0.5,2sd"
            ) from None
    if not (math.isfinite(absolute) and math.isfinite(seed_sds)) or absolute < 0 or seed_sds < 0:
        raise GateError(f"bad tolerance '{text}': amounts must be finite and not negative")
    return Tolerance(absolute, seed_sds)


def parse_tolerances(specs: Sequence[str]) -> TolerancePolicy:
    """``--tolerance`` values: ``[TASK=]AMOUNT[,AMOUNT]``; later specs replace earlier ones."""
    default = parse_tolerance(DEFAULT_TOLERANCE)
    per_task: dict[str, Tolerance] = {}
    for spec in specs:
        task, sep, amount = spec.rpartition("=")
        if sep and not task.strip():
            raise GateError(f"bad tolerance '{spec}': expected TASK=AMOUNT or AMOUNT")
        if sep:
            per_task[task.strip()] = parse_tolerance(amount)
        else:
            default = parse_tolerance(amount)
    return TolerancePolicy(default, per_task)


def check_policy(baseline: Baseline, policy: TolerancePolicy) -> None:
    """A per-task tolerance for a task the baseline lacks is a typo, not a no-op."""
    unknown = sorted(set(policy.per_task) - set(baseline.tasks))
    if unknown:
        raise GateError(
            f"tolerance for task(s) not in the baseline: {', '.join(unknown)} "
            f"(baseline tasks: {', '.join(baseline.tasks)})"
        )


# -- which records ----------------------------------------------------------------------------


@dataclass
class Picked:
    records: dict[str, ResultRecord]
    reasons: dict[str, str]
    notes: list[str]


def pick_records(baseline: Baseline, candidates: Sequence[ResultRecord]) -> Picked:
    """For each baseline task, the checkpoint's record to check (see the module docstring)."""
    from bench.identity import choose

    picked = Picked({}, {}, [])
    for task, expected in baseline.tasks.items():
        group = [r for r in candidates if r.task == task]
        full = [r for r in group if not r.is_quick]
        # another protocol's number is never checked where one of the baseline's exists
        full = [r for r in full if r.protocol_label == expected.protocol] or full
        same = [
            r
            for r in full
            if expected.settings_digest and r.settings_digest == expected.settings_digest
        ]
        if not group:
            continue
        if not full:
            picked.reasons[task] = "only quick-mode results, which are never checked"
            continue
        if same:
            record = max(same, key=lambda r: r.rank)
            how = "made with the baseline's settings"
        else:
            record = choose(full).chosen[0]
            how = (
                "no result has the baseline's settings digest; compared field by field"
                if expected.settings_digest
                else "the baseline has no settings digest; compared field by field"
            )
        picked.records[task] = record
        if len(group) > 1 or not same:
            picked.notes.append(f"{task}: checked {record.description} ({how})")
    return picked


# -- comparison -------------------------------------------------------------------------------


class Status(StrEnum):
    PASS = "pass"
    REGRESSION = "REGRESSION"
    MISSING = "missing"
    NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True)
class TaskVerdict:
    """change: the signed improvement over the baseline (positive is better, whatever the
    metric's direction); allowed_drop: how negative it may get before it is a regression."""

    task: str
    metric: str
    higher_is_better: bool
    baseline: BaselineTask
    current_mean: float | None
    current_std: float | None
    current_n: int
    change: float | None
    allowed_drop: float
    tolerance: Tolerance
    status: Status
    reason: str = ""


@dataclass(frozen=True)
class GateResult:
    upstream: str
    baseline: Baseline
    verdicts: list[TaskVerdict]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        statuses = {verdict.status for verdict in self.verdicts}
        if Status.REGRESSION in statuses:
            return 1
        if statuses & {Status.MISSING, Status.NOT_COMPARABLE}:
            return 2
        return 0

    @property
    def summary(self) -> str:
        return {
            0: "PASS: no task regressed beyond its tolerance",
            1: "FAIL: regression",
            2: "COULD NOT EVALUATE: some tasks have no comparable result",
        }[self.exit_code]


def compare(
    baseline: Baseline,
    records: Mapping[str, ResultRecord],
    policy: TolerancePolicy,
    missing_reasons: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    upstream: str | None = None,
) -> GateResult:
    """Check ``records`` (task -> the new checkpoint's record) against ``baseline``;
    ``upstream`` names the checkpoint when no record does (none was found)."""
    check_policy(baseline, policy)
    verdicts = [
        _verdict(task, expected, records.get(task), policy.for_task(task), missing_reasons or {})
        for task, expected in baseline.tasks.items()
    ]
    upstreams = {record.upstream for record in records.values()}
    return GateResult(
        upstream=", ".join(sorted(upstreams)) or upstream or "?",
        baseline=baseline,
        verdicts=verdicts,
        notes=[*notes, *_notes(baseline, records, verdicts)],
    )


def _verdict(
    task: str,
    expected: BaselineTask,
    record: ResultRecord | None,
    tolerance: Tolerance,
    missing_reasons: Mapping[str, str],
) -> TaskVerdict:
    allowed = tolerance.allowed_drop(expected.std)

    def verdict(
        status: Status,
        reason: str,
        stat: Mapping[str, Any] | None = None,
        change: float | None = None,
    ) -> TaskVerdict:
        return TaskVerdict(
            task=task,
            metric=expected.metric,
            higher_is_better=expected.higher_is_better,
            baseline=expected,
            current_mean=stat.get("mean") if stat else None,
            current_std=stat.get("std") if stat else None,
            current_n=len(stat.get("values") or []) if stat else 0,
            change=change,
            allowed_drop=allowed,
            tolerance=tolerance,
            status=status,
            reason=reason,
        )

    if record is None:
        return verdict(Status.MISSING, missing_reasons.get(task, "no result record for this task"))
    if record.is_quick:
        return verdict(Status.NOT_COMPARABLE, "a quick-mode result is a smoke test, never checked")
    stat = record.metrics.get(REPORTED_SPLIT, {}).get(expected.metric)
    problem = _incomparability(expected, record, stat)
    if problem:
        return verdict(Status.NOT_COMPARABLE, problem, stat)
    assert stat is not None
    sign = 1.0 if expected.higher_is_better else -1.0
    change = sign * (float(stat["mean"]) - expected.mean)
    # Rounding noise must not turn "exactly the tolerance" into a regression.
    slack = 1e-9 * max(1.0, abs(expected.mean))
    if change < -(allowed + slack):
        return verdict(
            Status.REGRESSION, f"worse by {-change:.4g}, allowed {allowed:.4g}", stat, change
        )
    return verdict(Status.PASS, "", stat, change)


def _incomparability(
    expected: BaselineTask, record: ResultRecord, stat: Mapping[str, Any] | None
) -> str:
    """Why the record cannot be compared with the baseline ('' when it can)."""
    if record.protocol_label != expected.protocol:
        return (
            f"the protocol differs: {record.protocol_label} (baseline {expected.protocol}); "
            "numbers made under different protocols are not compared"
        )
    if record.higher_is_better != expected.higher_is_better:
        return "the metric's direction differs from the baseline's"
    if stat is None:
        return f"the record has no test {expected.metric} (it reports {record.main_metric})"
    if stat.get("mean") is None:
        return f"test {expected.metric} is not finite"
    probe = {k: record.probe.get(k) for k in expected.probe}
    differing = [
        f"{k} {probe[k]} (baseline {v})" for k, v in expected.probe.items() if probe[k] != v
    ]
    if differing:
        return "probe settings differ: " + "; ".join(differing)
    items = dict(record.data.get("items", {}))
    if expected.items and items != expected.items:
        return f"the data differ: items per split {items} (baseline {expected.items})"
    options = task_options_of(record)
    if options != expected.task_options:
        return f"task options differ: {options} (baseline {expected.task_options})"
    return ""


def _notes(
    baseline: Baseline, records: Mapping[str, ResultRecord], verdicts: list[TaskVerdict]
) -> list[str]:
    notes = []
    hashes = {str(r.upstream_info.get("weights_hash", "")) for r in records.values()}
    if hashes == {baseline.weights_hash}:
        notes.append("the checked records come from the baseline's own weights")
    elif len(hashes) > 1:
        notes.append(f"the checked records come from {len(hashes)} different weights")
    for v in verdicts:
        if v.baseline.n < 2 and v.tolerance.seed_sds and not v.tolerance.absolute:
            notes.append(f"{v.task}: the baseline has one seed, so {v.tolerance} allows no drop")
    return notes


# -- the verdict as Markdown ------------------------------------------------------------------


def verdict_markdown(result: GateResult) -> str:
    baseline = result.baseline
    rows = [
        [
            v.task,
            f"{v.metric} {'↑' if v.higher_is_better else '↓'}",
            _stat_text(v.metric, v.baseline.mean, v.baseline.std, v.baseline.n),
            _stat_text(v.metric, v.current_mean, v.current_std, v.current_n),
            _signed(v.metric, v.change),
            f"{unit_of(v.metric).format(v.allowed_drop)} ({v.tolerance})",
            f"**{v.status}**" if v.status != Status.PASS else v.status.value,
            v.reason,
        ]
        for v in result.verdicts
    ]
    lines = [
        f"### bench check: {result.summary}",
        "",
        f"Checkpoint `{result.upstream}` against baseline `{baseline.upstream}` "
        f"(weights {baseline.weights_hash[:12] or '?'}, bench {baseline.bench_version or '?'}, "
        f"{baseline.created_at}), protocol {_protocols(baseline)}. Change: positive is better; "
        "a regression is a change for the worse beyond the allowed drop.",
        "",
        markdown_table(
            [
                "task",
                "metric",
                "baseline",
                "checkpoint",
                "change",
                "allowed drop",
                "verdict",
                "why",
            ],
            rows,
        ),
    ]
    if result.notes:
        lines += ["", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def _protocols(baseline: Baseline) -> str:
    return ", ".join(f"`{p}`" for p in sorted({t.protocol for t in baseline.tasks.values()}))


def _stat_text(metric: str, mean: float | None, std: float | None, n: int) -> str:
    unit = unit_of(metric)
    if mean is None:
        return "—"
    spread = f" ± {unit.format(std)}" if n > 1 and std is not None else ""
    return f"{unit.format(mean)}{spread} (n={n})"


def _signed(metric: str, change: float | None) -> str:
    if change is None:
        return "—"
    return ("+" if change >= 0 else "-") + unit_of(metric).format(abs(change))
