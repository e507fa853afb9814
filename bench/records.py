"""JSON result records: one per (upstream, task), the durable source of truth.

A record is written only when a run has finished, atomically, as strict JSON (no NaN or
Infinity: non-finite numbers become null). Reports and regression checks read records;
MLflow holds the same numbers for browsing.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.fileio import atomic_write_text, safe_name

RECORD_SCHEMA_VERSION = 1


@dataclass
class ResultRecord:
    """Everything about one finished (upstream, task) run.

    metrics: split -> metric -> ``{"mean", "std", "values"}`` (over seeds).
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
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: int = RECORD_SCHEMA_VERSION

    @property
    def score(self) -> dict[str, Any]:
        """The main metric on test: ``{"mean", "std", "values"}``."""
        return self.metrics["test"][self.main_metric]

    def to_json(self) -> str:
        return json.dumps(_strict(asdict(self)), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ResultRecord:
        return cls(**payload)


def _strict(value: Any) -> Any:
    """Replace non-finite floats by None, recursively, so the JSON is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _strict(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def record_path(records_dir: Path, upstream: str, task: str) -> Path:
    return Path(records_dir) / safe_name(upstream) / f"{safe_name(task)}.json"


def write_record(records_dir: Path, record: ResultRecord) -> Path:
    path = record_path(records_dir, record.upstream, record.task)
    atomic_write_text(path, record.to_json() + "\n")
    return path


def read_record(path: Path) -> ResultRecord:
    try:
        payload = json.loads(Path(path).read_text())
        return ResultRecord.from_dict(payload)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a bench result record ({error})") from None


def read_records(records_dir: Path) -> list[ResultRecord]:
    """Every record under ``records_dir``, sorted by upstream then task."""
    records = [read_record(path) for path in sorted(Path(records_dir).glob("*/*.json"))]
    return sorted(records, key=lambda r: (r.upstream, r.task))


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
