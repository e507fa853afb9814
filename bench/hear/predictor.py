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

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from bench.featurizer import layer_combiner
from bench.hear.grid import GridPoint
from bench.parallel import raise_if_cancelled
from bench.probe import make_optimizer, seeded

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
        for module in self.modules():
            if isinstance(module, SeededDropout):
                module.generator = generator

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return functional.binary_cross_entropy_with_logits(logits, targets)
        return functional.cross_entropy(logits, targets.argmax(dim=1))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)


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


@dataclass(frozen=True)
class Validation:
    """A validation result: ``score`` drives early stopping and selection; ``detail`` is kept
    with the checkpoint (e.g. the chosen event post-processing)."""

    score: float
    detail: Any = None


@dataclass
class TrainedPredictor:
    """A trained predictor at its best validation: that validation's ``score`` and
    ``detail``, the (0-based) ``best_epoch``, and the number of ``epochs`` trained."""

    model: HearPredictor
    score: float
    detail: Any
    best_epoch: int
    epochs: int


def train_predictor(
    make_model: Callable[[], HearPredictor],
    train: ProbeArrays,
    validate: Callable[[HearPredictor], Validation],
    lr: float,
    config: TrainingConfig,
    maximize: bool,
    seed: int,
    device: str = "cpu",
) -> TrainedPredictor:
    """Train with early stopping; return the model at its best validation, in eval mode.
    Nothing here draws from torch's global generator, so several can run in threads."""
    with seeded(seed, device):
        model = make_model()
    model = model.to(device)
    model.use_generator(torch.Generator(device=device).manual_seed(seed))
    optimizer = make_optimizer("adam", model.parameters(), lr, weight_decay=0.0)
    order = fixed_order(train, seed)
    rng = np.random.default_rng(seed)
    stopper = _EarlyStopping(config.patience, maximize)
    best: TrainedPredictor | None = None
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(config.max_epochs):
        raise_if_cancelled()
        epoch_order = rng.permutation(len(train)) if config.shuffle else order
        _train_epoch(model, optimizer, train, epoch_order, config.batch_size, device)
        final_epoch = epoch == config.max_epochs - 1
        if (epoch + 1) % config.eval_every and not (final_epoch and best is None):
            continue
        model.eval()
        result = validate(model)
        if stopper.improves(result.score) or best is None:
            best = TrainedPredictor(model, result.score, result.detail, epoch, epoch + 1)
            best_state = copy.deepcopy(model.state_dict())
        if stopper.should_stop(result.score, config.stop_on_non_finite):
            break
    assert best is not None
    model.load_state_dict(best_state)
    model.eval()
    best.epochs = epoch + 1
    return best


class _EarlyStopping:
    """Strict improvement over the best so far; non-finite scores never improve."""

    def __init__(self, patience: int, maximize: bool):
        self.patience, self.maximize = patience, maximize
        self.best = -math.inf if maximize else math.inf
        self.stale = 0

    def improves(self, score: float) -> bool:
        better = math.isfinite(score) and (
            score > self.best if self.maximize else score < self.best
        )
        if better:
            self.best, self.stale = score, 0
        else:
            self.stale += 1
        return better

    def should_stop(self, score: float, stop_on_non_finite: bool) -> bool:
        return self.stale >= self.patience or (stop_on_non_finite and not math.isfinite(score))


def _train_epoch(
    model: HearPredictor,
    optimizer: torch.optim.Optimizer,
    train: ProbeArrays,
    order: np.ndarray,
    batch_size: int,
    device: str,
) -> None:
    model.train()
    for batch in batches(order, batch_size):
        features = torch.from_numpy(train.features[batch]).to(device)  # widened by the combiner
        targets = torch.from_numpy(train.targets[batch]).to(device)
        optimizer.zero_grad()
        loss = model.loss(model(features), targets)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def predict_logits(
    model: HearPredictor, features: np.ndarray, batch_size: int, device: str
) -> torch.Tensor:
    """Logits for every row, in order (eval mode)."""
    model.eval()
    outputs = [
        model(torch.from_numpy(features[start : start + batch_size]).to(device)).cpu()
        for start in range(0, len(features), batch_size)
    ]
    return torch.cat(outputs) if outputs else torch.zeros((0, model.mlp[-1].out_features))


def training_seed(seed: int, *indices: int) -> int:
    """A well-mixed seed for one (seed, fold, grid point) training."""
    return int(np.random.SeedSequence([seed, *indices]).generate_state(1)[0])
