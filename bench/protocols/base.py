"""The contract between the engine and a probing protocol.

A protocol turns cached upstream features of a task's items into scores: it builds
the task's head on the layer featurizer, trains it over the hyper-parameter grid and
seeds, selects on dev and scores test. It knows nothing of MLflow or the CLI; the
runner gives it features and settings and records what it returns.
"""

from __future__ import annotations

import importlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from typing import Protocol as TypingProtocol

import numpy as np

from bench.data import DataError
from bench.registry import Registry

if TYPE_CHECKING:
    from bench.data import Fold, Item, TaskData
    from bench.task import Task

#: What a protocol asks the cache for: ``pooled`` (each layer's time mean per item),
#: ``sequence`` (every frame) or ``scene`` (one vector per clip: the upstream's own clip
#: embedding, as a single layer of ``UpstreamInfo.scene_embedding_size``, where it has one;
#: else exactly ``pooled``).
FeatureKind = Literal["pooled", "sequence", "scene"]


@dataclass(frozen=True)
class UpstreamInfo:
    """What a protocol may know about the encoder.

    first_frame_centre_s: the centre of frame 0 (frame i: + i / frame_rate), as the
        upstream declares it; None means half a frame.
    scene_embedding_size: the width of the upstream's own clip embedding, which the
        ``scene`` feature kind holds; None when it has none.
    """

    name: str
    num_layers: int
    hidden_size: int
    frame_rate: float
    first_frame_centre_s: float | None = None
    scene_embedding_size: int | None = None

    def frame_times_ms(self, num_frames: int) -> np.ndarray:
        """Centres of the first ``num_frames`` frames, in milliseconds."""
        first = (
            0.5 / self.frame_rate
            if self.first_frame_centre_s is None
            else self.first_frame_centre_s
        )
        return (first + np.arange(num_frames) / self.frame_rate) * 1000.0


class FeatureStore(TypingProtocol):
    """Read access to an upstream's cached features, by item.

    pooled: ``[N, L, D]`` float32, each layer's mean over the item's valid frames; with
        ``layer_norm`` the mean of the per-frame layer-normed states instead.
    sequences: one ``[T_i, L, D]`` float16 array per item (memory-mapped; copy what you
        keep), the raw frames at the upstream's frame rate.
    """

    def pooled(self, items: Sequence[Item], layer_norm: bool = False) -> np.ndarray: ...

    def sequences(self, items: Sequence[Item]) -> list[np.ndarray]: ...


LayerSelection = Literal["weighted", "last", "concat"] | int


@dataclass(frozen=True)
class ProbeSettings:
    """Resolved probe settings: the task's schedule with the user's overrides applied.

    layers: ``"weighted"`` (learned softmax weighted sum, the default), ``"last"``,
        ``"concat"`` (all layers side by side; HEAR protocols only) or a layer index.
    layer_norm: parameter-free layer norm of each layer before combining.
    workers: stacks of probes (``bench.stacking``; or single probes) trained at once, each
        on one thread.
    stack: train the probes of a sweep as stacked models where the head has a stacked form;
        False trains each probe's own module (in lock-step groups).
    early_stopping: stop a probe after ``patience`` evaluations without a dev improvement
        (bench's ``fast`` profile); False trains every probe for exactly ``max_steps`` and
        keeps its dev-best state (s3prl's fixed-length runs, ``bench.profiles``).
    """

    lr_grid: tuple[float, ...]
    seeds: tuple[int, ...]
    batch_size: int
    max_steps: int
    eval_every: int
    patience: int
    early_stopping: bool = True
    optimizer: str = "adam"
    weight_decay: float = 0.0
    layers: LayerSelection = "weighted"
    layer_norm: bool = False
    device: str = "cpu"
    #: "fp32", or "bf16": bfloat16 autocast for the protocols that support it on a GPU
    precision: str = "fp32"
    progress: bool = True
    #: probes trained at once (``bench.parallel``)
    workers: int = 1
    stack: bool = True


@dataclass(frozen=True)
class Stat:
    """A metric over seeds (and folds): mean, sample standard deviation, the values."""

    mean: float
    std: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        """Mean and sample standard deviation; with a non-finite value the mean is what
        arithmetic gives (inf, nan) and the spread is undefined (nan)."""
        values = tuple(float(v) for v in values)
        if not values:
            raise ValueError("a Stat needs at least one value")
        if len(values) == 1:
            return cls(mean=values[0], std=0.0, values=values)
        if not all(math.isfinite(v) for v in values):
            return cls(mean=float(np.mean(values)), std=math.nan, values=values)
        return cls(mean=statistics.fmean(values), std=statistics.stdev(values), values=values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": _finite(self.mean),
            "std": _finite(self.std),
            "values": [_finite(v) for v in self.values],
        }


def _finite(value: float) -> float | None:
    """Strict JSON has no NaN/Infinity; those become null."""
    return value if math.isfinite(value) else None


@dataclass
class ProbeOutcome:
    """What a protocol returns.

    metrics: split (``"dev"``, ``"test"``) -> metric name -> Stat over seeds/folds of the
        selected hyper-parameters.
    selected: the chosen hyper-parameters (e.g. ``{"lr": 1e-3}``).
    trials: one dict per trained probe (hyper-parameters, seed, fold, dev score, steps...).
    layer_weights: the learned layer weights of the selected probes (mean over seeds and
        folds), when the featurizer learns them.
    """

    metrics: dict[str, dict[str, Stat]]
    selected: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    layer_weights: list[float] | None = None


def single_fold(data: TaskData, task_name: str, protocol: str) -> Fold:
    """The one fold of ``data``, for protocols scored on one fixed train/dev/test split."""
    if len(data.folds) != 1:
        raise DataError(f"{task_name}: {protocol} takes one fold")
    return data.folds[0]


class ProbeProtocol:
    """Base class of protocols. ``feature_kind`` says which cache the runner must fill."""

    feature_kind: ClassVar[FeatureKind]
    #: how frames become one vector per item, in words, for the record's provenance
    pooling: ClassVar[str] = "none: the head reads every frame"
    #: sequence protocols that train batch by batch from a ``bench.frames.sources``
    #: FrameSource, so that frames may come from the encoder stream instead of a cache
    frame_stream: ClassVar[bool] = False

    def clip_seconds(self, data: TaskData) -> float | None:
        """The duration (s) every clip is zero-padded or trimmed to (at its end) before the
        upstream, or None to use each clip as it is. The runner keys the cache by it."""
        return None

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:  # pragma: no cover - implemented by each protocol
        raise NotImplementedError


class BindsUpstream:
    """A protocol that runs the encoder itself while training (on fresh waveform crops):
    the runner hands it the built upstream (``bind_upstream``) before ``run``."""

    upstream: Any = None

    def bind_upstream(self, upstream: Any) -> None:
        self.upstream = upstream

    def bound_upstream(self, task_name: str) -> Any:
        """The upstream handed over, or a clear error when there is none."""
        if self.upstream is None:
            raise DataError(
                f"{task_name}: training on waveform crops runs the encoder while training, "
                "and no upstream was handed over (bind_upstream)"
            )
        return self.upstream


class ResumableProtocol(ProbeProtocol):
    """A protocol whose long sweeps checkpoint every evaluation and resume after a kill:
    the runner hands it ``bench.frames.checkpoint.SweepCheckpoints`` before ``run``."""

    checkpoints: Any = None

    def use_checkpoints(self, checkpoints: Any) -> None:
        self.checkpoints = checkpoints


def _populate_protocols() -> None:
    from bench.protocols import PROTOCOL_MODULES

    for module in PROTOCOL_MODULES:
        importlib.import_module(module)


PROTOCOLS: Registry[type[ProbeProtocol]] = Registry("protocol", populate=_populate_protocols)
