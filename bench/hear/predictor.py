"""The HEAR downstream predictor and its training, on in-memory arrays (no Lightning).

Facts from hear-eval-kit 2021.1.3 (``heareval/predictions/task_predictions.py``):

- Model: ``hidden_layers`` x [Linear(hidden_dim=1024) -> BatchNorm1d -> Dropout(0.1) -> ReLU],
  then Linear(labels). Weights Xavier-initialised (uniform or normal) with the gain of the
  activation feeding the layer (``linear`` for the first, ``relu`` after a hidden layer);
  biases keep PyTorch's default initialisation.
- Loss: cross-entropy on the argmax of one-hot targets (multiclass) or BCE with logits
  (multilabel); scores are computed on softmax / sigmoid outputs.
- Adam, batch 1024, at most 500 epochs, validation every 3 epochs, early stopping after 20
  validations without strict improvement, the best validation checkpoint kept.
- Grid: hidden_layers {1, 2} x initialization {xavier_uniform, xavier_normal} x lr
  {3.2e-3, 1e-3, 3.2e-4, 1e-4} = 16 points, in scikit-learn ParameterGrid order (sorted keys,
  last varying fastest), shuffled with ``random`` seeded 42; the first 8 are trained.

bench adds its layer featurizer in front (``bench.featurizer.layer_combiner``): the input is
every layer of the upstream, ``[B, L, D]``, combined by a learned softmax weighted sum
(weights zero-initialised, trained with the predictor), concatenated, or reduced beforehand
to one layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from bench.featurizer import (
    Features,
    Gathered,
    StackedWeightedSum,
    WeightedSum,
    layer_combiner,
)
from bench.hear.grid import GridPoint
from bench.probe import seeded
from bench.stacking import (
    ActiveProbes,
    Evaluation,
    ProbeGroup,
    ProbeSpec,
    StackedLinear,
    StackedModule,
    StackProgress,
    StackSchedule,
    probe_means,
    register_stacked,
    train_stack,
)

#: "weighted" and "concat" combine every layer; "single": the features hold one layer already
CombineMode = Literal["weighted", "concat", "single"]


@dataclass(frozen=True)
class TrainingConfig:
    """Epoch-based schedule; see HearOptions for ``shuffle`` and ``stop_on_non_finite``."""

    max_epochs: int = 500
    eval_every: int = 3
    patience: int = 20
    batch_size: int = 1024
    hidden_dim: int = 1024
    dropout: float = 0.1
    shuffle: bool = True
    stop_on_non_finite: bool = False


# -- model ------------------------------------------------------------------------------------


def build_mlp(
    in_dim: int, num_labels: int, point: GridPoint, hidden_dim: int, dropout: float
) -> nn.Sequential:
    """The reference's FullyConnectedPrediction, initialised the same way."""
    init = (
        nn.init.xavier_uniform_
        if point.initialization == "xavier_uniform"
        else nn.init.xavier_normal_
    )
    modules: list[nn.Module] = []
    size, activation = in_dim, "linear"
    for _ in range(point.hidden_layers):
        linear = nn.Linear(size, hidden_dim)
        init(linear.weight, gain=nn.init.calculate_gain(activation))
        modules += [linear, nn.BatchNorm1d(hidden_dim), SeededDropout(dropout), nn.ReLU()]
        size, activation = hidden_dim, "relu"
    projection = nn.Linear(size, num_labels)
    init(projection.weight, gain=nn.init.calculate_gain(activation))
    return nn.Sequential(*modules, projection)


class SeededDropout(nn.Dropout):
    """``nn.Dropout`` drawing its masks from ``generator`` (when set) instead of torch's
    global generator, so that predictors trained side by side in threads are reproducible."""

    generator: torch.Generator | None = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(inputs)
        if self.p == 1:
            return torch.zeros_like(inputs)
        keep = torch.empty_like(inputs).bernoulli_(1 - self.p, generator=self.generator)
        return inputs * keep / (1 - self.p)


class HearPredictor(nn.Module):
    """LayerCombiner -> MLP; ``forward`` gives logits, ``probabilities`` the scored outputs."""

    def __init__(
        self,
        num_layers: int,
        hidden_size: int,
        num_labels: int,
        point: GridPoint,
        config: TrainingConfig,
        mode: CombineMode,
        multilabel: bool,
        normalize_layers: bool = False,
    ):
        super().__init__()
        self.multilabel = multilabel
        if mode == "single" and num_layers != 1:
            raise ValueError("mode 'single' expects features reduced to one layer")
        selection = 0 if mode == "single" else mode
        self.combiner = layer_combiner(num_layers, selection, normalize_layers)
        in_dim = self.combiner.output_dim(hidden_size)
        self.mlp = build_mlp(in_dim, num_labels, point, config.hidden_dim, config.dropout)

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.combiner(layers))

    def use_generator(self, generator: torch.Generator) -> None:
        """Draw dropout masks from ``generator``."""
        self.generator = generator
        for module in self.modules():
            if isinstance(module, SeededDropout):
                module.generator = generator

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return prediction_loss(logits, targets, self.multilabel)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return predicted_probabilities(logits, self.multilabel)


def prediction_loss(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """The reference's loss: BCE with logits (multilabel) or cross-entropy on the argmax of
    the one-hot targets. Rows ``[N, C]`` give one loss; ``[P, N, C]`` one per probe."""
    if logits.dim() == 3:
        if multilabel:
            losses = functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        else:
            losses = functional.cross_entropy(
                logits.flatten(0, 1), targets.argmax(dim=-1).flatten(), reduction="none"
            )
        return probe_means(losses.view(len(logits), -1))
    if multilabel:
        return functional.binary_cross_entropy_with_logits(logits, targets)
    return functional.cross_entropy(logits, targets.argmax(dim=1))


def predicted_probabilities(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Scored outputs: sigmoid (multilabel) or softmax over classes."""
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)


# -- stacked form (bench.stacking) -----------------------------------------------------------


class StackedBatchNorm1d(nn.Module):
    """P ``BatchNorm1d``s on ``[P, B, H]``: each probe's slice is normalised (and its running
    statistics updated) by ``F.batch_norm`` exactly as its own module would."""

    def __init__(self, probes: int, features: int, eps: float, momentum: float):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.empty(probes, features))
        self.bias = nn.Parameter(torch.empty(probes, features))
        self.register_buffer("running_mean", torch.zeros(probes, features))
        self.register_buffer("running_var", torch.ones(probes, features))
        self.register_buffer("num_batches_tracked", torch.zeros(probes, dtype=torch.long))

    @classmethod
    def like(cls, norm: nn.BatchNorm1d, probes: int) -> StackedBatchNorm1d:
        assert norm.momentum is not None and norm.affine and norm.track_running_stats
        return cls(probes, norm.num_features, norm.eps, norm.momentum)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        outputs = []
        parts = zip(inputs.unbind(0), self.weight.unbind(0), self.bias.unbind(0), strict=True)
        for p, (x, weight, bias) in enumerate(parts):
            mean, var = self.running_mean[p], self.running_var[p]  # updated in place
            outputs.append(
                functional.batch_norm(
                    x, mean, var, weight, bias, self.training, self.momentum, self.eps
                )
            )
        return torch.stack(outputs)


class StackedDropout(nn.Module):
    """P ``SeededDropout``s on ``[P, B, H]``: probe p's mask drawn from its own generator,
    as its own module draws it."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.generators: list[torch.Generator] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return inputs
        if self.p == 1:
            return torch.zeros_like(inputs)
        keep = torch.stack(
            [
                torch.empty_like(part).bernoulli_(1 - self.p, generator=generator)
                for part, generator in zip(inputs.unbind(0), self.generators, strict=True)
            ]
        )
        return inputs * keep / (1 - self.p)


def _stack_mlp_layer(layer: nn.Module, probes: int) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return StackedLinear.like(layer, probes)
    if isinstance(layer, nn.BatchNorm1d):
        return StackedBatchNorm1d.like(layer, probes)
    if isinstance(layer, SeededDropout):
        return StackedDropout(layer.p)
    if isinstance(layer, nn.ReLU):
        return nn.ReLU()
    raise TypeError(f"no stacked form for {type(layer).__name__}")


@register_stacked(HearPredictor)
class StackedHearPredictor(StackedModule):
    """P ``HearPredictor``s of one architecture (initialisations and learning rates may
    differ): layers per probe ``[P, B, L, D]`` (or ``Gathered``), or ``[B, L, D]`` shared,
    give logits ``[P, B, C]``. Dropout masks come from each predictor's generator."""

    def __init__(self, probes: int, combiner: nn.Module, mlp: nn.Sequential, multilabel: bool):
        super().__init__()
        self.probes, self.combiner, self.mlp, self.multilabel = probes, combiner, mlp, multilabel

    @classmethod
    def empty(cls, head: nn.Module, probes: int) -> StackedHearPredictor:
        assert isinstance(head, HearPredictor)
        combiner = head.combiner
        if isinstance(combiner, WeightedSum):
            combiner = StackedWeightedSum.like(combiner, probes)
        mlp = nn.Sequential(*(_stack_mlp_layer(layer, probes) for layer in head.mlp))
        return cls(probes, combiner, mlp, head.multilabel)

    @classmethod
    def from_heads(cls, heads: Sequence[nn.Module]) -> StackedModule:
        stacked = super().from_heads(heads)
        assert isinstance(stacked, StackedHearPredictor)
        stacked._use_generators([getattr(head, "generator", None) for head in heads])
        return stacked

    def keep(self, positions: Sequence[int]) -> None:
        generators = self._dropouts()[0].generators if self._dropouts() else []
        super().keep(positions)
        if generators:
            self._use_generators([generators[p] for p in positions])

    def forward(self, layers: Features, shared: bool = False) -> torch.Tensor:
        if isinstance(self.combiner, StackedWeightedSum):
            return self.mlp(self.combiner(layers, shared=shared))
        combined = self.combiner(layers)  # ConcatLayers: no parameters
        return self.mlp(combined.expand(self.probes, *combined.shape) if shared else combined)

    def _dropouts(self) -> list[StackedDropout]:
        return [layer for layer in self.mlp if isinstance(layer, StackedDropout)]

    def _use_generators(self, generators: list[torch.Generator | None]) -> None:
        if self._dropouts() and any(generator is None for generator in generators):
            raise ValueError("stacked HEAR predictors draw dropout masks from use_generator()")
        for dropout in self._dropouts():
            dropout.generators = list(generators)  # type: ignore[arg-type]


# -- data -------------------------------------------------------------------------------------


@dataclass
class ProbeArrays:
    """Training examples: ``features`` [N, L, D] (float16 or float32), ``targets`` [N, C].

    groups: for frame examples, the item each frame belongs to (frames of an item are
        contiguous); None when each row is an item.
    """

    features: np.ndarray
    targets: np.ndarray
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.targets)

    @classmethod
    def concatenate(cls, parts: Sequence[ProbeArrays]) -> ProbeArrays:
        if len(parts) == 1:
            return parts[0]
        groups = None
        if parts[0].groups is not None:
            offsets = np.cumsum(
                [0] + [int(p.groups.max()) + 1 if len(p) else 0 for p in parts[:-1]]
            )
            groups = np.concatenate(
                [p.groups + offset for p, offset in zip(parts, offsets, strict=True)]
            )
        return cls(
            features=np.concatenate([p.features for p in parts]),
            targets=np.concatenate([p.targets for p in parts]),
            groups=groups,
        )


def fixed_order(arrays: ProbeArrays, seed: int) -> np.ndarray:
    """The reference's order: items in one seeded random order, an item's frames together."""
    rng = np.random.default_rng(seed)
    if arrays.groups is None:
        return rng.permutation(len(arrays))
    item_order = rng.permutation(int(arrays.groups.max()) + 1)
    rank = np.empty_like(item_order)
    rank[item_order] = np.arange(len(item_order))
    return np.argsort(rank[arrays.groups], kind="stable")


def batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``order``; a last batch of one example is dropped, since
    BatchNorm cannot train on a single example (the reference would crash there)."""
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        if len(batch) > 1:
            yield batch


# -- training ---------------------------------------------------------------------------------


#: a validation result: ``score`` drives early stopping and selection; ``detail`` is kept
#: with the checkpoint (e.g. the chosen event post-processing)
Validation = Evaluation


@dataclass
class TrainedPredictor:
    """A trained predictor at its best validation: that validation's ``score`` and
    ``detail``, the (0-based) ``best_epoch``, the number of ``epochs`` trained, and the
    validation ``curve`` ((epoch, score) pairs, epochs counted from 1)."""

    model: HearPredictor
    score: float
    detail: Any
    best_epoch: int
    epochs: int
    curve: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class PredictorJob:
    """One predictor to train: how to build it (under ``seeded(seed)``), its lr and seed."""

    make_model: Callable[[], HearPredictor]
    lr: float
    seed: int
    #: shown in progress
    label: str = ""


def train_predictors(
    jobs: Sequence[PredictorJob],
    train: ProbeArrays,
    valid_features: np.ndarray,
    validate: Callable[[torch.Tensor], Validation],
    config: TrainingConfig,
    maximize: bool,
    device: str = "cpu",
    workers: int = 1,
    stack: bool = True,
    progress: StackProgress | None = None,
) -> list[TrainedPredictor]:
    """Train every job on ``train`` with early stopping, step-synchronously as stacked
    models (``bench.stacking``; ``stack=False``: each predictor its own module), and return
    each at its best validation, in eval mode. ``validate`` scores one predictor's logits
    on ``valid_features``. A predictor's epochs, batches, dropout masks, validations and
    stopping are those it has when trained alone."""
    models = []
    for job in jobs:
        with seeded(job.seed, device):
            model = job.make_model()
        model = model.to(device)
        model.use_generator(torch.Generator(device=device).manual_seed(job.seed))
        models.append(model)
    epochs = _EpochBatches(train, [job.seed for job in jobs], config)
    steps = epochs.per_epoch
    schedule = StackSchedule(
        max_steps=config.max_epochs * steps,
        eval_every=config.eval_every * steps,
        patience=config.patience,
        grad_clip=None,
        higher_is_better=maximize,
        always_evaluate_last_step=False,
    )
    multilabel = models[0].multilabel if models else False

    def step_loss(group: nn.Module, active: ActiveProbes) -> torch.Tensor:
        index = np.stack([epochs.batch(i, active.step) for i in active.indices])
        logits = group(_rows(train.features, index, device))
        return prediction_loss(logits, _targets(train, index, device), multilabel)

    def evaluate(group: nn.Module, active: ActiveProbes) -> list[Validation]:
        logits = predict_logits(group, valid_features, config.batch_size, device)
        return [validate(probe) for probe in logits]

    results = train_stack(
        models,
        [ProbeSpec(job.lr, job.seed, job.label) for job in jobs],
        step_loss,
        evaluate,
        schedule,
        stopping=lambda: _EarlyStopping(config.patience, maximize, config.stop_on_non_finite),
        workers=workers,
        stack=stack,
        progress=progress,
    )
    trained = []
    for model, result in zip(models, results, strict=True):
        model.eval()
        best_epoch, epochs_trained = result.best_step // steps - 1, result.steps // steps
        curve = [(step // steps, score) for step, score in result.curve]
        trained.append(
            TrainedPredictor(
                model, result.best_score, result.detail, best_epoch, epochs_trained, curve
            )
        )
    return trained


def train_predictor(
    make_model: Callable[[], HearPredictor],
    train: ProbeArrays,
    valid_features: np.ndarray,
    validate: Callable[[torch.Tensor], Validation],
    lr: float,
    config: TrainingConfig,
    maximize: bool,
    seed: int,
    device: str = "cpu",
) -> TrainedPredictor:
    """One predictor: ``train_predictors`` of a single job."""
    job = PredictorJob(make_model, lr, seed)
    return train_predictors([job], train, valid_features, validate, config, maximize, device)[0]


class _EpochBatches:
    """Each predictor's batches, epoch by epoch, from its own seed: a fresh permutation
    every epoch (or, replicating the reference, one fixed order), cut by ``batches``. Every
    predictor has the same number of batches per epoch, so they step together."""

    def __init__(self, train: ProbeArrays, seeds: Sequence[int], config: TrainingConfig):
        self.train, self.batch_size = train, config.batch_size
        self.per_epoch = sum(1 for _ in batches(np.arange(len(train)), config.batch_size))
        if self.per_epoch == 0:
            raise ValueError("a HEAR predictor needs at least 2 training examples")
        self.rngs = [np.random.default_rng(seed) for seed in seeds]
        self.fixed = [None if config.shuffle else fixed_order(train, seed) for seed in seeds]
        self.orders: dict[int, np.ndarray] = {}

    def batch(self, probe: int, step: int) -> np.ndarray:
        """The rows of ``probe``'s batch at ``step`` (counted from 1 over all epochs)."""
        position = (step - 1) % self.per_epoch
        if position == 0:
            fixed = self.fixed[probe]
            self.orders[probe] = (
                self.rngs[probe].permutation(len(self.train)) if fixed is None else fixed
            )
        return self.orders[probe][position * self.batch_size : (position + 1) * self.batch_size]


def _rows(features: np.ndarray, index: np.ndarray, device: str) -> Features:
    """The features of ``index`` (``[P, B]``): gathered as the weighted sum reads them on a
    CPU, copied to the device otherwise."""
    if torch.device(device).type == "cpu":
        return Gathered(torch.from_numpy(features), torch.from_numpy(index))
    return torch.from_numpy(features[index]).to(device)


def _targets(train: ProbeArrays, index: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(train.targets[index]).to(device)


class _EarlyStopping:
    """The reference's rule: strict improvement over the best so far (non-finite scores
    never improve), the first validation kept as the best whatever its score; stop after
    ``patience`` validations without improvement, or (replicating the reference) at the
    first non-finite score."""

    def __init__(self, patience: int, maximize: bool, stop_on_non_finite: bool):
        self.patience, self.maximize = patience, maximize
        self.stop_on_non_finite = stop_on_non_finite
        self.best = -math.inf if maximize else math.inf
        self.stale = 0
        self.validated = False

    def accept(self, score: float) -> bool:
        better = math.isfinite(score) and (
            score > self.best if self.maximize else score < self.best
        )
        if better:
            self.best, self.stale = score, 0
        else:
            self.stale += 1
        first, self.validated = not self.validated, True
        return better or first

    def stop(self, score: float) -> bool:
        return self.stale >= self.patience or (self.stop_on_non_finite and not math.isfinite(score))


@torch.no_grad()
def predict_logits(
    model: nn.Module, features: np.ndarray, batch_size: int, device: str
) -> torch.Tensor:
    """Logits for every row, in order (eval mode): ``[N, C]`` from a ``HearPredictor``,
    ``[P, N, C]`` from a group of P (``bench.stacking``)."""
    model.eval()
    stacked = isinstance(model, ProbeGroup)
    outputs = []
    for start in range(0, len(features), batch_size):
        rows = torch.from_numpy(features[start : start + batch_size]).to(device)
        outputs.append((model(rows, shared=True) if stacked else model(rows)).cpu())
    if not outputs:
        raise ValueError("no rows to predict")
    return torch.cat(outputs, dim=-2)


def training_seed(seed: int, *indices: int) -> int:
    """A well-mixed seed for one (seed, fold, grid point) training."""
    return int(np.random.SeedSequence([seed, *indices]).generate_state(1)[0])
