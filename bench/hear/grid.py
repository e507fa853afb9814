"""hear-eval-kit 2021.1.3's predictor grid and its random subset.

``PARAM_GRID`` varies hidden_layers {1, 2}, initialization {xavier_uniform, xavier_normal} and
lr {3.2e-3, 1e-3, 3.2e-4, 1e-4} (hidden_dim 1024, dropout 0.1, batch 1024 and the schedule
fixed): 16 points, listed in scikit-learn ParameterGrid order (keys sorted, the last one
varying fastest), shuffled by ``random.shuffle`` after ``seed_everything(42)``; the first 8
are trained. Task-specific overrides (DCASE, MAESTRO) change single-valued keys only, so
every task samples the same 8 points.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

HEAR_LEARNING_RATES = (3.2e-3, 1e-3, 3.2e-4, 1e-4)
HIDDEN_LAYER_CHOICES = (1, 2)
INITIALIZATIONS = ("xavier_uniform", "xavier_normal")
GRID_POINTS = 8
GRID_SEED = 42

Initialization = Literal["xavier_uniform", "xavier_normal"]


@dataclass(frozen=True)
class GridPoint:
    hidden_layers: int
    initialization: Initialization
    lr: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "hidden_layers": self.hidden_layers,
            "initialization": self.initialization,
            "lr": self.lr,
        }


def full_grid(learning_rates: Sequence[float] = HEAR_LEARNING_RATES) -> tuple[GridPoint, ...]:
    """The 16 points in the order scikit-learn's ParameterGrid yields them."""
    return tuple(
        GridPoint(layers, init, lr)
        for layers in HIDDEN_LAYER_CHOICES
        for init in INITIALIZATIONS
        for lr in learning_rates
    )


def sample_grid(
    grid: Sequence[GridPoint], points: int = GRID_POINTS, seed: int = GRID_SEED
) -> tuple[GridPoint, ...]:
    """The reference's ``random.seed(42); random.shuffle(grid); grid[:8]``."""
    shuffled = list(grid)
    random.Random(seed).shuffle(shuffled)
    return tuple(shuffled[:points])
