"""Results from an MLflow store or server, read through bench's logging conventions.

bench logs one run per (upstream, task) in experiment ``bench/<suite>``, tagged
``bench.upstream`` / ``bench.task`` / ``bench.suite`` / ``bench.weights_hash`` /
``bench.version``, with metrics ``test_<metric>`` and ``test_<metric>_std``, layer weights
``layer_weight_<i>``, and params ``main_metric``, ``higher_is_better`` and ``probe.seeds``
(see bench.tracking). Runs without the bench tags are ignored.
"""

from __future__ import annotations

import ast
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.identity import describe_result
from bench.profiles import DEFAULT_PROFILE, WEIGHTED, protocol_label
from bench.report import ReportError
from bench.report.results import MetricSummary, TaskResult
from bench.tracking import EXPERIMENT_PREFIX

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
TEST_PREFIX = "test_"
STD_SUFFIX = "_std"
LAYER_WEIGHT_PREFIX = "layer_weight_"


def read_runs(uri: str) -> list[TaskResult]:
    """Every finished bench run in the store, newest first."""
    _refuse_missing_sqlite_store(uri)
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        experiment_ids = [
            experiment.experiment_id
            for experiment in _all_pages(
                lambda token: client.search_experiments(
                    filter_string=f"name LIKE '{EXPERIMENT_PREFIX}/%'",
                    max_results=PAGE_SIZE,
                    page_token=token,
                )
            )
        ]
        if not experiment_ids:
            return []
        runs = _all_pages(
            lambda token: client.search_runs(
                experiment_ids,
                filter_string="attributes.status = 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=PAGE_SIZE,
                page_token=token,
            )
        )
    except Exception as error:  # MLflow and its HTTP client raise many types
        raise ReportError(f"cannot read MLflow at {uri}: {error}") from error
    results = [result_from_run(run) for run in runs]
    return [result for result in results if result is not None]


def _refuse_missing_sqlite_store(uri: str) -> None:
    """Reading a sqlite URI that does not exist would silently create an empty store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix) :]).is_file():
        raise ReportError(f"no MLflow store at {uri}")


def _all_pages(search: Any) -> list[Any]:
    items, token = [], None
    while True:
        page = search(token)
        items.extend(page)
        token = page.token
        if not token:
            return items


def result_from_run(run: Any) -> TaskResult | None:
    tags, params = run.data.tags, run.data.params
    upstream, task = tags.get("bench.upstream"), tags.get("bench.task")
    main_metric = params.get("main_metric")
    if not (upstream and task and main_metric):
        return None
    higher_is_better = _higher_is_better(params, task)
    if higher_is_better is None:
        log.warning(
            "MLflow run %s (%s/%s): direction unknown, skipped", run.info.run_id, upstream, task
        )
        return None
    seeds = _seed_count(params.get("probe.seeds"))
    digest = tags.get("bench.identity", "")
    quick = tags.get("bench.quick") == "true"
    started = datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat()
    return TaskResult(
        upstream=upstream,
        task=task,
        suite=tags.get("bench.suite", task.split(".", 1)[0]),
        main_metric=main_metric,
        higher_is_better=higher_is_better,
        metrics=_test_metrics(run.data.metrics, seeds),
        layer_weights=_layer_weights(run.data.metrics),
        weights_hash=tags.get("bench.weights_hash", ""),
        bench_version=tags.get("bench.version", ""),
        origin="mlflow",
        run_id=run.info.run_id,
        digest=digest,
        quick=quick,
        rank=(seeds, False, 0, started),
        protocol_label=params.get("protocol")
        or protocol_label(DEFAULT_PROFILE, params.get("probe.layers", WEIGHTED)),
        description=describe_result(digest or run.info.run_id, seeds, False, quick, started),
    )


def _test_metrics(metrics: dict[str, float], seeds: int) -> dict[str, MetricSummary]:
    names = {
        key[len(TEST_PREFIX) :]
        for key in metrics
        if key.startswith(TEST_PREFIX) and not key.endswith(STD_SUFFIX)
    }
    return {
        name: MetricSummary(
            mean=metrics[f"{TEST_PREFIX}{name}"],
            std=metrics.get(f"{TEST_PREFIX}{name}{STD_SUFFIX}"),
            n=seeds,
        )
        for name in sorted(names)
    }


def _layer_weights(metrics: dict[str, float]) -> tuple[float, ...] | None:
    layers = sorted(
        (int(key[len(LAYER_WEIGHT_PREFIX) :]), value)
        for key, value in metrics.items()
        if key.startswith(LAYER_WEIGHT_PREFIX) and key[len(LAYER_WEIGHT_PREFIX) :].isdigit()
    )
    return tuple(value for _, value in layers) or None


def _higher_is_better(params: dict[str, str], task: str) -> bool | None:
    """The logged direction; for runs logged before bench recorded it, the task's own."""
    if "higher_is_better" in params:
        return params["higher_is_better"] == "True"
    from bench.registry import UnknownNameError
    from bench.task import TASKS

    try:
        return TASKS.get(task).metadata.higher_is_better
    except UnknownNameError:
        return None


def _seed_count(text: str | None) -> int:
    """``probe.seeds`` is logged as the list's text, e.g. ``[0, 1, 2]``."""
    try:
        seeds = ast.literal_eval(text) if text else []
    except (ValueError, SyntaxError):
        return 0
    return len(seeds) if isinstance(seeds, list | tuple) else 0
