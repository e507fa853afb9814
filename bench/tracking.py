"""MLflow logging of result records.

Conventions, so that the MLflow UI's run comparison is useful: one experiment per suite
(``bench/<suite>``), run names ``<upstream>/<task>``, tags ``bench.upstream``,
``bench.task``, ``bench.suite``, ``bench.weights_hash``, ``bench.version``. Metrics are
``<split>_<metric>`` (mean over seeds) and ``<split>_<metric>_std``; learned layer
weights are ``layer_weight_<i>`` and a bar plot; params hold the probe settings, the
``main_metric`` and its direction (``higher_is_better``), so that a report can be made from
MLflow alone (bench.report.mlflow_reader); the record, the resolved config and the trials are
artifacts.

The default store is a local SQLite file; ``tracking.uri`` or ``MLFLOW_TRACKING_URI``
point it elsewhere (e.g. an ``mlflow server``).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

from bench.records import ResultRecord

log = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "bench"


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused the run."""


def experiment_name(suite: str) -> str:
    return f"{EXPERIMENT_PREFIX}/{suite}"


def run_name(upstream: str, task: str) -> str:
    return f"{upstream}/{task}"


def _local_sqlite_dir(uri: str) -> Path | None:
    """The workspace of a ``sqlite:///path/mlflow.db`` URI, else None (a server, another store)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]).parent if uri.startswith(prefix) else None


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    workspace = _local_sqlite_dir(uri)
    if workspace is not None:
        workspace.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    workspace = _local_sqlite_dir(uri)
    # With a local store, keep artifacts in the workspace rather than ./mlruns of the cwd.
    location = (
        (workspace / "mlartifacts" / name.replace("/", "-")).resolve().as_uri()
        if workspace
        else None
    )
    return client.create_experiment(name, artifact_location=location)


def _metrics(record: ResultRecord) -> dict[str, float]:
    metrics = {}
    for split, values in record.metrics.items():
        for metric, stat in values.items():
            metrics[f"{split}_{metric}"] = stat["mean"]
            metrics[f"{split}_{metric}_std"] = stat["std"]
    for i, weight in enumerate(record.layer_weights or []):
        metrics[f"layer_weight_{i:02d}"] = weight
    for name, seconds in record.timings.items():
        metrics[f"time_{name}"] = seconds
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _params(record: ResultRecord) -> dict[str, str]:
    params: dict[str, Any] = {
        "task": record.task,
        "upstream": record.upstream,
        "main_metric": record.main_metric,
        "higher_is_better": record.higher_is_better,
        **{f"probe.{k}": v for k, v in record.probe.items()},
        **{f"selected.{k}": v for k, v in record.selected.items()},
        **{f"upstream.{k}": v for k, v in record.upstream_info.items()},
        **{f"data.{k}": v for k, v in record.data.items() if not isinstance(v, dict)},
        **{f"version.{k}": v for k, v in record.versions.items()},
    }
    return {key: str(value)[:500] for key, value in params.items()}


def _tags(record: ResultRecord) -> dict[str, str]:
    return {
        "bench.upstream": record.upstream,
        "bench.task": record.task,
        "bench.suite": record.suite,
        "bench.weights_hash": str(record.upstream_info.get("weights_hash", "")),
        "bench.version": record.versions.get("bench", ""),
    }


def log_record(record: ResultRecord, uri: str, config_yaml: str) -> dict[str, str]:
    """Log one finished run; returns ``{"tracking_uri", "experiment", "run_id"}``."""
    from mlflow.entities import Metric, Param, RunTag

    try:
        client = _client(uri)
        experiment = experiment_name(record.suite)
        experiment_id = _experiment_id(client, experiment, uri)
        run = client.create_run(
            experiment_id, run_name=run_name(record.upstream, record.task), tags=_tags(record)
        )
        run_id = run.info.run_id
        now = int(run.info.start_time)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in _metrics(record).items()],
            params=[Param(k, v) for k, v in _params(record).items()],
            tags=[RunTag(k, v) for k, v in _tags(record).items()],
        )
        with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as folder:
            for path in _artifacts(record, config_yaml, Path(folder)):
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
    except Exception as error:  # MLflow raises many types; all mean "not tracked"
        raise TrackingError(f"could not log to MLflow at {uri}: {error}") from error
    return {"tracking_uri": uri, "experiment": experiment, "run_id": run_id}


def _artifacts(record: ResultRecord, config_yaml: str, folder: Path) -> list[Path]:
    paths = [folder / "result.json", folder / "config.yaml", folder / "trials.json"]
    paths[0].write_text(record.to_json())
    paths[1].write_text(config_yaml)
    paths[2].write_text(json.dumps(record.trials, indent=1, default=str))
    if record.layer_weights and len(record.layer_weights) > 1:
        paths.append(plot_layer_weights(record, folder / "layer_weights.png"))
    return paths


def plot_layer_weights(record: ResultRecord, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = record.layer_weights or []
    figure, axis = plt.subplots(figsize=(max(4.0, 0.35 * len(weights) + 1.5), 2.8))
    axis.bar(range(len(weights)), weights, color="#3b6ea8")
    axis.set_xlabel("layer")
    axis.set_ylabel("softmax weight")
    axis.set_title(f"{record.upstream} on {record.task}", fontsize=9)
    axis.set_xticks(range(len(weights)))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
