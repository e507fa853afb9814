"""Runs (upstream, task) pairs: data -> cached features -> probes -> record + MLflow.

The runner is the only place that knows every part: tasks read data, upstreams encode,
the cache stores, protocols probe, tracking and records keep the results.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from bench.config import to_container, to_yaml, tracking_uri
from bench.records import ResultRecord, versions, write_record
from bench.task import TASKS, Task, TaskRun

log = logging.getLogger(__name__)


class UpstreamLoadError(RuntimeError):
    """The upstream could not be built (missing weights, refused remote code, bad layout)."""


@dataclass
class LoadedUpstream:
    name: str
    model: Any  # bench.upstreams.base.Upstream (torch imported lazily)
    bundle: Any
    info: Any  # bench.protocols.base.UpstreamInfo


@dataclass
class TaskOutcome:
    task: str
    upstream: str
    record: ResultRecord | None = None
    record_path: Path | None = None
    error: str | None = None


def resolve_data_root(task_cls: type[Task], task_run: TaskRun, config: DictConfig) -> Path | None:
    """--data-root, else ``data.roots[task]``, else ``data.root``, else the task's own default."""
    if task_run.data_root is not None:
        return Path(task_run.data_root)
    name = task_cls.metadata.name
    if name in config.data.roots:
        return Path(config.data.roots[name])
    if config.data.root:
        return Path(config.data.root)
    return task_cls.default_data_root(Path(config.paths.data))


def probe_settings(task: Task, config: DictConfig) -> Any:
    """The task's schedule with the config's ``probe.*`` overrides applied."""
    from bench.parallel import probe_workers
    from bench.protocols.base import ProbeSettings

    schedule, probe = task.schedule, config.probe
    layers: str | int = (
        probe.layers if not str(probe.layers).lstrip("-").isdigit() else int(probe.layers)
    )

    def pick(name: str) -> Any:
        value = probe.get(name)
        return getattr(schedule, name) if value is None else value

    return ProbeSettings(
        lr_grid=tuple(float(lr) for lr in pick("lr_grid")),
        seeds=tuple(int(s) for s in probe.seeds),
        batch_size=int(pick("batch_size")),
        max_steps=int(pick("max_steps")),
        eval_every=int(pick("eval_every")),
        patience=int(pick("patience")),
        optimizer=schedule.optimizer,
        weight_decay=schedule.weight_decay,
        layers=layers,
        layer_norm=bool(probe.layer_norm),
        device=str(probe.device),
        progress=bool(config.runtime.progress),
        workers=probe_workers(probe.workers, str(probe.device)),
        stack=bool(probe.stack),
    )


class Runner:
    """Runs tasks for upstreams under one configuration; builds each upstream once."""

    def __init__(self, config: DictConfig):
        self.config = config
        self._upstreams: dict[str, LoadedUpstream] = {}

    def load_upstream(self, name: str) -> LoadedUpstream:
        if name not in self._upstreams:
            self._upstreams[name] = self._build_upstream(name)
        return self._upstreams[name]

    def _build_upstream(self, name: str) -> LoadedUpstream:
        from bench.protocols.base import UpstreamInfo
        from bench.upstreams import resolve_upstream
        from bench.upstreams.bundle import RemoteCodeNotTrustedError

        bundle = resolve_upstream(name)
        options: dict[str, Any] = {}
        if bundle.remote_code:
            if not self.config.upstream.trust_remote_code:
                raise UpstreamLoadError(str(RemoteCodeNotTrustedError(name, bundle.source)))
            options["trust_remote_code"] = True
        if self.config.upstream.revision:
            options["revision"] = self.config.upstream.revision
        log.info("loading upstream %s (%s)", name, bundle.source)
        model = bundle.build(**options)
        sizes = set(model.hidden_sizes)
        if len(sizes) != 1:
            raise UpstreamLoadError(
                f"upstream '{name}' has layers of different sizes {model.hidden_sizes}; "
                "bench's weighted sum needs one size"
            )
        info = UpstreamInfo(
            name=name,
            num_layers=model.num_layers,
            hidden_size=sizes.pop(),
            frame_rate=float(model.frame_rate),
            first_frame_centre_s=float(model.first_frame_centre_s),
            scene_embedding_size=model.scene_embedding_size,
        )
        return LoadedUpstream(name=name, model=model, bundle=bundle, info=info)

    def run(self, task_run: TaskRun, upstream_name: str) -> TaskOutcome:
        """Run one task; errors are returned (with their message), not raised."""
        from bench.audio import AudioError
        from bench.cache import CacheError
        from bench.data import DataError
        from bench.extract import UpstreamOutputError
        from bench.registry import UnknownNameError
        from bench.tracking import TrackingError

        outcome = TaskOutcome(task=task_run.task, upstream=upstream_name)
        try:
            outcome.record, outcome.record_path = self._run(task_run, upstream_name)
        except (
            AudioError,
            CacheError,
            DataError,
            UpstreamOutputError,
            UnknownNameError,
            UpstreamLoadError,
            TrackingError,
            ValueError,
        ) as error:
            outcome.error = str(error)
            log.error("%s on %s failed: %s", upstream_name, task_run.task, error)
        return outcome

    def _run(self, task_run: TaskRun, upstream_name: str) -> tuple[ResultRecord, Path]:
        from bench.cache import FeatureCache
        from bench.extract import Extractor, resolve_device, stored_feature_kind
        from bench.protocols.base import PROTOCOLS

        config = self.config
        started = time.perf_counter()
        task_cls = TASKS.get(task_run.task)
        options = {**config.task_options.get(task_run.task, {}), **task_run.options}
        # Read metadata, schedule and protocol from the instance: a generic task (e.g. any
        # HEAR task directory) sets them from its data when constructed.
        task = task_cls(resolve_data_root(task_cls, task_run, config), options)
        task.manifest_dir = Path(config.paths.data) / "manifests"
        name = task.metadata.name
        task.prepare()
        data = task.load()
        data.check(name)
        protocol = PROTOCOLS.get(task.protocol)()
        loaded_at = time.perf_counter()

        upstream = self.load_upstream(upstream_name)
        model = upstream.model
        gain_db = float(task.audio_gain_db)
        clip_seconds = protocol.clip_seconds(data)
        kind = stored_feature_kind(protocol.feature_kind, model)
        key_fields = {
            "upstream": upstream_name,
            "weights_hash": model.weights_hash(),
            "hidden_sizes": tuple(model.hidden_sizes),
            "frame_rate": float(model.frame_rate),
            "sample_rate": int(model.sample_rate),
            "kind": kind,
            "gain_db": gain_db,
            "clip_seconds": clip_seconds,
        }
        cache = FeatureCache.open(
            Path(config.paths.cache), key_fields, data.all_items(), config.extract.shard_seconds
        )
        if kind == "sequence":
            self._check_sequence_budget(cache, upstream)
        extractor = Extractor(
            model,
            upstream_name,
            resolve_device(config.extract.device),
            config.extract.batch_seconds,
            equal_lengths_only=not model.padding_invariant
            and config.extract.padding_variant == "exact",
            show_progress=config.runtime.progress,
            gain_db=gain_db,
            clip_seconds=clip_seconds,
        )
        extraction = extractor.fill(cache, label=f"{name} ({upstream_name})")
        features = cache.load()

        settings = probe_settings(task, config)
        if hasattr(protocol, "bind_upstream"):  # protocols that use the model itself (units)
            protocol.bind_upstream(model)
        probe_started = time.perf_counter()
        result = protocol.run(task, data, features, upstream.info, settings)
        finished = time.perf_counter()

        record = ResultRecord(
            task=name,
            suite=task.metadata.suite,
            upstream=upstream_name,
            main_metric=task.metadata.main_metric,
            higher_is_better=task.metadata.higher_is_better,
            metrics={
                split: {m: s.to_dict() for m, s in values.items()}
                for split, values in result.metrics.items()
            },
            selected=result.selected,
            probe={
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(settings).items()
                if k not in ("progress", "device")
            },
            layer_weights=result.layer_weights,
            upstream_info={
                "source": upstream.bundle.source,
                "family": upstream.bundle.family,
                "weights_hash": key_fields["weights_hash"],
                "num_layers": upstream.info.num_layers,
                "hidden_size": upstream.info.hidden_size,
                "frame_rate": upstream.info.frame_rate,
            },
            data={
                "root": str(task.data_root) if task.data_root else None,
                "items": {split: len(items) for split, items in data.splits.items()},
                "fingerprint": cache.key.data_fingerprint,
                "cache": str(cache.directory),
            },
            timings={
                "load_data_s": loaded_at - started,
                "extract_s": extraction.wall_seconds,
                "forward_s": extraction.forward_seconds,
                "audio_s": cache.total_seconds,
                "probe_s": finished - probe_started,
                "total_s": finished - started,
            },
            versions=versions(),
            config=to_container(config),
            trials=result.trials,
        )
        if config.tracking.enabled:
            from bench.tracking import log_record

            record.mlflow = log_record(record, tracking_uri(config), to_yaml(config))
        return record, write_record(Path(config.paths.records), record)

    def _check_sequence_budget(self, cache: Any, upstream: LoadedUpstream) -> None:
        info = upstream.info
        size_gb = (
            cache.total_seconds * info.frame_rate * info.num_layers * info.hidden_size * 2 / 1e9
        )
        budget = float(self.config.extract.max_sequence_cache_gb)
        if size_gb > budget:
            raise ValueError(
                f"the frame-level cache would take about {size_gb:.1f} GB, over extract.max_sequence_cache_gb="
                f"{budget:g}; raise the limit or pick one layer (probe.layers=N)"
            )
