"""JSON result records: one per run, the durable source of truth.

A record is written when a run has finished, before anything is logged to MLflow,
atomically, as strict JSON (no NaN or Infinity: non-finite numbers become null). Every
run's record is kept; records of one identity (bench.identity) sit in one folder with a
pointer to the latest:

    records/<upstream>/<task>/<identity digest>/<UTC time>-<id>.json   every run
    records/<upstream>/<task>/<identity digest>/latest                 name of the latest

``RecordStore`` writes and finds them; ``choose`` picks the record that counts for each
(upstream, task) when several identities exist (bench report, bench baseline save), and
says which it picked and why. Records of schema 1 (``records/<upstream>/<task>.json``)
are still read, with an identity derived from their contents.
"""

from __future__ import annotations

import json
import math
import platform
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.fileio import atomic_write_text, remove_stale_temporaries, safe_name
from bench.identity import RecordIdentity, describe_result
from bench.profiles import DEFAULT_PROFILE, WEIGHTED, protocol_label

RECORD_SCHEMA_VERSION = 2
LATEST_POINTER = "latest"
#: probe settings that do not change a result beyond float rounding (how fast, where, how
#: loud): like the feature cache key, the identity leaves them out
NOT_RESULT_AFFECTING = ("progress", "device", "workers", "stack")
#: schedule keys of ``probe.*`` whose null means "the task's own schedule"
SCHEDULE_OVERRIDES = ("lr_grid", "max_steps", "batch_size", "eval_every", "patience")


@dataclass
class ResultRecord:
    """Everything about one finished run of (upstream, task).

    metrics: split -> metric -> ``{"mean", "std", "values"}`` (over seeds).
    identity: ``RecordIdentity.to_dict()``: which experiment this is (bench.identity).
    quick: the quick-mode limits when the run was a quick check (never a full result).
    protocol: how the number was made (``bench.runner.protocol_record``): the profile,
        its ``label`` (what reports and the gate compare), embedding, seeds, selection,
        data handling, audio, pooling, the upstream's revision and weights, bench's
        version. None in records made before profiles existed: those are ``fast``.
    mlflow: where it was logged: ``tracking_uri``, ``experiment``, ``run_id`` and
        ``status`` (``pending`` until the run is fully logged, then ``logged``).
    """

    task: str
    suite: str
    upstream: str
    main_metric: str
    higher_is_better: bool
    metrics: dict[str, dict[str, dict[str, Any]]]
    selected: dict[str, Any]
    probe: dict[str, Any]
    layer_weights: list[float] | None
    upstream_info: dict[str, Any]
    data: dict[str, Any]
    timings: dict[str, float]
    versions: dict[str, str]
    config: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    mlflow: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    quick: dict[str, Any] | None = None
    protocol: dict[str, Any] | None = None
    created_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")
    )
    schema_version: int = RECORD_SCHEMA_VERSION

    @property
    def score(self) -> dict[str, Any]:
        """The main metric on test: ``{"mean", "std", "values"}``."""
        return self.metrics["test"][self.main_metric]

    @property
    def record_identity(self) -> RecordIdentity:
        if self.identity:
            return RecordIdentity.from_dict(self.identity)
        return derived_identity(self)

    @property
    def digest(self) -> str:
        return str((self.identity or {}).get("digest") or self.record_identity.digest)

    @property
    def settings_digest(self) -> str:
        return str(
            (self.identity or {}).get("settings_digest") or self.record_identity.settings_digest
        )

    @property
    def seed_count(self) -> int:
        return len(self.probe.get("seeds") or [])

    @property
    def uses_task_schedule(self) -> bool:
        """True when no ``probe.*`` schedule key overrode the task's own schedule."""
        probe = self.config.get("probe") or {}
        return all(probe.get(key) is None for key in SCHEDULE_OVERRIDES)

    @property
    def is_quick(self) -> bool:
        return self.quick is not None

    @property
    def protocol_label(self) -> str:
        """The protocol the number was made under (``bench.profiles.protocol_label``);
        a record made before profiles is ``fast``, with its layer selection."""
        if self.protocol and self.protocol.get("label"):
            return str(self.protocol["label"])
        return protocol_label(DEFAULT_PROFILE, self.probe.get("layers", WEIGHTED))

    @property
    def rank(self) -> tuple:
        """How complete its protocol is (bench.identity.choose): seeds, own schedule, data."""
        items = sum((self.data.get("items") or {}).values())
        return (self.seed_count, self.uses_task_schedule, items, self.created_at)

    @property
    def description(self) -> str:
        return describe_result(
            self.digest, self.seed_count, self.uses_task_schedule, self.is_quick, self.created_at
        )

    def to_json(self) -> str:
        return json.dumps(_strict(asdict(self)), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ResultRecord:
        return cls(**payload)


def derived_identity(record: ResultRecord) -> RecordIdentity:
    """The identity of a record written without one (schema 1, hand-made records)."""
    return RecordIdentity(
        upstream=record.upstream,
        task=record.task,
        settings={
            "probe": result_affecting(record.probe),
            "task_options": task_options_of(record),
            "quick": record.quick,
        },
        inputs={
            "weights_hash": record.upstream_info.get("weights_hash"),
            "data_fingerprint": record.data.get("fingerprint"),
        },
    )


def result_affecting(probe: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in probe.items() if k not in NOT_RESULT_AFFECTING}


def task_options_of(record: ResultRecord) -> dict[str, Any]:
    """The ``task_options`` the record's task ran with (e.g. a HEAR grid size)."""
    return dict((record.config.get("task_options") or {}).get(record.task) or {})


def _strict(value: Any) -> Any:
    """Replace non-finite floats by None, recursively, so the JSON is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _strict(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


@dataclass(frozen=True)
class StoredRecord:
    record: ResultRecord
    path: Path


class RecordStore:
    """The records folder (``paths.records``): every run's record, by identity."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def identity_dir(self, upstream: str, task: str, digest: str) -> Path:
        return self.root / safe_name(upstream) / safe_name(task) / digest

    def write(self, record: ResultRecord) -> Path:
        """Write a new record of this run and make it its identity's latest."""
        if record.identity is None:
            record.identity = derived_identity(record).to_dict()
        folder = self.identity_dir(record.upstream, record.task, record.digest)
        stamp = datetime.fromisoformat(record.created_at).strftime("%Y%m%dT%H%M%SZ")
        path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.json"
        remove_stale_temporaries(folder)  # of runs killed while writing a record here
        atomic_write_text(path, record.to_json() + "\n")
        atomic_write_text(folder / LATEST_POINTER, path.name + "\n")
        return path

    def rewrite(self, stored: StoredRecord) -> None:
        """Replace a record in place (its MLflow link changed; the results never do)."""
        atomic_write_text(stored.path, stored.record.to_json() + "\n")

    def latest(self, upstream: str, task: str, digest: str) -> StoredRecord | None:
        """The latest complete record of an identity, or None."""
        folder = self.identity_dir(upstream, task, digest)
        pointer = folder / LATEST_POINTER
        try:
            path = folder / pointer.read_text().strip()
            return StoredRecord(read_record(path), path)
        except (OSError, ValueError):
            pass  # no pointer, or it names a missing or damaged file: the newest readable one
        for path in sorted(folder.glob("*.json"), reverse=True):
            try:
                return StoredRecord(read_record(path), path)
            except ValueError:
                continue
        return None

    def runs(self) -> list[StoredRecord]:
        """Every run's record (schema-1 files included), oldest first."""
        paths = [*self.root.glob("*/*/*/*.json"), *self.root.glob("*/*.json")]
        stored = [StoredRecord(read_record(path), path) for path in paths]
        return sorted(stored, key=lambda s: (s.record.created_at, str(s.path)))

    def latest_records(self) -> list[StoredRecord]:
        """The latest record of each identity, sorted by upstream then task."""
        by_identity: dict[Path, list[StoredRecord]] = {}
        for stored in self.runs():
            by_identity.setdefault(stored.path.parent / stored.record.digest, []).append(stored)
        latest = []
        for group in by_identity.values():
            pointer = group[0].path.parent / LATEST_POINTER
            try:
                name = pointer.read_text().strip()
            except OSError:
                name = ""
            latest.append(next((s for s in group if s.path.name == name), group[-1]))
        return sorted(latest, key=lambda s: (s.record.upstream, s.record.task))

    def remove_others(self, keep: StoredRecord) -> list[Path]:
        """Delete the earlier records of ``keep``'s identity (``bench run --overwrite``)."""
        removed = []
        for path in keep.path.parent.glob("*.json"):
            if path != keep.path:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def record_path(records_dir: Path, upstream: str, task: str) -> Path:
    """Where schema 1 kept the one record of (upstream, task); read for old workspaces."""
    return Path(records_dir) / safe_name(upstream) / f"{safe_name(task)}.json"


def write_record(records_dir: Path, record: ResultRecord) -> Path:
    return RecordStore(records_dir).write(record)


def read_record(path: Path) -> ResultRecord:
    try:
        payload = json.loads(Path(path).read_text())
        return ResultRecord.from_dict(payload)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a bench result record ({error})") from None


def read_records(records_dir: Path) -> list[ResultRecord]:
    """The latest record of every identity under ``records_dir``, by upstream then task."""
    return [stored.record for stored in RecordStore(records_dir).latest_records()]


def versions() -> dict[str, str]:
    import numpy
    import torch

    import bench

    return {
        "bench": bench.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
