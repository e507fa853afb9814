"""Runs (upstream, task) pairs: data -> cached features -> probes -> record, then MLflow.

The runner is the only place that knows every part: tasks read data, upstreams encode,
the cache stores, protocols probe, records keep the results and tracking mirrors them.

Order of one task (see docs/architecture.md): load the data and the upstream; open the
feature cache; compute the run's identity (bench.identity); reuse the latest complete
record of that identity unless asked to train again; else start the MLflow run, extract,
train, write the record (the source of truth), then log it. A failure at any stage is
that task's failure, reported in one line naming the stage and the cause; the suite goes
on. A tracking failure is a warning: the record is kept and ``bench log`` logs it later.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig

from bench.config import to_container, to_yaml, tracking_uri
from bench.errors import is_expected, missing_package_message
from bench.identity import RecordIdentity, canonical_upstream
from bench.profiles import (
    DEFAULT_PROFILE,
    FAST_SEEDS,
    REFERENCE_FIXED,
    WEIGHTED,
    ProfileError,
    ResolvedProfile,
    resolve_profile,
)
from bench.quick import QuickLimits, limit_items
from bench.records import RecordStore, ResultRecord, StoredRecord, result_affecting, versions
from bench.task import TASKS, Task, TaskRun

log = logging.getLogger(__name__)

#: what a rerun does with an identity that already has a complete record
Existing = Literal["reuse", "rerun", "overwrite"]

#: settings a protocol does not use, reported when the user sets them. Protocols may
#: declare their own as a class attribute ``ignored_settings``.
IGNORED_SETTINGS = {
    "hear.scene": ("lr_grid",),
    "hear.timestamp": ("lr_grid",),
}


class UpstreamLoadError(RuntimeError):
    """The upstream could not be built (missing weights, refused remote code, bad layout)."""


@dataclass
class LoadedUpstream:
    name: str  # what results are recorded under: --name, else the canonical id
    canonical: str
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
    #: True when a complete record of the same identity was reused (nothing was trained)
    reused: bool = False
    #: things the user should know about this result (ignored options, tracking trouble)
    warnings: list[str] = field(default_factory=list)


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


def task_profile(task_cls: type[Task], task_run: TaskRun, config: DictConfig) -> ResolvedProfile:
    """The protocol profile (``protocol.profile``) resolved for this task (bench.profiles)."""
    return resolve_profile(
        task_run.task,
        task_cls.protocol,
        str(config.protocol.profile),
        str(config.protocol.hear_embedding),
    )


def user_task_options(task_run: TaskRun, config: DictConfig) -> dict[str, Any]:
    """The task options the user gave (bench.yaml / overrides, then the TaskRun's)."""
    return {**config.task_options.get(task_run.task, {}), **task_run.options}


def make_task(
    task_cls: type[Task],
    task_run: TaskRun,
    config: DictConfig,
    profile: ResolvedProfile | None = None,
) -> Task:
    """The task with its data root, options (the profile's, then the user's) and what its
    ``prepare`` may do."""
    data_root = resolve_data_root(task_cls, task_run, config)
    profile = profile or task_profile(task_cls, task_run, config)
    options = {**profile.task_options, **user_task_options(task_run, config)}
    task = task_cls(data_root, options)
    task.manifest_dir = Path(config.paths.data) / "manifests"
    default_root = task_cls.default_data_root(Path(config.paths.data))
    task.may_create_data = bool(config.data.generate) or (
        data_root is not None
        and default_root is not None
        and Path(data_root).resolve() == Path(default_root).resolve()
    )
    return task


def probe_settings(
    task: Task,
    config: DictConfig,
    quick: QuickLimits | None = None,
    profile: ResolvedProfile | None = None,
    user_overrides: bool = True,
) -> Any:
    """The task's schedule, then what the protocol profile fixes (default: ``fast``, which
    fixes nothing), then the config's ``probe.*`` overrides (unless ``user_overrides`` is
    False), and quick limits."""
    from bench.extract import resolve_device
    from bench.parallel import probe_workers
    from bench.protocols.base import ProbeSettings

    schedule, probe = task.schedule, config.probe
    fixed = profile.settings if profile is not None else {}

    def pick(name: str) -> Any:
        value = probe.get(name) if user_overrides else None
        if value is None:
            value = fixed.get(
                name, FAST_SEEDS if name == "seeds" else getattr(schedule, name, None)
            )
        return value

    max_steps = int(pick("max_steps"))
    device = resolve_device(str(probe.device))
    return ProbeSettings(
        lr_grid=tuple(float(lr) for lr in pick("lr_grid")),
        seeds=tuple(int(s) for s in pick("seeds")),
        batch_size=int(pick("batch_size")),
        max_steps=min(max_steps, quick.max_steps) if quick else max_steps,
        eval_every=int(pick("eval_every")),
        patience=int(pick("patience")),
        early_stopping=bool(fixed.get("early_stopping", True)),
        optimizer=schedule.optimizer,
        weight_decay=schedule.weight_decay,
        layers=probe_layers(str(probe.layers) if user_overrides else WEIGHTED, fixed),
        layer_norm=bool(probe.layer_norm),
        device=str(device),
        precision=probe_precision(str(probe.precision), device),
        progress=bool(config.runtime.progress),
        workers=probe_workers(probe.workers, str(device)),
        stack=bool(probe.stack),
    )


def probe_layers(requested: str, fixed: dict[str, Any]) -> str | int:
    """``probe.layers``, unless the profile fixes the embedding (a reference HEAR run reads
    ``protocol.hear_embedding``): then only the default (weighted) may be left there."""
    layers = fixed.get("layers", requested) if requested == WEIGHTED else requested
    if "layers" in fixed and layers != fixed["layers"]:
        raise ProfileError(
            f"probe.layers={requested}: a reference HEAR run trains on the embedding "
            "protocol.hear_embedding names (last, concat, module); probe.layers is for the "
            "fast profile"
        )
    return int(layers) if str(layers).lstrip("-").isdigit() else layers


def modified_by_user(
    task: Task,
    config: DictConfig,
    profile: ResolvedProfile,
    settings: Any,
    options: dict,
    quick: QuickLimits | None = None,
) -> list[str]:
    """What the user's ``probe.*`` and task options changed of a reference profile."""
    if not profile.is_reference:
        return []
    plain = probe_settings(task, config, quick, profile=profile, user_overrides=False)
    changed = [key for key in REFERENCE_FIXED if getattr(settings, key) != getattr(plain, key)]
    changed += [
        f"task_options.{key}"
        for key, value in profile.task_options.items()
        if options.get(key, value) != value
    ]
    return changed


def protocol_record(
    profile: ResolvedProfile,
    label: str,
    settings: Any,
    task: Task,
    upstream: LoadedUpstream,
    config: DictConfig,
    protocol: Any,
    modified: list[str],
) -> dict[str, Any]:
    """The record's ``protocol``: how its number was made, in one place (bench.profiles)."""
    return {
        "profile": profile.profile,
        "label": label,
        "source": profile.source,
        "embedding": profile.embedding if profile.embedding != WEIGHTED else settings.layers,
        "seeds": list(settings.seeds),
        "selection": profile.selection,
        "early_stopping": settings.early_stopping,
        "checkpoints": list(profile.checkpoints),
        "data_handling": list(profile.data_handling),
        "not_reproduced": list(profile.not_reproduced),
        "modified": modified,
        "task_options": task_options_record(task),
        "audio": audio_record(task),
        "pooling": protocol.pooling,
        "upstream": {
            "canonical": upstream.canonical,
            "revision": config.upstream.revision,
            "weights_hash": upstream.model.weights_hash(),
        },
        "bench_version": versions()["bench"],
    }


def task_options_record(task: Task) -> dict[str, Any]:
    """Every option the task ran with, defaults included (a default may change)."""
    if not dataclasses.is_dataclass(task.options):
        return {}
    return json.loads(json.dumps(dataclasses.asdict(task.options), default=str))


def audio_record(task: Task) -> dict[str, str]:
    """The audio decoder, resampler and effects (docs/protocols.md, audio)."""
    import soundfile
    import soxr

    gain = float(task.audio_gain_db)
    return {
        "decoder": f"soundfile {soundfile.__version__} "
        f"(libsndfile {soundfile.__libsndfile_version__})",
        "resampler": f"soxr {soxr.__version__} HQ, for audio not at the upstream's rate",
        "effects": f"gain {gain:g} dB as a float multiply" if gain else "none",
    }


def probe_precision(requested: str, device: Any) -> str:
    """``auto``: bfloat16 autocast on a GPU that has it, float32 elsewhere."""
    import torch

    if requested != "auto":
        return requested
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def identity_settings(
    task: Task,
    settings: Any,
    options: dict[str, Any],
    quick: QuickLimits | None,
    label: str = DEFAULT_PROFILE,
) -> dict[str, Any]:
    """What a result means, comparable across upstreams and machines. One line per field:
    adding one changes every digest, so no earlier record is reused for the new setting."""
    return {
        "protocol": task.protocol,
        "profile": label,
        "probe": result_affecting(dataclasses.asdict(settings)),
        "task_options": options,
        "quick": quick.to_dict() if quick else None,
    }


def identity_inputs(upstream: LoadedUpstream, cache: Any, padding: Any) -> dict[str, Any]:
    """What the run read: these weights, this data, these features (and how batches were
    padded, which changes the features of padding-dependent encoders)."""
    return {
        "source": upstream.canonical,
        "weights_hash": cache.key.weights_hash,
        "data_fingerprint": cache.key.data_fingerprint,
        "features": cache.key.digest(),
        "padding": padding,
    }


class Runner:
    """Runs tasks for upstreams under one configuration; builds each upstream once.

    existing: what to do when the run's identity already has a complete record:
        ``reuse`` it (nothing is trained or logged again), ``rerun`` (train again and keep
        both records) or ``overwrite`` (train again and delete the earlier records).
    name: record the upstream under this name instead of its canonical id.
    """

    def __init__(self, config: DictConfig, existing: Existing = "reuse", name: str | None = None):
        self.config = config
        self.existing = existing
        self.name = name
        self.store = RecordStore(Path(config.paths.records))
        self.quick = QuickLimits.from_config(config)
        self._upstreams: dict[str, LoadedUpstream] = {}
        self._failed_upstreams: dict[str, str] = {}

    def load_upstream(self, typed: str) -> LoadedUpstream:
        """The upstream, built once; a build that failed fails every later task at once."""
        if typed in self._failed_upstreams:
            raise UpstreamLoadError(self._failed_upstreams[typed])
        if typed not in self._upstreams:
            try:
                self._upstreams[typed] = self._build_upstream(typed)
            except Exception as error:
                message = upstream_error_message(typed, error)
                self._failed_upstreams[typed] = message
                raise UpstreamLoadError(message) from error
        return self._upstreams[typed]

    def _build_upstream(self, typed: str) -> LoadedUpstream:
        from bench.protocols.base import UpstreamInfo
        from bench.upstreams import UPSTREAMS, resolve_upstream
        from bench.upstreams.bundle import RemoteCodeNotTrustedError

        bundle = resolve_upstream(typed)
        revision = self.config.upstream.revision
        canonical = canonical_upstream(typed, bundle.name, typed in UPSTREAMS, revision)
        options: dict[str, Any] = {}
        if bundle.remote_code:
            if not self.config.upstream.trust_remote_code:
                raise UpstreamLoadError(str(RemoteCodeNotTrustedError(typed, bundle.source)))
            options["trust_remote_code"] = True
        if revision:
            options["revision"] = revision
        log.info("loading upstream %s (%s)", typed, bundle.source)
        model = bundle.build(**options)
        sizes = set(model.hidden_sizes)
        if len(sizes) != 1:
            raise UpstreamLoadError(
                f"upstream '{typed}' has layers of different sizes {model.hidden_sizes}; "
                "bench's weighted sum needs one size"
            )
        name = self.name or canonical
        info = UpstreamInfo(
            name=name,
            num_layers=model.num_layers,
            hidden_size=sizes.pop(),
            frame_rate=float(model.frame_rate),
            first_frame_centre_s=float(model.first_frame_centre_s),
            scene_embedding_size=model.scene_embedding_size,
        )
        return LoadedUpstream(name, canonical, model, bundle, info)

    def run(self, task_run: TaskRun, upstream_name: str) -> TaskOutcome:
        """Run one task; any failure is returned with its message, never raised (but
        Ctrl-C and SIGTERM are: the caller stops the suite)."""
        outcome = TaskOutcome(task=task_run.task, upstream=self.name or upstream_name)
        stage = Stage()
        try:
            self._run(task_run, upstream_name, outcome, stage)
        except Exception as error:
            outcome.error = stage.describe(error)
            log.error("%s on %s failed %s", outcome.upstream, outcome.task, outcome.error)
            log.debug("traceback of the failure:", exc_info=True)
        return outcome

    def _run(
        self, task_run: TaskRun, upstream_name: str, outcome: TaskOutcome, stage: Stage
    ) -> None:
        from bench.cache import FeatureCache
        from bench.extract import stored_feature_kind
        from bench.frames.plan import padding_description
        from bench.protocols.base import PROTOCOLS

        config = self.config
        started, started_at = time.perf_counter(), time.time()
        task_cls = TASKS.get(task_run.task)
        with stage("reading the task data", resolve_data_root(task_cls, task_run, config)):
            profile = task_profile(task_cls, task_run, config)
            options = {**profile.task_options, **user_task_options(task_run, config)}
            # Read metadata, schedule and protocol from the instance: a generic task (e.g.
            # any HEAR task directory) sets them from its data when constructed.
            task = make_task(task_cls, task_run, config, profile)
            outcome.task = name = task.metadata.name
            task.prepare()
            data = task.load()
            data.check(name)
            if self.quick:
                data = limit_items(data, self.quick.items_per_split, name)
            protocol = PROTOCOLS.get(task.protocol)()
        loaded_at = time.perf_counter()

        with stage("loading the upstream", None):
            upstream = self.load_upstream(upstream_name)
        outcome.upstream = upstream.name
        model = upstream.model
        clip_seconds = protocol.clip_seconds(data)
        kind = stored_feature_kind(protocol.feature_kind, model)
        with stage("planning the feature cache", Path(config.paths.cache)):
            cache = FeatureCache.open(
                Path(config.paths.cache),
                {
                    "upstream": upstream.canonical,
                    "weights_hash": model.weights_hash(),
                    "hidden_sizes": tuple(model.hidden_sizes),
                    "frame_rate": float(model.frame_rate),
                    "sample_rate": int(model.sample_rate),
                    "kind": kind,
                    "gain_db": float(task.audio_gain_db),
                    "clip_seconds": clip_seconds,
                },
                data.all_items(),
                config.extract.shard_seconds,
            )
        with stage("applying the protocol profile", None):
            settings = probe_settings(task, config, self.quick, profile)
            check_embedding(profile, upstream)
            modified = modified_by_user(task, config, profile, settings, options, self.quick)
            embedding = profile.embedding if profile.embedding != WEIGHTED else settings.layers
            label = profile.label(embedding, modified)
        identity = RecordIdentity(
            upstream=upstream.name,
            task=name,
            settings=identity_settings(task, settings, options, self.quick, label),
            inputs=identity_inputs(upstream, cache, padding_description(model, config.extract)),
        )
        outcome.warnings += ignored_settings_warnings(protocol, task, config)
        if self.existing == "reuse":
            previous = self.store.latest(upstream.name, name, identity.digest)
            if previous is not None:
                self._reuse(previous, outcome)
                return

        from bench.tracking import RunTracker

        tracker = RunTracker.start(
            enabled=bool(config.tracking.enabled),
            uri=tracking_uri(config),
            suite=task.metadata.suite,
            upstream=upstream.name,
            task=name,
            identity=identity,
            started_at=started_at,
        )
        outcome.warnings += tracker.warnings
        try:
            probe_info, probe_settings_ = upstream.info, settings
            frames = None
            with stage("extracting features", cache.directory):
                if kind == "sequence":
                    frames = self._frames(
                        upstream, cache, task, name, clip_seconds, settings, protocol
                    )
                    extraction, features = frames.extraction, frames.source
                    probe_info, probe_settings_ = frames.info, frames.settings
                else:
                    extraction = self._extract(upstream, cache, task, name, clip_seconds)
                    features = cache.load()
            if kind == "pooled":
                outcome.warnings += constant_feature_warnings(features, data, settings, upstream)
            if hasattr(protocol, "bind_upstream"):  # protocols that use the model itself (units)
                protocol.bind_upstream(model)
            cache_dir = cache.directory if frames is None else frames.cache_directory
            probe_started = time.perf_counter()
            with stage("training the probes", None):
                result = protocol.run(task, data, features, probe_info, probe_settings_)
            finished = time.perf_counter()
            record = ResultRecord(
                task=name,
                suite=task.metadata.suite,
                upstream=upstream.name,
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
                    "canonical": upstream.canonical,
                    "family": upstream.bundle.family,
                    "weights_hash": cache.key.weights_hash,
                    "num_layers": upstream.info.num_layers,
                    "hidden_size": upstream.info.hidden_size,
                    "frame_rate": upstream.info.frame_rate,
                },
                data={
                    "root": str(task.data_root) if task.data_root else None,
                    "items": {split: len(items) for split, items in data.splits.items()},
                    "fingerprint": cache.key.data_fingerprint,
                    "cache": str(cache_dir) if cache_dir else None,
                    "split_rule": data.extras.get("split_rule"),
                    "padding": padding_description(model, config.extract),
                    **({"frames": frames.plan.to_dict()} if frames else {}),
                },
                timings={
                    "load_data_s": loaded_at - started,
                    "extract_s": extraction.wall_seconds,
                    "forward_s": extraction.forward_seconds
                    + getattr(features, "forward_seconds", 0.0),
                    "audio_s": cache.total_seconds,
                    "probe_s": finished - probe_started,
                    "total_s": finished - started,
                },
                versions=versions(),
                config=to_container(config),
                trials=result.trials,
                mlflow=tracker.link,
                identity=identity.to_dict(),
                quick=self.quick.to_dict() if self.quick else None,
                protocol=protocol_record(
                    profile, label, settings, task, upstream, config, protocol, modified
                ),
            )
            with stage("writing the record", self.store.root):
                path = self.store.write(record)
        except BaseException as error:
            tracker.end_failed(error)
            raise
        outcome.record, outcome.record_path = record, path
        if self.existing == "overwrite":
            for removed in self.store.remove_others(StoredRecord(record, path)):
                log.info("removed the earlier record %s (--overwrite)", removed)
        outcome.warnings += tracker.finish(StoredRecord(record, path), self.store, to_yaml(config))

    def _reuse(self, previous: StoredRecord, outcome: TaskOutcome) -> None:
        """The identity has a complete record: use it; log it if its logging was cut short."""
        outcome.record, outcome.record_path, outcome.reused = previous.record, previous.path, True
        log.info(
            "%s on %s: reusing the complete record %s (same settings, data and weights; "
            "--rerun trains again)",
            outcome.upstream,
            outcome.task,
            previous.path,
        )
        if (
            self.config.tracking.enabled
            and (previous.record.mlflow or {}).get("status") != "logged"
        ):
            from bench.tracking import relog

            outcome.warnings += relog(previous, self.store, tracking_uri(self.config))

    def _extract(
        self,
        upstream: LoadedUpstream,
        cache: Any,
        task: Task,
        name: str,
        clip_seconds: Any,
        layers: tuple[int, ...] | None = None,
    ) -> Any:
        from bench.extract import Extractor, resolve_device
        from bench.frames.plan import padding_options

        config = self.config
        model = upstream.model
        extractor = Extractor(
            model,
            upstream.name,
            resolve_device(config.extract.device),
            config.extract.batch_seconds,
            show_progress=config.runtime.progress,
            gain_db=float(task.audio_gain_db),
            clip_seconds=clip_seconds,
            layers=layers,
            **padding_options(model, config.extract),
        )
        return extractor.fill(cache, label=f"{name} ({upstream.name})")

    def _frames(
        self,
        upstream: LoadedUpstream,
        cache: Any,
        task: Task,
        name: str,
        clip_seconds: Any,
        settings: Any,
        protocol: Any,
    ) -> Any:
        """Frame-level features from the cache or the encoder stream (``bench.frames.plan``)."""
        from bench.frames.plan import open_frames

        def extract(target: Any, layers: tuple[int, ...] | None) -> Any:
            return self._extract(upstream, target, task, name, clip_seconds, layers)

        return open_frames(
            cache,
            upstream.model,
            upstream.name,
            upstream.info,
            settings,
            protocol,
            self.config.extract,
            extract,
            gain_db=float(task.audio_gain_db),
        )


def check_embedding(profile: ResolvedProfile, upstream: LoadedUpstream) -> None:
    """``protocol.hear_embedding=module`` is a HEAR-API module's own embedding."""
    if profile.embedding == "module" and upstream.bundle.family != "hear":
        raise ProfileError(
            f"protocol.hear_embedding=module is the embedding of a HEAR-API module "
            f"(hear:<module>); {upstream.name} is not one: choose last or concat"
        )


class Stage:
    """Where a task is, so that a failure says what was being done, on which file."""

    def __init__(self) -> None:
        self.name = "starting"
        self.where: Path | None = None

    @contextmanager
    def __call__(self, name: str, where: Path | None) -> Iterator[None]:
        self.name, self.where = name, where
        yield

    def describe(self, error: BaseException) -> str:
        where = f" ({self.where})" if self.where is not None else ""
        cause = str(error).strip() or type(error).__name__
        if missing := missing_package_message(error):
            cause = missing
        elif not (is_expected(error) or _written_for_users(error)):
            cause = f"{type(error).__name__}: {cause}"
        return f"while {self.name}{where}: {cause}"


def upstream_error_message(typed: str, error: BaseException) -> str:
    """One line for an upstream that would not build (the loaders' messages name the files)."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, UpstreamLoadError) or is_expected(error) or _written_for_users(error):
        return text
    if missing := missing_package_message(error):
        return f"upstream '{typed}': {missing}"
    return f"cannot load upstream '{typed}': {type(error).__name__}: {text}"


def _written_for_users(error: BaseException) -> bool:
    """bench's own exceptions carry messages meant for users; no type name needed."""
    return type(error).__module__.startswith("bench.")


def ignored_settings_warnings(protocol: Any, task: Task, config: DictConfig) -> list[str]:
    """``probe.*`` keys the user set that this task's protocol does not use."""
    ignored = getattr(protocol, "ignored_settings", IGNORED_SETTINGS.get(task.protocol, ()))
    return [
        f"probe.{key} is ignored by {task.metadata.name} (protocol {task.protocol} "
        "uses its own grid)"
        for key in ignored
        if config.probe.get(key) is not None
    ]


def constant_feature_warnings(
    features: Any, data: Any, settings: Any, upstream: LoadedUpstream
) -> list[str]:
    """Pooled features that are the same for every item leave a probe at chance."""
    import numpy as np

    items = data.all_items()[:2048]
    pooled = np.asarray(features.pooled(items, layer_norm=settings.layer_norm), dtype=np.float64)
    if len(items) < 2 or float(pooled.std(axis=0).max()) > 1e-4:
        return []
    hint = (
        " (per-utterance CMVN makes every utterance's mean zero: use its _no_cmvn variant)"
        if upstream.bundle.options.get("cmvn")
        else ""
    )
    message = (
        f"the time-mean of {upstream.name}'s features is the same for every item{hint}; a "
        "mean-pooled probe is at chance by construction"
    )
    log.warning("%s", message)
    return [message]
