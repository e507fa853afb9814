"""The probe training loop shared by the protocols: train, evaluate on dev, keep the best.

Training stops at ``max_steps`` or, with ``early_stopping`` (bench's ``fast`` profile), when
the dev score has not improved for ``patience`` evaluations; the returned state is the
dev-best one, and test is scored with it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bench.parallel import raise_if_cancelled
from bench.protocols.base import ProbeSettings


@dataclass
class TrainResult:
    best_score: float
    best_step: int
    steps: int
    state: dict[str, Tensor]
    #: (step, dev score) of every evaluation
    curve: list[tuple[int, float]] = field(default_factory=list)
    #: what the best evaluation kept beside its score (``bench.stacking.Evaluation``)
    detail: Any = None


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam/AdamW use the fused kernel: on a small CPU the per-tensor implementation runs
    many tiny multi-threaded ops and is up to 10x slower for probe-sized heads."""
    name = name.lower()
    if name in ("adam", "adamw"):
        optimizer = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return optimizer(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer '{name}'; choose from adam, adamw, sgd")


def is_better(score: float, best: float, higher_is_better: bool) -> bool:
    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score > best if higher_is_better else score < best


def train_probe(
    model: nn.Module,
    batch_loss: Callable[[nn.Module, torch.Generator], Tensor],
    evaluate: Callable[[nn.Module], float],
    settings: ProbeSettings,
    lr: float,
    seed: int,
    higher_is_better: bool = True,
    grad_clip: float | None = 1.0,
) -> TrainResult:
    """Train ``model`` with ``batch_loss`` (it draws its batch from the generator) and keep the
    state with the best ``evaluate`` score, evaluated every ``settings.eval_every`` steps."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(settings.optimizer, model.parameters(), lr, settings.weight_decay)
    best = TrainResult(
        best_score=math.nan, best_step=0, steps=0, state=copy.deepcopy(model.state_dict())
    )
    evaluations_since_best = 0
    for step in range(1, settings.max_steps + 1):
        raise_if_cancelled()
        model.train()
        loss = batch_loss(model, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        best.steps = step
        if step % settings.eval_every and step != settings.max_steps:
            continue
        score = _evaluate(model, evaluate)
        best.curve.append((step, score))
        if is_better(score, best.best_score, higher_is_better):
            best.best_score, best.best_step = score, step
            best.state = copy.deepcopy(model.state_dict())
            evaluations_since_best = 0
        else:
            evaluations_since_best += 1
            if settings.early_stopping and evaluations_since_best >= settings.patience:
                break
    model.load_state_dict(best.state)
    return best


def _evaluate(model: nn.Module, evaluate: Callable[[nn.Module], float]) -> float:
    model.eval()
    with torch.no_grad():
        return float(evaluate(model))


_GLOBAL_RNG = threading.Lock()


@contextlib.contextmanager
def seeded(seed: int, device: str = "cpu") -> Iterator[None]:
    """Build a probe's parameters from ``seed``: torch's global generator is seeded for the
    block and restored after, under a lock, so probes built in parallel threads get the same
    parameters as when built one after another."""
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with _GLOBAL_RNG, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
