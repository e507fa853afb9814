"""The HEAR 2021 evaluation protocol (hear-eval-kit 2021.1.3), on cached upstream features.

Two protocols, one per HEAR embedding type:

- ``hear.scene`` (``HearSceneProtocol``, feature kind ``scene``): one embedding per clip: the
  upstream's own clip embedding where it has one (a HEAR-API module's
  ``get_scene_embeddings``, as hear-eval-kit uses it), else the per-layer time mean of its
  hidden states (``[N, L, D]``).
- ``hear.timestamp`` (``HearTimestampProtocol``, feature kind ``sequence``): one embedding
  per upstream frame, stamped at the frame's centre as the upstream declares it
  (``UpstreamInfo.frame_times_ms``: a HEAR module's own timestamps, the receptive-field
  centre of bench's encoders); frames are labelled with the events active there,
  predictions become events by median filtering, thresholding at 0.5 and a minimum
  duration (``bench.hear.events``).

Every clip is zero-padded or trimmed at its end to the task's ``sample_duration`` before the
upstream (``clip_seconds``), as hear-preprocess makes the files hear-eval-kit embeds; the
HEAR archives' files already have that length.

Procedure (as the reference): the task's first fold (or its only train/valid/test split)
trains every sampled grid point (8 of 16, seed 42, ``bench.hear.grid``); the point with
the best validation score (the primary metric, or validation loss where the task sets
``use_scoring_for_early_stopping: false``) is kept, and the same point is retrained on every
other fold (fold i tests, fold i+1 validates). The first fold's model is the grid-search
model itself. Each fold's best checkpoint is scored on its validation split (``dev``) and
test split (``test``) with every metric of the task; metrics are reported as mean and
standard deviation over folds. With several ``ProbeSettings.seeds``, the grid search uses the
first seed and every fold is retrained for each further seed; Stats then span seeds x folds.

Settings: ``ProbeSettings.max_steps`` is the maximum number of *epochs* (HEAR: 500),
``eval_every`` the epochs between validations (3; DCASE 10, MAESTRO 1), ``patience`` the
validations without improvement before stopping (20), ``batch_size`` 1024. The HEAR grid
replaces ``ProbeSettings.lr_grid``, which these protocols ignore. ``layers`` picks the
featurizer (learned weighted sum by default, ``"concat"``, ``"last"`` or an index);
``layer_norm`` normalises each layer (per frame) first. The reference's known defects and
bench's fixes are switched by the task's options (``bench.hear.options.HearOptions``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from bench.data import DataError, Fold, Item, TaskData
from bench.hear.events import (
    Postprocessing,
    frame_targets,
    postprocessing_grid,
    predictions_to_events,
)
from bench.hear.grid import GridPoint, full_grid, sample_grid
from bench.hear.metrics import HEAR_METRICS, HearMetric, with_options
from bench.hear.options import HearOptions
from bench.hear.predictor import (
    CombineMode,
    HearPredictor,
    PredictorJob,
    ProbeArrays,
    TrainedPredictor,
    TrainingConfig,
    Validation,
    batches,
    predict_logits,
    predicted_probabilities,
    prediction_loss,
    train_predictors,
    training_seed,
)
from bench.hear.taskdir import HearTaskMetadata
from bench.progress import SweepProgress
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    LayerSelection,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    Stat,
    UpstreamInfo,
)

if TYPE_CHECKING:
    from bench.task import Task

LOSS = "loss"


# -- evaluation splits ------------------------------------------------------------------------


@dataclass
class _SceneSplit:
    """One row per clip."""

    arrays: ProbeArrays

    def score(
        self, probabilities: np.ndarray, metrics: Sequence[HearMetric], postprocessing: Any = None
    ) -> dict[str, float]:
        scores: dict[str, float] = {}
        for metric in metrics:
            scores.update(metric.compute(self.arrays.targets, probabilities))
        return scores


@dataclass
class _EventSplit:
    """Frames of several files; ``rows[f]`` are file ``f``'s rows, stamped ``timestamps[f]``."""

    arrays: ProbeArrays
    files: list[str]
    rows: list[slice]
    timestamps: list[np.ndarray]
    reference: dict[str, list[tuple[float, float, str]]]
    labels: list[str]

    def events(self, probabilities: np.ndarray, postprocessing: Postprocessing) -> dict[str, list]:
        return {
            name: predictions_to_events(probabilities[rows], stamps, self.labels, postprocessing)
            for name, rows, stamps in zip(self.files, self.rows, self.timestamps, strict=True)
        }

    def score(
        self,
        probabilities: np.ndarray,
        metrics: Sequence[HearMetric],
        postprocessing: Postprocessing,
    ) -> dict[str, float]:
        estimated = self.events(probabilities, postprocessing)
        scores: dict[str, float] = {}
        for metric in metrics:
            scores.update(metric.compute(self.reference, estimated, self.labels))
        return scores


_Split = _SceneSplit | _EventSplit


# -- the protocol -----------------------------------------------------------------------------


class _HearProtocol(ProbeProtocol):
    """What both HEAR protocols share; subclasses turn items into ``_Split``s."""

    embedding_type: ClassVar[str]
    # Whether the probe applies ProbeSettings.layer_norm itself (to frames); pooled features
    # come from the store already averaged over per-frame normalised states.
    normalizes_frames: ClassVar[bool]

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        metadata = _hear_metadata(data, self.embedding_type)
        options = task.options if isinstance(task.options, HearOptions) else HearOptions()
        upstream = self.feature_layout(upstream)
        layers = _layer_plan(settings.layers, upstream.num_layers)
        splits = {
            name: self._split(items, data, features, upstream, settings, layers)
            for name, items in data.splits.items()
        }
        normalize = settings.layer_norm and self.normalizes_frames
        run = _ProtocolRun(metadata, options, settings, upstream, layers, normalize, data, splits)
        outcome = run.execute()
        outcome.selected["embedding"] = self.embedding_description(upstream)
        outcome.selected["clip_seconds"] = self.clip_seconds(data)
        return outcome

    def clip_seconds(self, data: TaskData) -> float | None:
        """The task's ``sample_duration`` (None: clips as they are)."""
        return _hear_metadata(data, self.embedding_type).sample_duration

    def feature_layout(self, upstream: UpstreamInfo) -> UpstreamInfo:
        """The layers and width of the features this protocol reads."""
        return upstream

    def embedding_description(self, upstream: UpstreamInfo) -> str:
        """What the predictor was trained on, for the record."""
        raise NotImplementedError  # pragma: no cover - implemented by each protocol

    def _split(
        self,
        items: Sequence[Item],
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
        layers: _LayerPlan,
    ) -> _Split:  # pragma: no cover - implemented by each protocol
        raise NotImplementedError


class HearSceneProtocol(_HearProtocol):
    """HEAR scene tasks: a predictor on per-clip embeddings (the upstream's own, else
    per-layer time means)."""

    feature_kind = "scene"
    pooling = "the module's own scene embedding, else each layer's time mean"
    embedding_type = "scene"
    normalizes_frames = False

    def feature_layout(self, upstream: UpstreamInfo) -> UpstreamInfo:
        if upstream.scene_embedding_size is None:
            return upstream
        return dataclasses.replace(
            upstream, num_layers=1, hidden_size=upstream.scene_embedding_size
        )

    def embedding_description(self, upstream: UpstreamInfo) -> str:
        if upstream.scene_embedding_size is None:
            return "time mean of each layer"
        return "the upstream's own scene embedding"

    def _split(
        self,
        items: Sequence[Item],
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
        layers: _LayerPlan,
    ) -> _SceneSplit:
        pooled = layers.select(features.pooled(items, layer_norm=settings.layer_norm))
        label_index = _label_index(data)
        targets = np.zeros((len(items), len(label_index)), dtype=np.float32)
        for row, item in enumerate(items):
            targets[row, [label_index[label] for label in item.label]] = 1.0
        return _SceneSplit(ProbeArrays(np.ascontiguousarray(pooled, dtype=np.float32), targets))


class HearTimestampProtocol(_HearProtocol):
    """HEAR timestamp (event) tasks: a predictor on every frame, scored as events."""

    feature_kind = "sequence"
    embedding_type = "event"
    normalizes_frames = True

    def embedding_description(self, upstream: UpstreamInfo) -> str:
        first_ms = float(upstream.frame_times_ms(1)[0])
        return f"frames, centred at {first_ms:g} + {1000 / upstream.frame_rate:g} i ms"

    def _split(
        self,
        items: Sequence[Item],
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
        layers: _LayerPlan,
    ) -> _EventSplit:
        label_index = _label_index(data)
        frames, targets, groups = [], [], []
        files, rows, stamps, reference = [], [], [], {}
        start = 0
        for item, sequence in zip(items, features.sequences(items), strict=True):
            reference[item.key] = list(item.label)
            if len(sequence) == 0:
                continue  # nothing to predict on; the reference never sees such a file either
            timestamps = upstream.frame_times_ms(len(sequence))
            frames.append(layers.select(np.asarray(sequence, dtype=np.float16)))
            targets.append(frame_targets(item.label, timestamps, label_index))
            groups.append(np.full(len(sequence), len(files)))
            files.append(item.key)
            rows.append(slice(start, start + len(sequence)))
            stamps.append(timestamps)
            start += len(sequence)
        if not frames:
            raise DataError("every item of a split has zero frames")
        arrays = ProbeArrays(
            np.concatenate(frames), np.concatenate(targets), np.concatenate(groups)
        )
        return _EventSplit(arrays, files, rows, stamps, reference, list(data.vocabulary["label"]))


PROTOCOLS.register("hear.scene", HearSceneProtocol)
PROTOCOLS.register("hear.timestamp", HearTimestampProtocol)


# -- one run of the protocol ------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One predictor to train: a grid point on a fold, with a seed."""

    fold: Fold
    point: GridPoint
    seed: int
    grid_index: int
    phase: str  # "grid" (the search, on the first fold) or "fold" (retraining)


class _ProtocolRun:
    """Grid search on the first fold, retraining on the others, scoring; see module docstring."""

    def __init__(
        self,
        metadata: HearTaskMetadata,
        options: HearOptions,
        settings: ProbeSettings,
        upstream: UpstreamInfo,
        layers: _LayerPlan,
        normalize_layers: bool,
        data: TaskData,
        splits: Mapping[str, _Split],
    ):
        self.metadata, self.options, self.settings = metadata, options, settings
        self.upstream, self.layers, self.splits = upstream, layers, splits
        self.normalize_layers = normalize_layers
        self.folds: Sequence[Fold] = data.folds
        self.labels = list(data.vocabulary["label"])
        self.metrics = [_metric(name, options) for name in metadata.evaluation]
        self.scoring = metadata.use_scoring_for_early_stopping
        self.postprocessing = postprocessing_grid(metadata.postprocessing_grid)
        self.config = TrainingConfig(
            max_epochs=settings.max_steps,
            eval_every=settings.eval_every,
            patience=settings.patience,
            batch_size=settings.batch_size,
            hidden_dim=options.hidden_dim,
            shuffle=options.shuffle_batches,
            stop_on_non_finite=options.nan_score_stops_training,
        )
        self.seeds = tuple(settings.seeds) or (0,)
        self.trials: list[dict[str, Any]] = []

    @property
    def selection_metric(self) -> str:
        return self.metrics[0].name if self.scoring else LOSS

    @property
    def maximize(self) -> bool:
        return self.metrics[0].higher_is_better if self.scoring else False

    def _better(self, score: float, than: float) -> bool:
        """Strictly better; a non-finite score is worse than any finite one."""
        return _sort_key(score, self.maximize) < _sort_key(than, self.maximize)

    def execute(self) -> ProbeOutcome:
        grid = sample_grid(full_grid(), self.options.grid_points, self.options.grid_seed)
        best_index, best = self._grid_search(grid)
        finals = self._train_folds(grid, best_index, best)
        dev = [self._score(model, fold.dev) for fold, model in finals]
        test = [self._score(model, fold.test) for fold, model in finals]
        return ProbeOutcome(
            metrics={"dev": _stats(dev), "test": _stats(test)},
            selected=self._selected(grid[best_index], best, finals),
            trials=self.trials,
            layer_weights=_mean_layer_weights([model for _, model in finals]),
        )

    def _grid_search(self, grid: Sequence[GridPoint]) -> tuple[int, TrainedPredictor]:
        """Train every grid point on the first fold; keep the best (the first of equals, as
        the reference's stable sort does)."""
        fold, seed = self.folds[0], self.seeds[0]
        jobs = [_Job(fold, point, seed, index, "grid") for index, point in enumerate(grid)]
        trained = self._train_all(jobs, "HEAR grid")
        if not trained:
            raise ValueError("the grid has no points")
        best_index = 0
        for index, candidate in enumerate(trained):
            if self._better(candidate.score, trained[best_index].score):
                best_index = index
        return best_index, trained[best_index]

    def _train_folds(
        self, grid: Sequence[GridPoint], best_index: int, best: TrainedPredictor
    ) -> list[tuple[Fold, TrainedPredictor]]:
        """The grid-search model for the first seed and fold (as the reference keeps it);
        the selected grid point retrained for every other (seed, fold)."""
        runs = [(seed, fold) for seed in self.seeds for fold in self.folds]

        def is_grid_run(seed: int, fold: Fold) -> bool:
            return seed == self.seeds[0] and fold is self.folds[0]

        jobs = [
            _Job(fold, grid[best_index], seed, best_index, "fold")
            for seed, fold in runs
            if not is_grid_run(seed, fold)
        ]
        retrained = iter(self._train_all(jobs, "HEAR folds"))
        return [(fold, best if is_grid_run(seed, fold) else next(retrained)) for seed, fold in runs]

    def _train_all(self, jobs: Sequence[_Job], description: str) -> list[TrainedPredictor]:
        """Train ``jobs`` (``bench.hear.predictor.train_predictors``: stacked, one call per
        fold); their trials are kept in job order."""
        folds = list(dict.fromkeys(job.fold.name for job in jobs))
        trained: dict[int, tuple[TrainedPredictor, dict[str, Any]]] = {}
        total = sum(self._steps_per_epoch(job.fold) for job in jobs) * self.config.max_epochs
        with SweepProgress(
            f"{description} {self.metadata.task_name}",
            probes=len(jobs),
            total_steps=total,
            enabled=self.settings.progress,
            higher_is_better=self.maximize,
            metric=f"valid {self.selection_metric}",
        ) as progress:
            for name in folds:
                positions = [i for i, job in enumerate(jobs) if job.fold.name == name]
                fold_jobs = [jobs[i] for i in positions]
                trained.update(zip(positions, self._train_fold(fold_jobs, progress), strict=True))
        self.trials.extend(trained[i][1] for i in range(len(jobs)))
        return [trained[i][0] for i in range(len(jobs))]

    def _train_fold(
        self, jobs: Sequence[_Job], progress: SweepProgress
    ) -> list[tuple[TrainedPredictor, dict[str, Any]]]:
        """The jobs of one fold, trained together; a trial's ``seconds`` is the wall time of
        that training, shared by the jobs trained together."""
        started = time.perf_counter()
        fold = jobs[0].fold
        fold_index = self.folds.index(fold)
        valid = self._single_split(fold.dev)
        predictor_jobs = [
            PredictorJob(
                partial(self._make_model, job.point),
                job.point.lr,
                training_seed(job.seed, fold_index, job.grid_index),
                label=f"{job.point.hidden_layers} layer, {job.point.initialization}, "
                f"lr {job.point.lr:g}" + (f", seed {job.seed}" if job.phase == "fold" else ""),
            )
            for job in jobs
        ]
        trained = train_predictors(
            predictor_jobs,
            self._train_arrays(fold),
            valid.arrays.features,
            partial(self._validate, valid),
            self.config,
            self.maximize,
            device=self.settings.device,
            workers=self.settings.workers,
            stack=self.settings.stack,
            progress=progress,
        )
        seconds = round(time.perf_counter() - started, 3)
        return [
            (predictor, self._trial(job, predictor, seconds))
            for job, predictor in zip(jobs, trained, strict=True)
        ]

    def _trial(self, job: _Job, trained: TrainedPredictor, seconds: float) -> dict[str, Any]:
        return {
            "phase": job.phase,
            "fold": job.fold.name,
            "seed": job.seed,
            **job.point.as_dict(),
            "selection_metric": self.selection_metric,
            "dev_score": _finite_or_none(trained.score),
            "best_epoch": trained.best_epoch + 1,
            "epochs": trained.epochs,
            "postprocessing": _postprocessing_dict(trained.detail),
            "seconds": seconds,
            "curve": [[epoch, score] for epoch, score in trained.curve],
        }

    def _train_arrays(self, fold: Fold) -> ProbeArrays:
        return ProbeArrays.concatenate([self.splits[name].arrays for name in fold.train])

    def _steps_per_epoch(self, fold: Fold) -> int:
        rows = sum(len(self.splits[name].arrays) for name in fold.train)
        return sum(1 for _ in batches(np.arange(rows), self.config.batch_size))

    def _make_model(self, point: GridPoint) -> HearPredictor:
        return HearPredictor(
            num_layers=self.layers.num_layers,
            hidden_size=self.upstream.hidden_size,
            num_labels=len(self.labels),
            point=point,
            config=self.config,
            mode=self.layers.mode,
            multilabel=self.metadata.prediction_type == "multilabel",
            normalize_layers=self.normalize_layers,
        )

    def _validate(self, valid: _Split, logits: torch.Tensor) -> Validation:
        """A predictor's validation, from its logits on ``valid``."""
        multilabel = self.metadata.prediction_type == "multilabel"
        if not self.scoring:
            targets = torch.from_numpy(valid.arrays.targets)
            loss = prediction_loss(logits, targets, multilabel)
            return Validation(float(loss), self._default_postprocessing())
        probabilities = predicted_probabilities(logits, multilabel).numpy()
        primary = self.metrics[0]
        if isinstance(valid, _SceneSplit):
            return Validation(self._primary(valid.score(probabilities, [primary])))
        # Pick the post-processing by the primary score, NaN counted as 0 (as the reference);
        # ties go to the larger setting, as its sort(reverse=True) does.
        scored = [
            (self._primary(valid.score(probabilities, [primary], setting)), setting)
            for setting in self.postprocessing
        ]
        score, chosen = max(scored, key=lambda pair: (_nan_to_zero(pair[0]), pair[1]))
        return Validation(validation_score(score, primary, self.options), chosen)

    def _primary(self, scores: Mapping[str, float]) -> float:
        return scores[self.metrics[0].name]

    def _default_postprocessing(self) -> Postprocessing | None:
        # Without scoring the reference uses its (single-entry) grid as is.
        return self.postprocessing[0] if self.metadata.embedding_type == "event" else None

    def _score(self, model: TrainedPredictor, split_names: Sequence[str]) -> dict[str, float]:
        """Every metric of the task, with the post-processing chosen at the best validation."""
        split = self._single_split(split_names)
        logits = predict_logits(
            model.model, split.arrays.features, self.config.batch_size, self.settings.device
        )
        probabilities = model.model.probabilities(logits).numpy()
        return split.score(probabilities, self.metrics, model.detail)

    def _single_split(self, names: Sequence[str]) -> _Split:
        if len(names) == 1:
            return self.splits[names[0]]
        raise DataError(f"HEAR validation and test use one split each, got {list(names)}")

    def _selected(
        self,
        point: GridPoint,
        best: TrainedPredictor,
        finals: Sequence[tuple[Fold, TrainedPredictor]],
    ) -> dict[str, Any]:
        selected: dict[str, Any] = {
            **point.as_dict(),
            "hidden_dim": self.config.hidden_dim,
            "dropout": self.config.dropout,
            "batch_size": self.config.batch_size,
            "max_epochs": self.config.max_epochs,
            "eval_every": self.config.eval_every,
            "patience": self.config.patience,
            "selection_metric": self.selection_metric,
            "validation_score": _finite_or_none(best.score),
            "layers": self.layers.description,
            "options": {
                "grid_points": self.options.grid_points,
                "grid_seed": self.options.grid_seed,
                "shuffle_batches": self.options.shuffle_batches,
                "nan_score_stops_training": self.options.nan_score_stops_training,
                "finite_d_prime": self.options.finite_d_prime,
                "hidden_dim": self.options.hidden_dim,
            },
        }
        if self.metadata.embedding_type == "event":
            selected["postprocessing"] = {
                fold.name: _postprocessing_dict(model.detail) for fold, model in finals
            }
        return selected


# -- helpers ----------------------------------------------------------------------------------


def validation_score(score: float, metric: HearMetric, options: HearOptions) -> float:
    """The score early stopping sees for an event metric's validation value.

    An undefined F-measure (NaN: nothing detected, precision 0/0) is 0 for bench, which is
    its value whenever the validation set has events; replicating the reference
    (``nan_score_stops_training``) keeps the NaN, and the NaN stops training.
    """
    if math.isnan(score) and metric.higher_is_better and not options.nan_score_stops_training:
        return 0.0
    return score


@dataclass(frozen=True)
class _LayerPlan:
    """How ProbeSettings.layers maps onto stored features and the combiner."""

    mode: CombineMode
    num_layers: int
    index: int | None
    description: str

    def select(self, layers: np.ndarray) -> np.ndarray:
        """Keep only the layer a single-layer probe uses (saves memory on frame features)."""
        if self.index is None:
            return layers
        return layers[..., self.index : self.index + 1, :]


def _layer_plan(selection: LayerSelection, num_layers: int) -> _LayerPlan:
    if selection == "weighted":
        return _LayerPlan("weighted", num_layers, None, "weighted")
    if selection == "concat":
        return _LayerPlan("concat", num_layers, None, "concat")
    index = num_layers - 1 if selection == "last" else selection
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not -num_layers <= index < num_layers
    ):
        raise ValueError(
            f"layers={selection!r}: expected weighted, concat, last or an index < {num_layers}"
        )
    index %= num_layers
    return _LayerPlan("single", 1, index, f"layer {index}")


def _hear_metadata(data: TaskData, embedding_type: str) -> HearTaskMetadata:
    metadata = data.extras.get("hear")
    if not isinstance(metadata, HearTaskMetadata):
        raise DataError("HEAR protocols need task data read by bench.hear.taskdir (extras['hear'])")
    if metadata.embedding_type != embedding_type:
        raise DataError(
            f"{metadata.versioned_name} is a {metadata.embedding_type} task; "
            f"this protocol evaluates {embedding_type} tasks"
        )
    return metadata


def _metric(name: str, options: HearOptions) -> HearMetric:
    metric = HEAR_METRICS[name]
    if name == "d_prime":
        return with_options(metric, finite=options.finite_d_prime)
    return metric


def _label_index(data: TaskData) -> dict[str, int]:
    return {label: index for index, label in enumerate(data.vocabulary["label"])}


def _sort_key(score: float, maximize: bool) -> float:
    """Best first; non-finite scores last."""
    if not math.isfinite(score):
        return math.inf
    return -score if maximize else score


def _nan_to_zero(score: float) -> float:
    return 0.0 if math.isnan(score) else score


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _postprocessing_dict(detail: Any) -> dict[str, float] | None:
    return detail.as_dict() if isinstance(detail, Postprocessing) else None


def _stats(runs: Sequence[Mapping[str, float]]) -> dict[str, Stat]:
    return {name: Stat.of([run[name] for run in runs]) for name in runs[0]}


def _mean_layer_weights(models: Sequence[TrainedPredictor]) -> list[float] | None:
    weights = [model.model.combiner.learned_weights() for model in models]
    if weights[0] is None:
        return None
    return np.mean(np.asarray(weights), axis=0).tolist()
