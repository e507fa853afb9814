"""Units of work that an executor runs on workers, and the functions workers run.

A planned task (``bench.runner.TaskPlan``, made by the driver) becomes:

- extraction units: a few shards of its feature cache each (``work.shards_per_unit``).
  Workers write committed shards into the one shared cache directory; a shard's commit
  record binds it to its place in the plan, so units of one cache never collide, a
  killed unit's shard is simply missing (its retry extracts it) and a committed shard is
  never extracted again.
- one probe unit: the task's whole sweep, trained on the complete cache. A sweep is one
  unit because its probes train together (side by side, or as one stacked model), which
  finer units would undo; units per task already outnumber the GPUs of most runs
  (docs/scaling.md). Its outcome is written to ``<workspace>/work/`` before the unit
  ends, so a driver killed before the record was written does not train it again.

The driver then writes the record and logs it (``bench.executors.distributed``).
Workers never touch MLflow or the records.

Every unit carries what a worker needs to rebuild its side: the resolved configuration
(paths made absolute), the upstream as typed and the name it is recorded under. A worker
builds each upstream once per process. A unit returns a ``UnitResult``: a failure of the
work itself (bad audio, a NaN from the encoder) is its one-line message, exactly as a
local run gives it, and is not retried; only a worker that died is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fileio import atomic_write_text, safe_name
from bench.task import TaskRun

log = logging.getLogger(__name__)

#: bump when the probe-outcome file changes
OUTCOME_FORMAT = 1


@dataclass(frozen=True)
class WorkerContext:
    """What every unit carries: the resolved configuration (a plain dict, paths absolute),
    the upstream as the user typed it and the name results are recorded under."""

    config: dict[str, Any]
    upstream: str
    name: str | None = None

    @property
    def key(self) -> str:
        """Units with the same context share a worker's built upstream."""
        text = json.dumps([self.config, self.upstream, self.name], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ExtractionUnit:
    context: WorkerContext
    cache_dir: str
    #: the cache's key digest and plan digest as the driver planned them: a worker never
    #: writes into a cache that was planned again since
    key_digest: str
    plan_digest: str
    shards: tuple[int, ...]
    seconds: float  # of audio
    label: str

    def describe(self) -> str:
        first, last = self.shards[0], self.shards[-1]
        which = f"shard {first}" if first == last else f"shards {first}-{last}"
        return f"extraction of {self.label}, {which}"


@dataclass(frozen=True)
class ProbeUnit:
    context: WorkerContext
    task_run: TaskRun
    info: Any  # bench.protocols.base.UpstreamInfo, as the driver built it
    cache_dir: str
    key_digest: str
    #: the cache its features are read from: ``cache_dir``, a cache of the probe's layers,
    #: or None (frames streamed from the encoder)
    fill_dir: str | None
    frames: Any  # bench.frames.plan.FramePlan of a frame-level task, else None
    identity_digest: str
    #: the result-affecting probe settings the identity holds: the worker's must match
    probe: dict[str, Any]
    outcome_file: str
    #: the model runs on the worker (a frame stream, or a protocol that uses it): it needs
    #: what extraction needs (a GPU)
    needs_model: bool
    label: str

    def describe(self) -> str:
        return f"probes of {self.label}"


@dataclass
class UnitResult:
    """error: the one-line message of a unit whose work failed; else None and the stats
    (extraction: ``bench.extract.ExtractionStats``; probes: ``bench.runner.TrainedProbes``)."""

    error: str | None = None
    stats: Any = None
    warnings: list[str] = field(default_factory=list)


def extraction_units(
    plan: Any, context: WorkerContext, shards_per_unit: int
) -> list[ExtractionUnit]:
    """The missing shards of the cache the plan fills, ``shards_per_unit`` to a unit, in
    plan order (neighbours have similar durations, so a unit's batches stay well packed);
    none for frames streamed from the encoder."""
    cache = plan.fill
    if cache is None:
        return []
    missing = cache.missing_shards()
    return [
        ExtractionUnit(
            context=context,
            cache_dir=str(cache.directory.resolve()),
            key_digest=cache.key.digest(),
            plan_digest=cache.plan_digest,
            shards=tuple(shard.index for shard in group),
            seconds=sum(shard.seconds for shard in group),
            label=plan.label,
        )
        for group in (
            missing[i : i + shards_per_unit] for i in range(0, len(missing), shards_per_unit)
        )
    ]


def probe_unit(plan: Any, context: WorkerContext) -> ProbeUnit:
    workspace = Path(context.config["paths"]["workspace"])
    streamed = plan.frames is not None and plan.fill is None
    return ProbeUnit(
        context=context,
        task_run=absolute_task_run(plan.task_run),
        info=plan.upstream.info,
        cache_dir=str(plan.cache.directory.resolve()),
        key_digest=plan.cache.key.digest(),
        fill_dir=None if plan.fill is None else str(plan.fill.directory.resolve()),
        frames=plan.frames,
        identity_digest=plan.identity.digest,
        probe=dict(plan.identity.settings["probe"]),
        outcome_file=str(outcome_file(workspace, plan).resolve()),
        needs_model=streamed or hasattr(plan.protocol, "bind_upstream"),
        label=plan.label,
    )


def absolute_task_run(task_run: TaskRun) -> TaskRun:
    """Workers may start in another directory: data roots made absolute."""
    if task_run.data_root is None:
        return task_run
    return dataclasses.replace(task_run, data_root=Path(task_run.data_root).resolve())


def outcome_file(workspace: Path, plan: Any) -> Path:
    """Where a probe unit leaves its outcome until the driver has written the record."""
    return (
        Path(workspace)
        / "work"
        / safe_name(plan.upstream.name)
        / safe_name(plan.identity.task)
        / f"{plan.identity.digest}.probes.json"
    )


# -- on the worker -----------------------------------------------------------------------

_RUNNERS: dict[str, Any] = {}


def _runner(context: WorkerContext) -> Any:
    """This process's runner for the context (its upstreams stay built between units)."""
    if context.key not in _RUNNERS:
        from omegaconf import OmegaConf

        from bench.progress import setup_logging
        from bench.runner import Runner
        from bench.runtime import configure_threads

        config = OmegaConf.create(context.config)
        setup_logging(str(config.runtime.log_level))
        configure_threads(config.runtime.threads or int(config.work.cpus))
        _RUNNERS.clear()  # one context at a time: a worker holds one upstream's model
        _RUNNERS[context.key] = Runner(config, name=context.name)
    return _RUNNERS[context.key]


def extract_shards(unit: ExtractionUnit) -> UnitResult:
    """Fill the unit's shards of a shared cache (those not committed yet)."""
    from bench.cache import CacheError, FeatureCache
    from bench.runner import Stage, make_extractor

    stage = Stage()
    try:
        runner = _runner(unit.context)
        with stage("loading the upstream", None):
            upstream = runner.load_upstream(unit.context.upstream)
        with stage("extracting features", Path(unit.cache_dir)):
            cache = FeatureCache.at(Path(unit.cache_dir))
            if cache.key.digest() != unit.key_digest or cache.plan_digest != unit.plan_digest:
                raise CacheError(f"{unit.cache_dir}: the cache was planned again since")
            if upstream.model.weights_hash() != cache.key.weights_hash:
                raise CacheError(
                    f"upstream '{unit.context.upstream}' has other weights here than where "
                    "the run was planned (a checkpoint changed, or differs between machines)"
                )
            extractor = make_extractor(runner.config, upstream, cache)
            stats = extractor.fill(cache, label=unit.label, only=set(unit.shards))
    except Exception as error:
        return UnitResult(error=stage.describe(error))
    return UnitResult(stats=stats)


def train_probes(unit: ProbeUnit) -> UnitResult:
    """Train a task's sweep on its complete cache (or its frames streamed from the
    encoder); the outcome goes to ``outcome_file``."""
    from bench.cache import CacheError, FeatureCache, data_fingerprint, unique_refs
    from bench.records import result_affecting
    from bench.runner import (
        LoadedUpstream,
        Stage,
        make_task,
        open_features,
        probe_settings,
        read_task,
        sweep_checkpoints,
        task_profile,
    )
    from bench.runner import train_probes as train
    from bench.task import TASKS
    from bench.upstreams import resolve_upstream

    stage = Stage()
    warnings: list[str] = []
    try:
        finished = read_outcome(Path(unit.outcome_file), unit.identity_digest)
        if finished is not None:  # trained by an earlier attempt
            return UnitResult(stats=finished[0], warnings=finished[1])
        runner = _runner(unit.context)
        config = runner.config
        with stage("reading the task data", unit.task_run.data_root):
            task_cls = TASKS.get(unit.task_run.task)
            profile = task_profile(task_cls, unit.task_run, config)
            task = make_task(task_cls, unit.task_run, config, profile)
            data, protocol = read_task(task, runner.quick)
        settings = probe_settings(task, config, runner.quick, profile)
        if result_affecting(dataclasses.asdict(settings)) != unit.probe:
            raise ValueError(
                "the probe settings resolve differently on this worker than where the run "
                "was planned (probe.device or probe.precision auto?); set them explicitly"
            )
        if unit.needs_model:
            with stage("loading the upstream", None):
                upstream = runner.load_upstream(unit.context.upstream)
        else:
            bundle = resolve_upstream(unit.context.upstream)
            upstream = LoadedUpstream(unit.info.name, "", None, bundle, unit.info)
        with stage("extracting features", Path(unit.cache_dir)):
            cache = FeatureCache.at(Path(unit.cache_dir))
            if cache.key.digest() != unit.key_digest:
                raise CacheError(f"{unit.cache_dir}: the cache was planned again since")
            if data_fingerprint(unique_refs(data.all_items())) != cache.key.data_fingerprint:
                raise CacheError(
                    f"{unit.task_run.task}: its audio changed since the run was planned "
                    "(or differs on this machine)"
                )
            fill = None if unit.fill_dir is None else FeatureCache.at(Path(unit.fill_dir))
            features, info, narrowed = open_features(
                unit.frames, cache, fill, upstream, settings, config
            )
        checkpoints = sweep_checkpoints(
            config.paths.workspace, upstream.name, unit.task_run.task, unit.identity_digest
        )
        trained = train(
            protocol, task, data, features, upstream, info, narrowed, stage, warnings, checkpoints
        )
        with stage("writing the probes' outcome", Path(unit.outcome_file)):
            write_outcome(Path(unit.outcome_file), unit.identity_digest, trained, warnings)
    except Exception as error:
        return UnitResult(error=stage.describe(error), warnings=warnings)
    return UnitResult(stats=trained, warnings=warnings)


# -- the probe-outcome file --------------------------------------------------------------


def write_outcome(path: Path, digest: str, trained: Any, warnings: list[str]) -> None:
    result = trained.result
    payload = {
        "format": OUTCOME_FORMAT,
        "identity": digest,
        "metrics": {
            split: {metric: stat.to_dict() for metric, stat in values.items()}
            for split, values in result.metrics.items()
        },
        "selected": result.selected,
        "trials": result.trials,
        "layer_weights": result.layer_weights,
        "seconds": trained.seconds,
        "workers": trained.workers,
        "forward_seconds": trained.forward_seconds,
        "warnings": warnings,
    }
    atomic_write_text(path, json.dumps(payload, default=_plain))


def read_outcome(path: Path, digest: str) -> tuple[Any, list[str]] | None:
    """A finished probe unit's outcome of this identity, or None (none, or unusable)."""
    from bench.protocols.base import ProbeOutcome, Stat
    from bench.runner import TrainedProbes

    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("%s is unreadable (%s); training again", path, error)
        return None
    if payload.get("format") != OUTCOME_FORMAT or payload.get("identity") != digest:
        return None

    def stat(values: dict[str, Any]) -> Stat:
        return Stat(
            mean=_float(values["mean"]),
            std=_float(values["std"]),
            values=tuple(_float(v) for v in values["values"]),
        )

    result = ProbeOutcome(
        metrics={
            split: {metric: stat(values) for metric, values in metrics.items()}
            for split, metrics in payload["metrics"].items()
        },
        selected=payload["selected"],
        trials=payload["trials"],
        layer_weights=payload["layer_weights"],
    )
    trained = TrainedProbes(
        result,
        float(payload["seconds"]),
        int(payload["workers"]),
        float(payload["forward_seconds"]),
    )
    return trained, list(payload["warnings"])


def _float(value: float | None) -> float:
    """Stat.to_dict writes non-finite values as null."""
    return math.nan if value is None else float(value)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in trials, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
