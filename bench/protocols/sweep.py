"""The learning-rate sweep shared by SUPERB-style protocols.

Train one probe per (learning rate, seed, fold); select the learning rate with the best
mean dev score; score the selected probes; report each metric as mean and spread over
seeds, every seed's value being its mean over folds.

Two ways to train the grid, with the same trials as the result: ``run_stacked_sweep``
trains each fold's probes as stacked models (``bench.stacking``; heads without a stacked
form train in lock-step groups), and ``run_sweep`` trains one probe at a time with
``bench.probe.train_probe``, ``settings.workers`` in threads (the x-vector of
``bench.protocols.verification``).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import torch
from torch import Tensor, nn

from bench.parallel import map_parallel, single_threaded_torch
from bench.probe import TrainResult, is_better
from bench.progress import SweepProgress, progress_bar
from bench.protocols.base import ProbeOutcome, ProbeSettings, Stat
from bench.stacking import (
    ActiveProbes,
    Checkpoints,
    ProbeSpec,
    StackSchedule,
    StoppingRule,
    train_stack,
)

#: split -> metric -> value
SplitScores = dict[str, dict[str, float]]


@dataclass
class Trial:
    lr: float
    seed: int
    fold: int
    model: nn.Module
    result: TrainResult


def run_sweep(
    train_one: Callable[[float, int, int], tuple[nn.Module, TrainResult]],
    settings: ProbeSettings,
    num_folds: int,
    desc: str,
) -> list[Trial]:
    """Every (lr, seed, fold) of the grid, trained by ``train_one(lr, seed, fold)``,
    ``settings.workers`` at a time (see ``bench.parallel``)."""
    grid = list(itertools.product(settings.lr_grid, settings.seeds, range(num_folds)))
    with progress_bar(total=len(grid), desc=desc, enabled=settings.progress) as bar:
        trained = map_parallel(
            lambda point: train_one(*point), grid, settings.workers, lambda: bar.update(1)
        )
    return [
        Trial(lr, seed, fold, model, result)
        for (lr, seed, fold), (model, result) in zip(grid, trained, strict=True)
    ]


class StackedSweep(Protocol):
    """What a protocol gives ``run_stacked_sweep``, per fold: a head for a seed (built under
    ``bench.probe.seeded(seed)``) and the two callbacks of ``bench.stacking.train_stack``."""

    def build_head(self, seed: int, fold: int) -> nn.Module: ...

    def step_loss(self, fold: int, group: nn.Module, active: ActiveProbes) -> Tensor: ...

    def evaluate(self, fold: int, group: nn.Module, active: ActiveProbes) -> Sequence[float]: ...


def run_stacked_sweep(
    sweep: StackedSweep,
    settings: ProbeSettings,
    num_folds: int,
    desc: str,
    metric: str = "dev",
    higher_is_better: bool = True,
    *,
    grad_clip: float | None = 1.0,
    stopping: Callable[[], StoppingRule] | None = None,
    shared_input: bool = False,
    checkpoints: Checkpoints | None = None,
) -> list[Trial]:
    """Every (lr, seed, fold) of the grid: each fold's probes trained together by
    ``bench.stacking.train_stack`` (``settings.workers`` groups side by side; its
    ``stopping`` rule, ``shared_input`` and ``checkpoints``). Trials come in
    ``run_sweep``'s order."""
    points = list(itertools.product(settings.lr_grid, settings.seeds))
    schedule = StackSchedule.of(settings, higher_is_better=higher_is_better, grad_clip=grad_clip)
    trained: dict[tuple[float, int, int], Trial] = {}
    with SweepProgress(
        desc,
        probes=len(points) * num_folds,
        total_steps=len(points) * num_folds * settings.max_steps,
        enabled=settings.progress,
        higher_is_better=higher_is_better,
        metric=metric,
    ) as progress:
        for fold in range(num_folds):
            fold_label = f" fold {fold}" if num_folds > 1 else ""
            specs = [
                ProbeSpec(lr, seed, f"lr {lr:g} seed {seed}{fold_label}") for lr, seed in points
            ]
            heads = [sweep.build_head(seed, fold) for _, seed in points]
            results = train_stack(
                heads,
                specs,
                partial(sweep.step_loss, fold),
                partial(sweep.evaluate, fold),
                schedule,
                stopping=stopping,
                workers=settings.workers,
                shared_input=shared_input,
                stack=settings.stack,
                progress=progress,
                checkpoints=None if checkpoints is None else _FoldCheckpoints(checkpoints, fold),
            )
            for (lr, seed), head, result in zip(points, heads, results, strict=True):
                trained[(lr, seed, fold)] = Trial(lr, seed, fold, head, result)
    grid = itertools.product(settings.lr_grid, settings.seeds, range(num_folds))
    return [trained[point] for point in grid]


@dataclass
class _FoldCheckpoints:
    """One fold's stacks in a sweep's checkpoints (stack names are unique within a fold)."""

    checkpoints: Checkpoints
    fold: int

    def save(self, group: str, state: dict) -> None:
        self.checkpoints.save(f"fold{self.fold}-{group}", state)

    def load(self, group: str) -> dict | None:
        return self.checkpoints.load(f"fold{self.fold}-{group}")


def select_lr(trials: Sequence[Trial], higher_is_better: bool = True) -> float:
    """The learning rate with the best dev score averaged over seeds and folds (first on ties)."""
    best_lr, best_score = trials[0].lr, float("nan")
    for lr in dict.fromkeys(t.lr for t in trials):
        score = statistics.fmean(t.result.best_score for t in trials if t.lr == lr)
        if is_better(score, best_score, higher_is_better):
            best_lr, best_score = lr, score
    return best_lr


def score_trials(
    trials: Sequence[Trial], score: Callable[[nn.Module, int], SplitScores]
) -> dict[str, dict[str, Stat]]:
    """Score each trial (``score(model, fold)``), average over folds per seed, Stat over seeds.

    Scoring runs on one thread, as training does, so scores do not depend on the core count."""
    by_seed: dict[int, list[SplitScores]] = {}
    for trial in trials:
        trial.model.eval()
        with torch.no_grad(), single_threaded_torch():
            by_seed.setdefault(trial.seed, []).append(score(trial.model, trial.fold))
    per_seed: dict[str, dict[str, list[float]]] = {}
    for fold_scores in by_seed.values():
        for split in fold_scores[0]:
            for metric in fold_scores[0][split]:
                value = statistics.fmean(scores[split][metric] for scores in fold_scores)
                per_seed.setdefault(split, {}).setdefault(metric, []).append(value)
    return {
        split: {metric: Stat.of(values) for metric, values in metrics.items()}
        for split, metrics in per_seed.items()
    }


def sweep_outcome(
    trials: Sequence[Trial],
    score: Callable[[nn.Module, int], SplitScores],
    selection_metric: str,
    fold_names: Sequence[str],
    higher_is_better: bool = True,
) -> ProbeOutcome:
    """Select, score and summarise a finished sweep."""
    lr = select_lr(trials, higher_is_better)
    selected = [t for t in trials if t.lr == lr]
    weights = [t.model.featurizer.learned_weights() for t in selected]
    weights = [w for w in weights if w is not None]
    return ProbeOutcome(
        metrics=score_trials(selected, score),
        selected={"lr": lr, "selection_metric": f"dev_{selection_metric}"},
        trials=[
            {
                "lr": t.lr,
                "seed": t.seed,
                "fold": fold_names[t.fold],
                f"dev_{selection_metric}": t.result.best_score,
                "best_step": t.result.best_step,
                "steps": t.result.steps,
                "curve": [[step, value] for step, value in t.result.curve],
            }
            for t in trials
        ],
        layer_weights=torch.tensor(weights).mean(0).tolist() if weights else None,
    )
