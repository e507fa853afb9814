"""The learning-rate sweep shared by SUPERB-style protocols.

Train one probe per (learning rate, seed, fold); select the learning rate with the best
mean dev score; score the selected probes; report each metric as mean and spread over
seeds, every seed's value being its mean over folds.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bench.parallel import map_parallel
from bench.probe import TrainResult, is_better
from bench.progress import progress_bar
from bench.protocols.base import ProbeOutcome, ProbeSettings, Stat

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
    """Score each trial (``score(model, fold)``), average over folds per seed, Stat over seeds."""
    by_seed: dict[int, list[SplitScores]] = {}
    for trial in trials:
        trial.model.eval()
        with torch.no_grad():
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
            }
            for t in trials
        ],
        layer_weights=torch.tensor(weights).mean(0).tolist() if weights else None,
    )
