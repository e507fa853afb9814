"""MLflow: each task's run, live, mirroring its result record.

Conventions, so that the MLflow UI's run comparison is useful: one experiment per suite
(``bench/<suite>``); one run per task, started when the task starts and ended when it
ends (FINISHED, FAILED, or KILLED on Ctrl-C/SIGTERM), named ``<upstream>/<task>
#<identity>``; tags ``bench.upstream``, ``bench.task``, ``bench.suite``, ``bench.identity``,
``bench.settings_digest``, ``bench.quick``, ``bench.record`` (the record's path),
``bench.weights_hash``, ``bench.version``. Metrics are ``<split>_<metric>`` (mean over seeds)
and ``<split>_<metric>_std``; learned layer weights are ``layer_weight_<i>`` and a bar plot;
params hold the ``protocol`` label and its settings (``protocol.*``, bench.profiles), the
probe settings, the ``main_metric`` and its direction
(``higher_is_better``), so that a report can be made from MLflow alone
(bench.report.mlflow_reader). Each trained probe of the sweep is a nested child run with
its settings, scores and, when the protocol kept one, its dev-metric curve as step metrics.
The record, the resolved config and the trials are artifacts.

The record is the source of truth and is written first: a tracking failure is a warning,
and ``bench log`` logs the records whose logging did not complete. A local SQLite store is
created and upgraded under a file lock (two processes creating one at once broke it), and a
store left half-migrated (``_alembic_tmp_*`` tables) is repaired when it holds no runs, or
explained when it does.

The default store is a local SQLite file; ``tracking.uri`` or ``MLFLOW_TRACKING_URI``
point it elsewhere (e.g. an ``mlflow server``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.records import RecordStore, ResultRecord, StoredRecord

if TYPE_CHECKING:
    from bench.identity import RecordIdentity

log = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "bench"
SQLITE_PREFIX = "sqlite:///"
BATCH = 900  # MLflow takes at most 1000 metrics per log_batch


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused the run."""


def experiment_name(suite: str) -> str:
    return f"{EXPERIMENT_PREFIX}/{suite}"


def run_name(upstream: str, task: str, digest: str = "", quick: bool = False) -> str:
    tail = f" #{digest[:8]}" if digest else ""
    return f"{upstream}/{task}{tail}{' quick' if quick else ''}"


def _sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///path/mlflow.db`` URI, else None (a server, another store)."""
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


# -- the store ----------------------------------------------------------------------------------


def open_client(uri: str) -> Any:
    """An MlflowClient on ``uri`` whose store exists and is usable.

    A local SQLite store is created (or upgraded) under ``<store>.lock``; one left
    half-migrated is rebuilt if it holds no runs, else reported (TrackingError).
    """
    from mlflow.tracking import MlflowClient

    for noisy in ("mlflow", "alembic"):  # importing mlflow resets its loggers to INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    database = _sqlite_path(uri)
    if database is None:
        return MlflowClient(tracking_uri=uri)
    from bench.fileio import file_lock

    with file_lock(Path(f"{database}.lock"), f"creating the MLflow store {database}"):
        repair_half_migrated(database)
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # creates or checks the schema, locked
    return client


def half_migrated_tables(database: Path) -> list[str]:
    """``_alembic_tmp_*`` tables: left by a schema migration that was cut short."""
    if not database.is_file() or database.stat().st_size == 0:
        return []
    with _sqlite(database) as connection:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_alembic\\_tmp\\_%' ESCAPE '\\'"
        ).fetchall()
    return sorted(row[0] for row in rows)


def repair_half_migrated(database: Path) -> Path | None:
    """Set aside a half-migrated store that holds no runs (a fresh one broke while it was
    created: MLflow then creates a new one); returns where it went. One that holds runs is
    not touched: TrackingError says what to do."""
    leftovers = half_migrated_tables(database)
    if not leftovers:
        return None
    runs = _count_runs(database)
    if runs:
        raise TrackingError(
            f"the MLflow store {database} was left half-migrated by an interrupted schema "
            f"upgrade (leftover tables {', '.join(leftovers)}) and holds {runs} runs, so bench "
            f"did not change it. The result records are safe. Back it up, move it aside "
            f"(mv {database} {database}.broken), then run `bench log` to log every record into "
            "a fresh store"
        )
    aside = database.with_name(
        f"{database.name}.half-migrated-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    )
    os.replace(database, aside)
    _forget_engines(database)
    log.warning(
        "the MLflow store %s was half-migrated and held no runs (leftover tables %s); moved it "
        "to %s and creating a new one",
        database,
        ", ".join(leftovers),
        aside,
    )
    return aside


def _forget_engines(database: Path) -> None:
    """Drop this process's MLflow stores and engines on a store that was set aside: MLflow
    caches both per URI, and their connections would go on using the moved file."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._tracking_service import utils

    engines = getattr(SqlAlchemyStore, "_engine_map", {})
    for uri in list(engines):
        path = _sqlite_path(uri)
        if path is not None and path.resolve() == database.resolve():
            engines.pop(uri).dispose()
    cached = getattr(utils._tracking_store_registry, "_get_store_with_resolved_uri", None)
    if hasattr(cached, "cache_clear"):
        cached.cache_clear()


def _count_runs(database: Path) -> int:
    with _sqlite(database) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM runs").fetchone()[0])
        except sqlite3.OperationalError:  # no runs table: nothing was ever logged
            return 0


@contextmanager
def _sqlite(database: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def _experiment_id(client: Any, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    database = _sqlite_path(uri)
    # With a local store, keep artifacts in the workspace rather than ./mlruns of the cwd.
    location = (
        (database.parent / "mlartifacts" / name.replace("/", "-")).resolve().as_uri()
        if database
        else None
    )
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created by a concurrent run meanwhile
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _host_tags() -> dict[str, str]:
    return {"bench.host": socket.gethostname(), "bench.pid": str(os.getpid())}


def end_stale_runs(client: Any, experiment_id: str) -> int:
    """Mark KILLED the RUNNING runs of dead bench processes on this host (killed with -9)."""
    host = socket.gethostname()
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`bench.host` = '{host}'",
        max_results=200,
    )
    ended = 0
    for run in runs:
        pid = run.data.tags.get("bench.pid", "")
        if pid.isdigit() and not _process_alive(int(pid)):
            client.set_tag(run.info.run_id, "bench.error", "the bench process died")
            client.set_terminated(run.info.run_id, status="KILLED")
            ended += 1
    return ended


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- one task's run -----------------------------------------------------------------------------


class RunTracker:
    """A task's MLflow run from start to end. It never raises: a tracking failure is a
    warning (``warnings``), and the record is logged later by ``bench log``."""

    def __init__(self, client: Any = None, uri: str = "", experiment: str = "", run_id: str = ""):
        self.client, self.uri, self.experiment, self.run_id = client, uri, experiment, run_id
        self.warnings: list[str] = []

    @classmethod
    def start(
        cls,
        *,
        enabled: bool,
        uri: str,
        suite: str,
        upstream: str,
        task: str,
        identity: RecordIdentity,
        started_at: float,
    ) -> RunTracker:
        if not enabled:
            return cls()
        try:
            client = open_client(uri)
            experiment = experiment_name(suite)
            experiment_id = _experiment_id(client, experiment, uri)
            end_stale_runs(client, experiment_id)
            quick = identity.settings.get("quick") is not None
            run = client.create_run(
                experiment_id,
                start_time=int(started_at * 1000),
                run_name=run_name(upstream, task, identity.digest, quick),
                tags={
                    **_identity_tags(upstream, task, suite, identity, quick),
                    **_host_tags(),
                },
            )
        except Exception as error:  # MLflow raises many types; all mean "not tracked now"
            tracker = cls()
            tracker.warnings.append(_not_tracked(uri, error))
            log.warning("%s", tracker.warnings[-1])
            return tracker
        return cls(client, uri, experiment, run.info.run_id)

    @property
    def link(self) -> dict[str, str] | None:
        """What the record says about its MLflow run (status ``pending`` until logged)."""
        if not self.run_id:
            return None
        return {
            "tracking_uri": self.uri,
            "experiment": self.experiment,
            "run_id": self.run_id,
            "status": "pending",
        }

    def finish(self, stored: StoredRecord, store: RecordStore, config_yaml: str) -> list[str]:
        """Log the written record into the run and end it; the record then says ``logged``."""
        if not self.run_id:
            return self.warnings
        try:
            _log_into(self.client, self.run_id, stored, config_yaml)
        except Exception as error:
            message = _not_logged(stored, self.uri, error)
            log.warning("%s", message)
            self._end("FAILED", message)
            return [*self.warnings, message]
        _mark_logged(stored, store)
        return self.warnings

    def end_failed(self, error: BaseException) -> None:
        """End the run of a task that failed (FAILED) or was stopped (KILLED)."""
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self._end(status, f"{type(error).__name__}: {error}")

    def _end(self, status: str, message: str) -> None:
        if not self.run_id:
            return
        try:
            self.client.set_tag(self.run_id, "bench.error", message[:4000])
            self.client.set_terminated(self.run_id, status=status)
        except Exception as error:  # the store is gone too: nothing more to do
            log.debug("could not end MLflow run %s: %s", self.run_id, error)


def _identity_tags(
    upstream: str, task: str, suite: str, identity: RecordIdentity, quick: bool
) -> dict[str, str]:
    return {
        "bench.upstream": upstream,
        "bench.task": task,
        "bench.suite": suite,
        "bench.identity": identity.digest,
        "bench.settings_digest": identity.settings_digest,
        "bench.quick": str(quick).lower(),
        "bench.weights_hash": str(identity.inputs.get("weights_hash", "")),
    }


def _not_tracked(uri: str, error: BaseException) -> str:
    return (
        f"MLflow at {uri} is not usable ({_first_line(error)}); the task runs untracked "
        "(its record is kept: `bench log` logs it once the store works)"
    )


def _not_logged(stored: StoredRecord, uri: str, error: BaseException) -> str:
    return (
        f"could not log {stored.record.upstream} on {stored.record.task} to MLflow at {uri} "
        f"({_first_line(error)}); the record is kept at {stored.path}: `bench log` logs it "
        "once the store works"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:500]


def _mark_logged(stored: StoredRecord, store: RecordStore) -> None:
    stored.record.mlflow = {**(stored.record.mlflow or {}), "status": "logged"}
    try:
        store.rewrite(stored)
    except OSError as error:  # the results are on disk; only the status is stale
        log.warning("could not mark %s as logged (%s)", stored.path, error)


# -- logging a record ---------------------------------------------------------------------------


def relog(stored: StoredRecord, store: RecordStore, uri: str) -> list[str]:
    """Log a record whose logging did not complete: into its own run if the store has it,
    else into a new run. Returns warnings (empty when it worked)."""
    from bench.config import yaml_of

    record = stored.record
    try:
        client = open_client(uri)
        run_id = _existing_run(client, (record.mlflow or {}).get("run_id"))
        if run_id is None:
            run_id = _create_run_for(client, record, uri)
            record.mlflow = {
                "tracking_uri": uri,
                "experiment": experiment_name(record.suite),
                "run_id": run_id,
                "status": "pending",
            }
            store.rewrite(stored)
        _log_into(client, run_id, stored, yaml_of(record.config))
    except Exception as error:
        message = _not_logged(stored, uri, error)
        log.warning("%s", message)
        return [message]
    _mark_logged(stored, store)
    log.info("logged %s to MLflow run %s", stored.path, run_id)
    return []


def log_record(record: ResultRecord, uri: str, config_yaml: str) -> dict[str, str]:
    """Log a finished record into a new run; returns its ``mlflow`` link (status logged)."""
    try:
        client = open_client(uri)
        run_id = _create_run_for(client, record, uri)
        _log_into(client, run_id, StoredRecord(record, Path("")), config_yaml)
    except TrackingError:
        raise
    except Exception as error:  # MLflow raises many types; all mean "not tracked"
        raise TrackingError(f"could not log to MLflow at {uri}: {_first_line(error)}") from error
    experiment = experiment_name(record.suite)
    return {"tracking_uri": uri, "experiment": experiment, "run_id": run_id, "status": "logged"}


def log_records(store: RecordStore, uri: str) -> tuple[int, int, list[str]]:
    """Make MLflow at ``uri`` mirror every record: log those whose run is missing there or
    did not finish. Returns (logged, already there, failure messages)."""
    client = _client_or_raise(uri)
    logged, present, failures = 0, 0, []
    for stored in store.runs():
        run_id = _existing_run(client, (stored.record.mlflow or {}).get("run_id"))
        if run_id is not None and client.get_run(run_id).info.status == "FINISHED":
            if (stored.record.mlflow or {}).get("status") != "logged":
                _mark_logged(stored, store)
            present += 1
            continue
        problems = relog(stored, store, uri)
        failures += problems
        logged += not problems
    return logged, present, failures


def _client_or_raise(uri: str) -> Any:
    try:
        return open_client(uri)
    except TrackingError:
        raise
    except Exception as error:
        raise TrackingError(f"MLflow at {uri} is not usable: {_first_line(error)}") from error


def _existing_run(client: Any, run_id: str | None) -> str | None:
    if not run_id:
        return None
    try:
        return client.get_run(run_id).info.run_id
    except Exception:  # not in this store (deleted, or another store)
        return None


def _create_run_for(client: Any, record: ResultRecord, uri: str) -> str:
    experiment_id = _experiment_id(client, experiment_name(record.suite), uri)
    identity = record.record_identity
    created = datetime.fromisoformat(record.created_at).timestamp()
    started = created - float(record.timings.get("total_s") or 0.0)
    run = client.create_run(
        experiment_id,
        start_time=int(started * 1000),
        run_name=run_name(record.upstream, record.task, record.digest, record.is_quick),
        tags=_identity_tags(record.upstream, record.task, record.suite, identity, record.is_quick),
    )
    return run.info.run_id


def _log_into(client: Any, run_id: str, stored: StoredRecord, config_yaml: str) -> None:
    """Params, metrics, tags, artifacts and child runs of a record, then FINISHED."""
    from mlflow.entities import Metric, Param, RunTag

    record = stored.record
    now = int(time.time() * 1000)
    existing = client.get_run(run_id).data.params
    params = {k: v for k, v in _params(record).items() if k not in existing}
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in _metrics(record).items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[
            RunTag("bench.record", str(stored.path)),
            RunTag("bench.version", record.versions.get("bench", "")),
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as folder:
        for path in _artifacts(record, config_yaml, Path(folder)):
            client.log_artifact(run_id, str(path))
    end = max(int(datetime.fromisoformat(record.created_at).timestamp() * 1000), now)
    _log_trials(client, run_id, record, end)
    client.set_terminated(run_id, status="FINISHED", end_time=end)


def _log_trials(client: Any, parent_id: str, record: ResultRecord, end: int) -> None:
    """One nested run per trained probe: its settings, scores and dev curve; each spans
    its task's run (``end``: the parent's end time, ms), in which it trained."""
    from mlflow.entities import Metric, Param

    parent = client.get_run(parent_id)
    logged = {
        run.data.tags.get("bench.trial")
        for run in client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
            max_results=5000,
        )
    }
    now = int(time.time() * 1000)
    for index, trial in enumerate(record.trials):
        if str(index) in logged:
            continue
        settings = {k: v for k, v in trial.items() if k != "curve" and not _is_number(v)}
        settings |= {k: v for k, v in trial.items() if k in ("lr", "seed", "fold")}
        name = " ".join(f"{k}={v}" for k, v in settings.items()) or f"trial {index}"
        child = client.create_run(
            parent.info.experiment_id,
            start_time=parent.info.start_time,
            run_name=name[:250],
            tags={"mlflow.parentRunId": parent_id, "bench.trial": str(index)},
        )
        metrics = [Metric(k, float(v), now, 0) for k, v in trial.items() if _is_number(v)]
        metrics += _curve_metrics(trial, now)
        params = [Param(k, str(v)[:500]) for k, v in trial.items() if k != "curve"]
        for start in range(0, max(len(metrics), 1), BATCH):
            client.log_batch(
                child.info.run_id,
                metrics=metrics[start : start + BATCH],
                params=params if start == 0 else [],
            )
        client.set_terminated(child.info.run_id, status="FINISHED", end_time=end)


def _curve_metrics(trial: dict[str, Any], now: int) -> list[Any]:
    """The trial's ``curve`` ([(step, dev score), ...]) as step metrics of its dev metric."""
    from mlflow.entities import Metric

    curve = trial.get("curve") or []
    name = next((k for k in trial if k.startswith("dev_")), "dev_score") + "_curve"
    return [
        Metric(name, float(score), now, int(step))
        for step, score in curve
        if score is not None and math.isfinite(float(score))
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
        "seeds": record.seed_count,
        "quick": record.quick,
        "protocol": record.protocol_label,
        **{
            f"protocol.{k}": v
            for k, v in (record.protocol or {}).items()
            if k != "label" and not isinstance(v, dict)
        },
        **{f"probe.{k}": v for k, v in record.probe.items()},
        **{f"selected.{k}": v for k, v in record.selected.items()},
        **{f"upstream.{k}": v for k, v in record.upstream_info.items()},
        **{f"data.{k}": v for k, v in record.data.items() if not isinstance(v, dict)},
        **{f"version.{k}": v for k, v in record.versions.items()},
    }
    return {key: str(value)[:500] for key, value in params.items()}


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
