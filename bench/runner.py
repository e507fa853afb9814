"""Runs (upstream, task) pairs: data -> cached features -> probes -> record, then MLflow.

The runner is the only place that knows every part: tasks read data, upstreams encode,
the cache stores, protocols probe, records keep the results and tracking mirrors them.

Order of one task (see docs/architecture.md): load the data and the upstream; open the
feature cache; compute the run's identity (bench.identity); reuse the latest complete
record of that identity unless asked to train again; else start the MLflow run, extract,
train, write the record (the source of truth), then log it. A failure at any stage is
that task's failure, reported in one line naming the stage and the cause; the suite goes
on. A tracking failure is a warning: the record is kept and ``bench log`` logs it later.

Those steps are phases (``Runner.plan``, ``extract``, ``train``, ``write_record``,
``complete``) so that an executor (bench.executors) can run the middle two as units on
other machines (bench.work_units) while planning, records and tracking stay here.
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
from bench.task import EFFECTED_DURATIONS, TASKS, Task, TaskRun

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
    """The task options the user gave (bench.yaml / overrides, then the TaskRun's). A task
    name's dots nest on the command line (``task_options.superb.asr.decoder=beam`` is
    ``{superb: {asr: {decoder: beam}}}``): both spellings are read."""
    given = config.task_options
    nested: Any = given
    for part in task_run.task.split("."):
        nested = nested.get(part, {}) if hasattr(nested, "get") else {}
    literal = given.get(task_run.task, {})
    return {**nested, **literal, **task_run.options}


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


def sweep_checkpoints(workspace: Path | str, upstream: str, task: str, digest: str) -> Any:
    """A sweep's checkpoints: ``<workspace>/checkpoints/<upstream>/<task>/<identity>/``, keyed
    by the record identity's ``digest``, so that only the same run resumes from them."""
    from bench.fileio import safe_name
    from bench.frames.checkpoint import SweepCheckpoints

    directory = Path(workspace) / "checkpoints" / safe_name(upstream) / safe_name(task)
    return SweepCheckpoints(directory / digest[:16], {"identity": digest})


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

    from bench.audio_effects import chain_name

    gain, chain = float(task.audio_gain_db), task.audio_effects()
    effects = f"gain {gain:g} dB as a float multiply" if gain else "none"
    if chain:
        effects = f"sox {chain_name(chain)} (bench.audio_effects, sample for sample)"
    return {
        "decoder": f"soundfile {soundfile.__version__} "
        f"(libsndfile {soundfile.__libsndfile_version__})",
        "resampler": f"soxr {soxr.__version__} HQ, for audio not at the upstream's rate",
        "effects": effects,
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


@dataclass
class TaskPlan:
    """A task read, keyed and tracked (``Runner.plan``), whose work remains: extracting its
    features, training its probes, writing its record. Those phases run here one after
    another (``Runner.run``) or as units on other machines (``bench.executors``)."""

    task_run: TaskRun
    upstream_name: str  # as typed
    outcome: TaskOutcome
    stage: Stage
    task: Task
    data: Any  # bench.data.TaskData
    protocol: Any  # bench.protocols.base.ProbeProtocol
    upstream: LoadedUpstream
    cache: Any  # bench.cache.FeatureCache
    settings: Any  # bench.protocols.base.ProbeSettings
    identity: RecordIdentity
    tracker: Any  # bench.tracking.RunTracker
    started: float  # time.perf_counter() when the task started
    loaded_at: float  # ... when its data was read
    #: how padding entered the encoder's batches (for the record)
    padding: str
    #: how the number is made: the record's ``protocol`` (``protocol_record``)
    protocol_info: dict[str, Any]
    #: the cache extraction fills: ``cache``, or for a frame-level task its cache of the
    #: probe's layers, or None when the frames are streamed from the encoder
    fill: Any = None
    #: a frame-level task's frame source (``bench.frames.plan.FramePlan``)
    frames: Any = None

    @property
    def label(self) -> str:
        return f"{self.identity.task} ({self.upstream.name})"

    @contextmanager
    def tracked(self) -> Iterator[None]:
        """Any exception, Ctrl-C and SIGTERM included, ends the MLflow run (FAILED, KILLED)."""
        try:
            yield
        except BaseException as error:
            self.tracker.end_failed(error)
            raise


@dataclass
class TrainedProbes:
    """What training a task's probes gave: the protocol's outcome and how it went."""

    result: Any  # bench.protocols.base.ProbeOutcome
    seconds: float
    #: probes trained at once (``probe.workers`` as resolved where they trained)
    workers: int
    #: encoder time inside training (frames streamed from the encoder)
    forward_seconds: float = 0.0


class Runner:
    """Runs tasks for upstreams under one configuration; builds each upstream once.

    existing: what to do when the run's identity already has a complete record:
        ``reuse`` it (nothing is trained or logged again), ``rerun`` (train again and keep
        both records) or ``overwrite`` (train again and delete the earlier records).
    name: record the upstream under this name instead of its canonical id.

    ``run`` does a task's phases in order: ``plan`` (data, upstream, cache plan, identity,
    reuse, MLflow run), ``extract``, ``train``, ``write_record``, ``complete`` (MLflow).
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

    def forget_upstreams(self) -> None:
        """Drop the built models (their memory); a later ``load_upstream`` builds again."""
        self._upstreams.clear()

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
        planned = self.plan(task_run, upstream_name)
        if isinstance(planned, TaskOutcome):  # reused, or failed before any work
            return planned
        plan = planned
        try:
            with plan.tracked():
                extraction = self.extract(plan)
                trained = self.train(plan)
                path = self.write_record(plan, extraction, trained)
            self.complete(plan, path)
        except Exception as error:
            fail(plan.outcome, plan.stage.describe(error), error)
        return plan.outcome

    def plan(self, task_run: TaskRun, upstream_name: str) -> TaskPlan | TaskOutcome:
        """Read the task's data, load the upstream, plan the feature cache and compute the
        run's identity; then reuse a complete record of it (a ``TaskOutcome``, nothing
        more to do) or start its MLflow run (a ``TaskPlan``). A failure is the returned
        outcome's error."""
        outcome = TaskOutcome(task=task_run.task, upstream=self.name or upstream_name)
        stage = Stage()
        try:
            return self._plan(task_run, upstream_name, outcome, stage)
        except Exception as error:
            fail(outcome, stage.describe(error), error)
            return outcome

    def _plan(
        self, task_run: TaskRun, upstream_name: str, outcome: TaskOutcome, stage: Stage
    ) -> TaskPlan | TaskOutcome:
        from bench.cache import FeatureCache
        from bench.extract import stored_feature_kind
        from bench.frames.plan import choose_frames, frame_cache, padding_description

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
            data, protocol = read_task(task, self.quick, prepare=True)
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
                    # a sox chain holds its own gain (bench.audio_effects)
                    "gain_db": 0.0 if task.audio_effects() else float(task.audio_gain_db),
                    "effects": task.audio_effects() or None,
                    "clip_seconds": clip_seconds,
                },
                data.all_items(),
                config.extract.shard_seconds,
                durations=data.extras.get(EFFECTED_DURATIONS),
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
                return outcome

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
        plan = TaskPlan(
            task_run=task_run,
            upstream_name=upstream_name,
            outcome=outcome,
            stage=stage,
            task=task,
            data=data,
            protocol=protocol,
            upstream=upstream,
            cache=cache,
            settings=settings,
            identity=identity,
            tracker=tracker,
            started=started,
            loaded_at=loaded_at,
            padding=padding_description(model, config.extract),
            protocol_info=protocol_record(
                profile, label, settings, task, upstream, config, protocol, modified
            ),
            fill=cache,
        )
        if kind == "sequence":
            with plan.tracked(), stage("extracting features", cache.directory):
                plan.frames = choose_frames(
                    cache, model.frame_rate, model.hidden_sizes, settings, protocol, config.extract
                )
                plan.fill = frame_cache(cache, plan.frames, len(model.hidden_sizes))
        return plan

    def extract(self, plan: TaskPlan) -> Any:
        """Fill the plan's cache: a forward pass over its missing shards (ExtractionStats)."""
        from bench.extract import ExtractionStats

        with plan.stage("extracting features", plan.cache.directory):
            if plan.fill is None:  # streamed while training
                return ExtractionStats()
            extractor = make_extractor(self.config, plan.upstream, plan.fill)
            return extractor.fill(plan.fill, label=plan.label)

    def train(self, plan: TaskPlan) -> TrainedProbes:
        """Train and score the plan's probes on its complete cache (or stream)."""
        with plan.stage("extracting features", plan.cache.directory):
            features, info, settings = open_features(
                plan.frames, plan.cache, plan.fill, plan.upstream, plan.settings, self.config
            )
        return train_probes(
            plan.protocol,
            plan.task,
            plan.data,
            features,
            plan.upstream,
            info,
            settings,
            plan.stage,
            plan.outcome.warnings,
            sweep_checkpoints(
                self.config.paths.workspace,
                plan.upstream.name,
                plan.task_run.task,
                plan.identity.digest,
            ),
        )

    def write_record(self, plan: TaskPlan, extraction: Any, trained: TrainedProbes) -> Path:
        """The task's result record, written atomically: the source of truth."""
        upstream, cache, task, data = plan.upstream, plan.cache, plan.task, plan.data
        result, settings = trained.result, plan.settings
        finished = time.perf_counter()
        record = ResultRecord(
            task=plan.identity.task,
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
                for k, v in dataclasses.asdict(
                    dataclasses.replace(settings, workers=trained.workers)
                ).items()
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
                "cache": str(plan.fill.directory) if plan.fill is not None else None,
                "split_rule": data.extras.get("split_rule"),
                "padding": plan.padding,
                **({"frames": plan.frames.to_dict()} if plan.frames is not None else {}),
            },
            timings={
                "load_data_s": plan.loaded_at - plan.started,
                "extract_s": extraction.wall_seconds,
                "forward_s": extraction.forward_seconds + trained.forward_seconds,
                "audio_s": cache.total_seconds,
                "probe_s": trained.seconds,
                "total_s": finished - plan.started,
            },
            versions=versions(),
            config=to_container(self.config),
            trials=result.trials,
            mlflow=plan.tracker.link,
            identity=plan.identity.to_dict(),
            quick=self.quick.to_dict() if self.quick else None,
            protocol=plan.protocol_info,
        )
        with plan.stage("writing the record", self.store.root):
            path = self.store.write(record)
        plan.outcome.record, plan.outcome.record_path = record, path
        return path

    def complete(self, plan: TaskPlan, path: Path) -> None:
        """After the record: ``--overwrite``'s removals, then the record into MLflow."""
        record, outcome = plan.outcome.record, plan.outcome
        assert record is not None
        if self.existing == "overwrite":
            for removed in self.store.remove_others(StoredRecord(record, path)):
                log.info("removed the earlier record %s (--overwrite)", removed)
        outcome.warnings += plan.tracker.finish(
            StoredRecord(record, path), self.store, to_yaml(self.config)
        )

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


def fail(outcome: TaskOutcome, message: str, error: BaseException | None = None) -> None:
    """The task failed: its one-line message, logged once (``error``'s traceback in debug)."""
    outcome.error = message
    log.error("%s on %s failed %s", outcome.upstream, outcome.task, message)
    if error is not None:
        log.debug("traceback of the failure:", exc_info=error)


def read_task(task: Task, quick: QuickLimits | None, prepare: bool = False) -> tuple[Any, Any]:
    """The task's data (checked, quick limits applied) and its protocol. ``prepare`` runs
    the task's own check (or demo generation) first; a worker given a planned task reads
    the data the driver prepared."""
    from bench.protocols.base import PROTOCOLS

    name = task.metadata.name
    if prepare:
        task.prepare()
    data = task.load()
    data.check(name)
    if quick:
        data = limit_items(data, quick.items_per_split, name)
    return data, PROTOCOLS.get(task.protocol)()


def make_extractor(config: DictConfig, upstream: LoadedUpstream, cache: Any) -> Any:
    """The extractor that fills ``cache`` with ``upstream``; the audio's gain, clip length
    and the layers kept come from the cache's key, which they are part of."""
    from bench.extract import Extractor, resolve_device
    from bench.frames.plan import padding_options

    model = upstream.model
    return Extractor(
        model,
        upstream.name,
        resolve_device(config.extract.device),
        config.extract.batch_seconds,
        show_progress=config.runtime.progress,
        gain_db=cache.key.gain_db,
        clip_seconds=cache.key.clip_seconds,
        layers=cache.key.layers,
        **padding_options(model, config.extract),
    )


def open_features(
    frames: Any, cache: Any, fill: Any, upstream: LoadedUpstream, settings: Any, config: DictConfig
) -> tuple[Any, Any, Any]:
    """A task's features as its protocol reads them, with the upstream info and settings
    it reads them under: the complete ``fill`` cache, or for a frame-level task its frame
    source (``bench.frames.plan.frame_features``: the cache of its layers, or the encoder
    streamed over ``cache``'s audio, which needs ``upstream.model``)."""
    if frames is None:
        return fill.load(), upstream.info, settings
    from bench.frames.plan import frame_features

    opened = frame_features(
        frames,
        cache,
        fill,
        upstream.model,
        upstream.name,
        upstream.info,
        settings,
        config.extract,
        None,
        gain_db=cache.key.gain_db,
    )
    return opened.source, opened.info, opened.settings


def train_probes(
    protocol: Any,
    task: Task,
    data: Any,
    features: Any,
    upstream: LoadedUpstream,
    info: Any,
    settings: Any,
    stage: Stage,
    warnings: list[str],
    checkpoints: Any = None,
) -> TrainedProbes:
    """The protocol's probes on a task's features (``open_features``); what the user
    should know is added to ``warnings`` (before training, so a failed training keeps it).
    ``upstream.model`` is used only by protocols that ask for it (``bind_upstream``);
    ``checkpoints`` (``sweep_checkpoints``) only by long sweeps that resume after a kill."""
    if getattr(features, "kind", None) == "pooled":
        warnings += constant_feature_warnings(features, data, settings, upstream)
    if hasattr(protocol, "bind_upstream"):  # protocols that use the model itself (units)
        protocol.bind_upstream(upstream.model)
    if checkpoints is not None and hasattr(protocol, "use_checkpoints"):
        protocol.use_checkpoints(checkpoints)
    started = time.perf_counter()
    with stage("training the probes", None):
        result = protocol.run(task, data, features, info, settings)
    return TrainedProbes(
        result,
        time.perf_counter() - started,
        settings.workers,
        forward_seconds=getattr(features, "forward_seconds", 0.0),
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

    @classmethod
    def at(cls, name: str, where: Path | None) -> Stage:
        """A stage already entered (to describe a failure reported from elsewhere)."""
        stage = cls()
        stage.name, stage.where = name, where
        return stage

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
    if isinstance(error, OSError) and (lacking := _lacking_weights(typed)):
        return lacking  # not "not in the hub cache": say what the folder has and lacks
    if type(error).__name__ == "SafetensorError":  # its message names no file
        weights = Path(typed.removeprefix("hf:")).expanduser() / "model.safetensors"
        where = f"{weights.resolve()}" if weights.is_file() else f"the weights of '{typed}'"
        return (
            f"upstream '{typed}': {where} is not a readable safetensors file ({text}); "
            "it is damaged or incomplete: copy or download it again"
        )
    if isinstance(error, UpstreamLoadError) or is_expected(error) or _written_for_users(error):
        return text
    if missing := missing_package_message(error):
        return f"upstream '{typed}': {missing}"
    return f"cannot load upstream '{typed}': {type(error).__name__}: {text}"


def _lacking_weights(typed: str) -> str | None:
    """For a checkpoint folder without a weights file: what it holds and what it lacks."""
    from bench.upstreams import WEIGHT_FILES, describe_unrecognised

    path = Path(typed.removeprefix("hf:")).expanduser()
    if not path.is_dir() or any((path / weights).is_file() for weights in WEIGHT_FILES):
        return None
    return describe_unrecognised(typed, path)


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
