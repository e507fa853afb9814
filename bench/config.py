"""Configuration: a typed schema, bench.yaml on top, ``key=value`` overrides on top of that.

The schema's defaults are bench's defaults; the repository's bench.yaml spells them out
(a test keeps the two identical). A key that is not in the schema is an error, never
silently ignored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_FILE_NAME = "bench.yaml"
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: where ``bench run``'s work runs (bench.executors)
EXECUTORS = ("local", "ray", "slurm")


class ConfigError(ValueError):
    """A bad configuration file or override; the message names the key."""


@dataclass
class PathsConfig:
    #: everything bench writes, relative to the working directory
    workspace: str = "bench_runs"
    cache: str = "${paths.workspace}/cache"
    records: str = "${paths.workspace}/records"
    #: generated demo data (the demo tasks' default data root)
    data: str = "${paths.workspace}/data"


@dataclass
class DataConfig:
    #: default --data-root for every task
    root: str | None = None
    #: per task: task name -> data root (takes precedence over ``root``)
    roots: dict[str, str] = field(default_factory=dict)
    #: let generated (demo) tasks create their data at a data root other than their
    #: default (``paths.data``/demo); off, a mistyped --data-root is an error, not new data
    generate: bool = False


@dataclass
class ExtractConfig:
    #: auto (cuda when available), cpu, cuda, cuda:N
    device: str = "auto"
    #: padded audio seconds per forward batch
    batch_seconds: float = 160.0
    #: audio seconds per cache shard: the unit of resume after an interruption
    shard_seconds: float = 300.0
    #: refuse to build a frame-level (sequence) cache larger than this
    max_sequence_cache_gb: float = 50.0
    #: for encoders whose output depends on batch padding (e.g. SPEAR): "exact" batches
    #: only equal-length utterances, "bucketed" lengths within ``max_padding`` of the
    #: longest, "batch" batches by length anyway (fastest)
    padding_variant: str = "exact"
    #: padding_variant=bucketed: at most this fraction of the longest utterance is padding
    max_padding: float = 0.05
    #: frame-level tasks: auto (the cache when it fits max_sequence_cache_gb, else the
    #: encoder inside training), cache, or stream
    sequence_source: str = "auto"
    #: frame cache layers: all, or probe (only the layers the probe reads)
    cache_layers: str = "all"


@dataclass
class ProtocolConfig:
    #: fast (bench's default: early stopping, a learning-rate sweep, 3 seeds, cached fixed
    #: crops) or reference (s3prl 0.4.18 / hear-eval-kit 2021.1.3 exactly); see
    #: docs/protocols.md
    profile: str = "fast"
    #: HEAR tasks under the reference profile: the published protocol to match: last
    #: (layer), concat (all layers side by side) or module (a HEAR-API module's own)
    hear_embedding: str = "last"


@dataclass
class ProbeConfig:
    #: null: the profile's seeds (fast: 0, 1, 2; reference: s3prl's 1337, HEAR's 42)
    seeds: list[int] | None = None
    #: null: the task's own grid / schedule
    lr_grid: list[float] | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    eval_every: int | None = None
    patience: int | None = None
    #: weighted (learned softmax weighted sum), last, concat (HEAR only) or a layer index
    layers: str = "weighted"
    #: parameter-free layer norm of each layer before combining
    layer_norm: bool = False
    #: auto (cuda when available), cpu, cuda, cuda:N
    device: str = "auto"
    #: auto (bfloat16 autocast where a protocol supports it on a GPU), fp32, bf16
    precision: str = "auto"
    #: probes trained at once, one thread each; null: one per CPU thread (1 on a GPU)
    workers: int | None = None
    #: train a sweep's probes as stacked models where the head allows (bench.stacking)
    stack: bool = True


@dataclass
class UpstreamConfig:
    #: allow checkpoints that execute code shipped with them (off unless asked for)
    trust_remote_code: bool = False
    #: hub revision (branch, tag or commit) for hub-id upstreams
    revision: str | None = None


@dataclass
class TrackingConfig:
    enabled: bool = True
    #: null: $MLFLOW_TRACKING_URI, else sqlite:///<workspace>/mlflow.db
    uri: str | None = None


@dataclass
class QuickConfig:
    #: a quick check (``bench run --quick`` / ``--limit N``): fewer items and a short
    #: schedule; recorded as such and never taken for a full result by report or check
    enabled: bool = False
    #: items per split at most
    items_per_split: int = 64
    #: training steps at most (epochs for HEAR tasks)
    max_steps: int = 100


@dataclass
class WorkConfig:
    """The units of work that ``executor=ray|slurm`` spread over workers (docs/scaling.md)."""

    #: cache shards (about ``extract.shard_seconds`` of audio each) per extraction unit
    shards_per_unit: int = 1
    #: CPUs per unit; its torch threads and probe workers follow (unless runtime.threads)
    cpus: int = 1
    #: GPUs per unit that runs the encoder or trains on a GPU (extract/probe.device not cpu)
    gpus: int = 0
    #: a unit whose worker died (killed, preempted, node lost) runs again this many times
    retries: int = 2


@dataclass
class RayConfig:
    #: null: bench starts a Ray of its own on 127.0.0.1; else a running cluster's address
    #: (``auto``, ``host:6379``, ``ray://host:10001``)
    address: str | None = None
    #: CPUs of the Ray bench starts (null: this machine's)
    num_cpus: int | None = None
    #: start that Ray's dashboard (on 127.0.0.1)
    dashboard: bool = False


@dataclass
class SlurmConfig:
    #: null: the cluster's default partition
    partition: str | None = None
    #: time limit of each job, in minutes
    time_min: int = 240
    #: jobs of one array running at once
    array_parallelism: int = 64
    #: memory per job in GB; null: the partition's default
    mem_gb: float | None = None
    #: submitit's job files and logs; on a file system every node sees
    folder: str = "${paths.workspace}/slurm"
    #: seconds between two looks at the jobs
    poll_s: float = 10.0
    #: other sbatch options, e.g. {account: proj, qos: high, constraint: a100}
    sbatch: dict[str, Any] = field(default_factory=dict)


@dataclass
class RuntimeConfig:
    #: torch threads; null: the CPUs this process may use
    threads: int | None = None
    log_level: str = "INFO"
    progress: bool = True


@dataclass
class BenchConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    #: per task: task name -> task options (see each task's Options)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    quick: QuickConfig = field(default_factory=QuickConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    #: where the work runs: local (this process, task after task), ray or slurm
    executor: str = "local"
    work: WorkConfig = field(default_factory=WorkConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


def default_config_file() -> Path | None:
    """./bench.yaml when it exists (e.g. in a checkout), else none: the schema's defaults."""
    candidate = Path.cwd() / CONFIG_FILE_NAME
    return candidate if candidate.is_file() else None


def load_config(config_file: Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """The schema, with ``config_file`` (default: ./bench.yaml if present) and overrides merged in."""
    config = OmegaConf.structured(BenchConfig)
    config_file = config_file or default_config_file()
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(
            f"configuration file {config_file} does not exist (bench.yaml in the repository "
            "lists every key with its default)"
        )
    if config_file is not None:
        config = _merge(config, lambda: OmegaConf.load(config_file), f"in {config_file}")
    if overrides:
        _check_override_syntax(overrides)
        config = _merge(config, lambda: OmegaConf.from_dotlist(list(overrides)), "in the overrides")
    try:
        OmegaConf.resolve(config)
    except OmegaConfBaseException as error:
        raise ConfigError(f"bad configuration: {_first_line(error)}") from None
    _validate(config)
    return config


def _merge(config: DictConfig, load: Any, where: str) -> DictConfig:
    import yaml

    try:
        return OmegaConf.merge(config, load())  # type: ignore[return-value]
    except (OmegaConfBaseException, yaml.YAMLError, OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"bad configuration {where}: {_first_line(error)}") from None


def _check_override_syntax(overrides: list[str]) -> None:
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key or key != key.strip():
            raise ConfigError(
                f"bad override '{override}': expected key=value (e.g. probe.seeds=[0])"
            )


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def _validate(config: DictConfig) -> None:
    layers = str(config.probe.layers)
    named = layers in ("weighted", "last", "concat") or layers.lstrip("-").isdigit()
    if not named and re.fullmatch(r"\d+-\d+|\d+(,\d+)+", layers) is None:
        raise ConfigError(
            "probe.layers must be weighted, last, concat, a layer index or a subset "
            f"(A-B, A,B,C), not '{layers}'"
        )
    choices = {
        "extract.padding_variant": ("exact", "bucketed", "batch"),
        "extract.sequence_source": ("auto", "cache", "stream"),
        "extract.cache_layers": ("all", "probe"),
        "probe.precision": ("auto", "fp32", "bf16"),
        "protocol.profile": ("fast", "reference"),
        "protocol.hear_embedding": ("last", "concat", "module"),
    }
    for key, allowed in choices.items():
        if OmegaConf.select(config, key) not in allowed:
            raise ConfigError(
                f"{key} must be {' | '.join(allowed)}, not '{OmegaConf.select(config, key)}'"
            )
    if not 0 <= config.extract.max_padding < 1:
        raise ConfigError("extract.max_padding must be a fraction in [0, 1)")
    if config.probe.seeds is not None and not config.probe.seeds:
        raise ConfigError("probe.seeds must list at least one seed (or be null: the profile's)")
    if config.quick.items_per_split < 1 or config.quick.max_steps < 1:
        raise ConfigError("quick.items_per_split and quick.max_steps must be at least 1")
    if config.executor not in EXECUTORS:
        raise ConfigError(
            f"executor must be one of {', '.join(EXECUTORS)}, not '{config.executor}'"
        )
    work = config.work
    if work.shards_per_unit < 1 or work.cpus < 1 or work.gpus < 0 or work.retries < 0:
        raise ConfigError(
            "work.shards_per_unit and work.cpus must be at least 1, work.gpus and "
            "work.retries at least 0"
        )
    level = str(config.runtime.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(
            f"runtime.log_level must be DEBUG, INFO, WARNING or ERROR, not '{config.runtime.log_level}'"
        )
    for key in ("extract.device", "probe.device"):
        device = str(OmegaConf.select(config, key))
        if not DEVICE.match(device):
            raise ConfigError(
                f"{key} must be auto, cpu, cuda, cuda:N or mps, not '{device}'"
                + (" (for a GPU, cuda)" if device.lower() == "gpu" else "")
            )


def tracking_uri(config: DictConfig) -> str:
    """Where MLflow logs: the config's uri, else $MLFLOW_TRACKING_URI, else a local SQLite file."""
    if config.tracking.uri:
        return str(config.tracking.uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    workspace = Path(config.paths.workspace).resolve()
    return f"sqlite:///{workspace / 'mlflow.db'}"


def to_yaml(config: DictConfig) -> str:
    return OmegaConf.to_yaml(config, resolve=True)


def yaml_of(container: dict[str, Any]) -> str:
    """A resolved config kept as a plain dict (e.g. in a record), as YAML."""
    return OmegaConf.to_yaml(OmegaConf.create(container))


def to_container(config: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
