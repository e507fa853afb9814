"""Train the probes of a sweep as stacked models.

A sweep trains one head architecture on one set of features once per (learning rate,
seed): P small models whose steps, trained one by one, cost mostly per-call overhead on a
CPU and kernel launches on a GPU. Stacked, they are one model: every parameter gets a
leading probe dimension (P ``Linear(D, H)`` layers become one ``[P, H, D]`` weight), one
batched forward and backward serves all P probes per step, and one optimizer holds a
learning rate per probe. What is trained does not change: each probe starts from the
parameters its own head was built with (under ``bench.probe.seeded``), draws its own
batches from its own generator, and is clipped, updated, evaluated, stopped and restored on
its own; the losses of the probes are summed, so no gradient crosses from one to another.

How a protocol uses it::

    heads = [build_head(spec) for spec in specs]        # one head per probe, as before
    results = train_stack(heads, specs, step_loss, evaluate, StackSchedule.of(settings))
    # heads[i] now holds probe i's dev-best parameters; results[i] is its TrainResult

- ``step_loss(group, active)`` returns the loss of every active probe, ``[len(active)]``.
  ``group`` is called like the head, with inputs stacked per probe (``[P, ...]``, a cache
  source: each probe gathers its own batch with ``active.generators[j]``) or, with
  ``shared=True``, one input for all probes (a stream source: one encoder forward feeds
  every probe). Its outputs have the probe dimension first.
- ``evaluate(group, active)`` returns each active probe's dev score (a float, or an
  ``Evaluation`` with a detail kept beside the best state).
- A head class with a stacked form registers it (``register_stacked``; ``bench.heads``,
  ``bench.hear.predictor``). A head without one (a BLSTM, say) trains as a ``Lockstep``
  group: its P modules run one after another on every step, each with its own optimizer
  (``bench.probe.make_optimizer``) and clipping, so the loop, the batches and the
  callbacks stay the same.

Stacked forms follow one convention, which lets ``StackedModule`` stack, slice, drop and
restore probes generically: every parameter and buffer has the probe dimension first and
the name it has in the head's ``state_dict``.

Numbers: a stacked step runs each operation once for all probes (batched matrix products,
one softmax, one loss over every probe's rows, per-probe means and clipping norms from
row-wise reductions), so P probes' step costs a few times one probe's, not P times, on a
CPU, where a probe-sized step is mostly call overhead, and on a GPU, where it is kernel
launches. A probe's optimizer step is exact: ``StackedOptimizer`` hands each probe's
slices to torch's fused Adam (AdamW, SGD) as parameters of their own. The rest rounds as
the batched kernels round, so a stacked probe equals the same probe trained alone to
floating-point tolerance, not bit for bit (``tests/test_stacking.py`` trains both ways).

Groups are deterministic: a sweep's probes are dealt to stacks of at most ``STACK_SIZE``
probes and ``STACK_PARAMETERS`` parameters, at least ``CPU_GROUPS`` of them on a CPU (a
probe that would be alone, or is bigger, trains as its own module in lock-step), by a
rule that depends on the sweep and the device alone; each group trains single-threaded,
and ``workers`` only says how many groups train at once, so the results are
bit-identical for any number of workers, cores or machine load (the tests check it).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.parallel import map_parallel, raise_if_cancelled, single_threaded_torch
from bench.probe import TrainResult, is_better, make_optimizer


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a sweep: its learning rate and its seed (which fixes its batches)."""

    lr: float
    seed: int
    #: shown in progress (e.g. "lr 0.001 seed 1")
    label: str = ""


@dataclass(frozen=True)
class Evaluation:
    """A dev evaluation: ``score`` drives stopping and selection; ``detail`` (e.g. the
    chosen post-processing) is kept with the probe's best state."""

    score: float
    detail: Any = None


@dataclass(frozen=True)
class StackSchedule:
    """Steps, evaluation cadence, stopping and optimizer of every probe of a stack.

    always_evaluate_last_step: evaluate after ``max_steps`` even off the cadence (SUPERB
        probes); False evaluates there only when no evaluation has happened yet (HEAR).
    early_stopping: False trains every probe for ``max_steps`` (``patience`` unused) and
        keeps its dev-best state: s3prl's fixed-length runs (``FixedLength``).
    """

    max_steps: int
    eval_every: int
    patience: int
    early_stopping: bool = True
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    higher_is_better: bool = True
    always_evaluate_last_step: bool = True

    @classmethod
    def of(cls, settings: Any, **overrides: Any) -> StackSchedule:
        """From ``ProbeSettings`` (max_steps, eval_every, patience, optimizer, weight_decay)."""
        fields = {
            "max_steps": settings.max_steps,
            "eval_every": settings.eval_every,
            "patience": settings.patience,
            "early_stopping": settings.early_stopping,
            "optimizer": settings.optimizer,
            "weight_decay": settings.weight_decay,
        }
        return cls(**{**fields, **overrides})

    def evaluates_at(self, step: int, evaluated_before: bool) -> bool:
        if step % self.eval_every == 0:
            return True
        last = step == self.max_steps
        return last and (self.always_evaluate_last_step or not evaluated_before)


class StoppingRule(Protocol):
    """Early stopping of one probe, fed its evaluations in order."""

    def accept(self, score: float) -> bool:
        """Whether this evaluation becomes the probe's best (its state is kept)."""

    def stop(self, score: float) -> bool:
        """Whether the probe stops training after this evaluation."""


class PatienceStopping:
    """``bench.probe.train_probe``'s rule: best on strict improvement (NaN never improves),
    stop after ``patience`` evaluations without one."""

    def __init__(self, patience: int, higher_is_better: bool = True):
        self.patience, self.higher_is_better = patience, higher_is_better
        self.best, self.stale = math.nan, 0

    def accept(self, score: float) -> bool:
        if is_better(score, self.best, self.higher_is_better):
            self.best, self.stale = score, 0
            return True
        self.stale += 1
        return False

    def stop(self, score: float) -> bool:
        return self.stale >= self.patience


class FixedLength(PatienceStopping):
    """Dev-best selection without stopping: every probe trains for the schedule's
    ``max_steps`` (s3prl's runner; the best dev evaluation, strict ``>``, is kept)."""

    def __init__(self, higher_is_better: bool = True):
        super().__init__(patience=0, higher_is_better=higher_is_better)

    def stop(self, score: float) -> bool:
        return False


def default_stopping(schedule: StackSchedule) -> StoppingRule:
    """The schedule's rule: ``PatienceStopping``, or ``FixedLength`` without early stopping."""
    if schedule.early_stopping:
        return PatienceStopping(schedule.patience, schedule.higher_is_better)
    return FixedLength(schedule.higher_is_better)


@dataclass
class ActiveProbes:
    """The probes still training, in the group's order: ``indices`` into the ``specs``
    given to ``train_stack`` (for per-probe state a protocol keeps, such as its fold's
    arrays) and each one's batch ``generators``, seeded with its spec's seed."""

    indices: list[int]
    specs: list[ProbeSpec]
    generators: list[torch.Generator]
    step: int = 0

    def __len__(self) -> int:
        return len(self.indices)


StepLoss = Callable[[nn.Module, ActiveProbes], Tensor]
Evaluate = Callable[[nn.Module, ActiveProbes], Sequence["float | Evaluation"]]


# -- groups: the stacked form, or the lock-step fallback --------------------------------------


class ProbeGroup(nn.Module):
    """What ``train_stack`` trains: P probes behind one module."""

    def probe_state(self, position: int) -> dict[str, Tensor]:  # pragma: no cover
        """A copy of the state of the probe at ``position``, as its head's ``state_dict``."""
        raise NotImplementedError

    def keep(self, positions: Sequence[int]) -> None:  # pragma: no cover
        """Keep only these probes (e.g. drop the ones that stopped)."""
        raise NotImplementedError

    def make_optimizer(
        self, lrs: Sequence[float], name: str, weight_decay: float
    ) -> GroupOptimizer:  # pragma: no cover
        raise NotImplementedError


class StackedModule(ProbeGroup):
    """Base class of stacked forms (see the module docstring for the convention).

    A subclass implements ``empty(head, probes)``: an instance for ``probes`` copies of
    ``head``'s architecture (values are filled from the heads, so it draws no random numbers),
    and ``forward``.
    """

    @classmethod
    def empty(cls, head: nn.Module, probes: int) -> StackedModule:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def from_heads(cls, heads: Sequence[nn.Module]) -> StackedModule:
        stacked = cls.empty(heads[0], len(heads))
        device = next(iter(heads[0].state_dict().values())).device
        stacked.to(device)
        states = [head.state_dict() for head in heads]
        target = stacked.state_dict()
        for name in states[0]:
            if name not in target:
                raise ValueError(f"{cls.__name__} has no '{name}' for {type(heads[0]).__name__}")
        for name, tensor in target.items():
            try:
                values = [state[name] for state in states]
            except KeyError:
                raise ValueError(f"{type(heads[0]).__name__} has no '{name}'") from None
            tensor.copy_(torch.stack(values))
        return stacked

    def probe_state(self, position: int) -> dict[str, Tensor]:
        return {name: value[position].clone() for name, value in self.state_dict().items()}

    def keep(self, positions: Sequence[int]) -> None:
        index = torch.tensor(list(positions), dtype=torch.long)
        for module in self.modules():
            # New parameters rather than new .data: autograd keeps a leaf's shape.
            for name, param in module._parameters.items():
                if param is not None:
                    module._parameters[name] = nn.Parameter(param.detach()[index.to(param.device)])
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = buffer[index.to(buffer.device)]
            if hasattr(module, "probes"):
                module.probes = len(index)

    def make_optimizer(
        self, lrs: Sequence[float], name: str, weight_decay: float
    ) -> StackedOptimizer:
        return StackedOptimizer(self, lrs, name, weight_decay)


class Lockstep(ProbeGroup):
    """Heads without a stacked form: every step runs each probe's own module on its slice
    of the inputs (or, ``shared=True``, on the shared inputs) and stacks the outputs."""

    def __init__(self, heads: Sequence[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, *inputs: Any, shared: bool = False) -> Tensor:
        if shared:
            return torch.stack([head(*inputs) for head in self.heads])
        return torch.stack([head(*(x[i] for x in inputs)) for i, head in enumerate(self.heads)])

    def probe_state(self, position: int) -> dict[str, Tensor]:
        return copy.deepcopy(self.heads[position].state_dict())

    def keep(self, positions: Sequence[int]) -> None:
        self.heads = nn.ModuleList([self.heads[p] for p in positions])

    def make_optimizer(
        self, lrs: Sequence[float], name: str, weight_decay: float
    ) -> LockstepOptimizer:
        return LockstepOptimizer(list(self.heads), lrs, name, weight_decay)


_STACKED_FORMS: dict[type[nn.Module], type[StackedModule]] = {}


def register_stacked(head_type: type[nn.Module]) -> Callable[[type[StackedModule]], Any]:
    """Class decorator: ``@register_stacked(UtteranceHead) class StackedUtteranceHead``."""

    def register(stacked_type: type[StackedModule]) -> type[StackedModule]:
        _STACKED_FORMS[head_type] = stacked_type
        return stacked_type

    return register


def stacked_form(heads: Sequence[nn.Module]) -> type[StackedModule] | None:
    """The registered stacked form of these heads, if they are all of one class with one."""
    kinds = {type(head) for head in heads}
    return _STACKED_FORMS.get(kinds.pop()) if len(kinds) == 1 else None


def group_heads(heads: Sequence[nn.Module], stack: bool = True) -> ProbeGroup:
    """The stacked form of ``heads`` where their class has one (and ``stack``), else a
    ``Lockstep`` group."""
    form = stacked_form(heads) if stack else None
    return form.from_heads(heads) if form is not None else Lockstep(heads)


class StackedLinear(nn.Module):
    """P ``nn.Linear`` layers (``weight [P, out, in]``, ``bias [P, out]``):
    ``[P, ..., in] -> [P, ..., out]``.

    With few rows per probe (a pooled batch) it is one batched matrix product; with many
    (frames) one ``F.linear`` per probe, which is as fast there and avoids shapes where
    the batched CPU kernel is several times slower (a contraction over 4 classes, say).
    The choice depends on shapes only, and both give the same numbers.
    """

    #: rows per probe from which each probe gets its own matrix product
    LOOP_ROWS = 512
    #: with at most this many rows per probe and at least this many outputs, the batched
    #: product is computed as W @ x^T
    FEW_ROWS = 64
    WIDE_OUTPUTS = 64

    def __init__(self, probes: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(probes, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(probes, out_features)) if bias else None

    @classmethod
    def like(cls, linear: nn.Linear, probes: int) -> StackedLinear:
        return cls(probes, linear.in_features, linear.out_features, linear.bias is not None)

    def forward(self, inputs: Tensor) -> Tensor:
        probes, width = inputs.shape[0], inputs.shape[-1]
        rows = inputs.reshape(probes, -1, width)
        if rows.shape[1] >= self.LOOP_ROWS:
            # unbind, not indexing: the backward of P selects builds P full-size gradients
            biases = [None] * probes if self.bias is None else self.bias.unbind(0)
            parts = zip(rows.unbind(0), self.weight.unbind(0), biases, strict=True)
            out = torch.stack([F.linear(x, w, b) for x, w, b in parts])
        else:
            out = self._batched(rows)
        return out.reshape(*inputs.shape[:-1], out.shape[-1])

    def _batched(self, rows: Tensor) -> Tensor:
        if rows.shape[1] <= self.FEW_ROWS and self.weight.shape[1] >= self.WIDE_OUTPUTS:
            # W @ x^T, not x @ W^T: a wide weight's gradient then comes out in the weight's
            # own layout, where x @ W^T's would be copied into it on every step, a copy
            # that costs more than the product when the rows are few (a pooled batch);
            # with many, the transposed output would slow the layers after it
            columns = rows.transpose(1, 2)
            if self.bias is None:
                return torch.bmm(self.weight, columns).transpose(1, 2)
            return torch.baddbmm(self.bias.unsqueeze(2), self.weight, columns).transpose(1, 2)
        transposed = self.weight.transpose(1, 2)
        if self.bias is None:
            return torch.bmm(rows, transposed)
        return torch.baddbmm(self.bias.unsqueeze(1), rows, transposed)


def probe_means(values: Tensor, valid: Tensor | None = None) -> Tensor:
    """Each probe's mean of its ``values`` (probe dimension first), over its ``valid`` ones
    where a mask is given: a loss's ``reduction="mean"`` for every probe at once, from the
    loss computed with ``reduction="none"`` on all probes' rows."""
    rows = values.reshape(len(values), -1)
    if valid is None:
        return rows.mean(1)
    mask = valid.reshape(len(values), -1).to(rows.dtype)
    return (rows * mask).sum(1) / mask.sum(1)


# -- optimizers ---------------------------------------------------------------------------


class GroupOptimizer(Protocol):
    def zero_grad(self) -> None: ...

    def step(self, grad_clip: float | None) -> None: ...

    def keep(self, positions: Sequence[int]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StackedOptimizer:
    """Adam, AdamW or SGD on stacked parameters (probe dimension first), one learning rate
    per probe: each probe's slices of the stacked parameters are views, parameters of their
    own of one torch optimizer (``bench.probe.make_optimizer``, fused Adam), in the
    parameter group of the probe's learning rate. Each probe is then updated by the kernel,
    on the shapes, that update it alone, so its step is bit for bit its step alone.

    The views alias the module's parameters: after the module's ``keep`` (new parameter
    tensors), call ``keep`` here, which rebuilds the views and carries each kept probe's
    optimizer state over.
    """

    def __init__(self, module: nn.Module, lrs: Sequence[float], name: str, weight_decay: float):
        self.module, self.name, self.weight_decay = module, name.lower(), weight_decay
        self.lrs = [float(lr) for lr in lrs]
        self._build()

    def _build(self) -> None:
        self.params = list(self.module.parameters())
        self.views = [[param.detach()[p] for param in self.params] for p in range(len(self.lrs))]
        # one group per learning rate (probes of one lr share it): a group costs a kernel call
        by_lr: dict[float, list[Tensor]] = {}
        for views, lr in zip(self.views, self.lrs, strict=True):
            by_lr.setdefault(lr, []).extend(views)
        groups = [{"params": views, "lr": lr} for lr, views in by_lr.items()]
        self.optimizer = make_optimizer(self.name, groups, self.lrs[0], self.weight_decay)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def keep(self, positions: Sequence[int]) -> None:
        """Keep these probes' state; call after the module's ``keep``."""
        states = [[self.optimizer.state.get(view) for view in views] for views in self.views]
        self.lrs = [self.lrs[p] for p in positions]
        self._build()
        for views, position in zip(self.views, positions, strict=True):
            for view, state in zip(views, states[position], strict=True):
                if state:
                    self.optimizer.state[view] = state

    @torch.no_grad()
    def step(self, grad_clip: float | None) -> None:
        grads = [None if p.grad is None else p.grad.contiguous() for p in self.params]
        for probe, views in enumerate(self.views):
            for view, grad in zip(views, grads, strict=True):
                view.grad = None if grad is None else grad[probe]
        if grad_clip:
            clip_per_probe_([g for g in grads if g is not None], grad_clip)
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {"lrs": list(self.lrs), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s state; call after the module's ``keep``."""
        self.lrs = [float(lr) for lr in state["lrs"]]
        self._build()
        self.optimizer.load_state_dict(state["optimizer"])


def clip_per_probe_(grads: Sequence[Tensor], max_norm: float) -> Tensor:
    """``clip_grad_norm_`` of each probe's own parameters, on stacked gradients (probe
    dimension first): each probe's slices are scaled by ``min(1, max_norm / (norm + 1e-6))``,
    its norm being the 2-norm of all its slices together. Returns the per-probe norms."""
    probes = len(grads[0])
    per_tensor = [torch.linalg.vector_norm(grad.reshape(probes, -1), dim=1) for grad in grads]
    norms = torch.linalg.vector_norm(torch.stack(per_tensor), dim=0)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale.view((probes,) + (1,) * (grad.dim() - 1)))
    return norms


class LockstepOptimizer:
    """One ``bench.probe.make_optimizer`` optimizer per module (a ``Lockstep`` group)."""

    def __init__(
        self, heads: list[nn.Module], lrs: Sequence[float], name: str, weight_decay: float
    ):
        self.heads = heads
        self.optimizers = [
            make_optimizer(name, head.parameters(), lr, weight_decay)
            for head, lr in zip(heads, lrs, strict=True)
        ]

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def step(self, grad_clip: float | None) -> None:
        for head, optimizer in zip(self.heads, self.optimizers, strict=True):
            if grad_clip:
                nn.utils.clip_grad_norm_(head.parameters(), grad_clip)
            optimizer.step()

    def keep(self, positions: Sequence[int]) -> None:
        self.heads = [self.heads[p] for p in positions]
        self.optimizers = [self.optimizers[p] for p in positions]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)


# -- training -----------------------------------------------------------------------------


class StackProgress(Protocol):
    """What ``train_stack`` reports as it goes (``bench.progress.SweepProgress``)."""

    def advance(self, probe_steps: int) -> None: ...

    def evaluated(self, spec: ProbeSpec, score: float) -> None: ...

    def stopped(self, remaining_steps: int) -> None: ...


class Checkpoints(Protocol):
    """Where ``train_stack`` keeps each stack's state at its evaluations, to resume from
    after a kill (``bench.frames.checkpoint.SweepCheckpoints``)."""

    def save(self, group: str, state: dict[str, Any]) -> None: ...

    def load(self, group: str) -> dict[str, Any] | None: ...


@dataclass
class _ProbeRun:
    """One probe's bookkeeping inside a group."""

    index: int
    rule: StoppingRule
    result: TrainResult


def train_stack(
    heads: Sequence[nn.Module],
    specs: Sequence[ProbeSpec],
    step_loss: StepLoss,
    evaluate: Evaluate,
    schedule: StackSchedule,
    *,
    stopping: Callable[[], StoppingRule] | None = None,
    workers: int = 1,
    stack: bool = True,
    shared_input: bool = False,
    progress: StackProgress | None = None,
    checkpoints: Checkpoints | None = None,
) -> list[TrainResult]:
    """Train ``heads[i]`` with ``specs[i]`` for every i, step-synchronously, as stacked
    groups (lock-step groups for heads without a stacked form, or with ``stack=False``; see
    ``group_heads``); leave each head at its dev-best state and return its ``TrainResult``,
    in ``specs`` order.

    Heads of different architectures (e.g. HEAR's 1- and 2-layer grid points) go to
    different groups, and an architecture's probes to groups sized by ``_deal``; ``workers``
    groups train side by side, each on one thread, and the numbers do not depend on
    ``workers``. ``shared_input``: every step's input is one read for all probes (a
    streamed source, ``shared=True``), so each architecture's probes stay in one group and
    the source is read once per step.
    ``stopping`` builds each probe's rule (default: ``default_stopping(schedule)``).
    Callbacks must be thread-safe when ``workers`` > 1 (reading shared features is). With
    ``checkpoints``, each stack saves its whole state (parameters, optimizer, best states,
    stopping rules, generators, step) after every evaluation and starts from the saved state
    when there is one, so a killed sweep resumes at its last evaluation and ends as it would
    have.
    """
    if len(heads) != len(specs):
        raise ValueError(f"{len(heads)} heads for {len(specs)} probe specs")
    if not heads:
        return []
    rule = stopping or (lambda: default_stopping(schedule))
    groups = _deal(heads, max(1, workers), stack, shared_input)

    def train(group: _Group) -> list[TrainResult]:
        module = group_heads([heads[i] for i in group.indices], group.stacked)
        return _train_group(
            module, specs, group.indices, step_loss, evaluate, schedule, rule, progress, checkpoints
        )

    with single_threaded_torch():
        trained = map_parallel(train, groups, min(max(1, workers), len(groups)))
    results: list[TrainResult | None] = [None] * len(heads)
    stacks = [group.indices for group in groups]
    for indices, stack_results in zip(stacks, trained, strict=True):
        for index, result in zip(indices, stack_results, strict=True):
            heads[index].load_state_dict(result.state)
            results[index] = result
    return results  # type: ignore[return-value]


#: the most probes in one stacked group, and the most parameters (all its probes'
#: together). Past a few probes a stack's step is bound by its arithmetic, not by calls,
#: and smaller stacks keep the cores evenly busy; a probe that would be alone in its stack
#: trains as its own module, in lock-step.
STACK_SIZE = 8
STACK_PARAMETERS = 1_000_000
#: on a CPU an architecture's probes make at least this many groups, so that two cores
#: share even a small sweep (a frame task's 6 probes: two stacks of 3); on a GPU one stack
#: (its steps are bound by kernel launches). Groups depend on the sweep and the device
#: alone, not on ``workers``, and so do the numbers.
CPU_GROUPS = 2


@dataclass(frozen=True)
class _Group:
    """The heads (``indices``) trained together, stacked or in lock-step."""

    indices: list[int]
    stacked: bool
    parameters: int  # all its heads' together: the cost that orders the groups


def _deal(
    heads: Sequence[nn.Module], workers: int, stack: bool, shared_input: bool = False
) -> list[_Group]:
    """The groups of a sweep, the costliest first. Heads of one architecture (class and
    parameter shapes) with a stacked form are dealt round-robin to as few stacks as
    ``STACK_SIZE`` and ``STACK_PARAMETERS`` allow (at least ``CPU_GROUPS`` on a CPU); the
    others train in lock-step (whose probes do not interact), dealt to at most ``workers``
    groups. With ``shared_input`` each architecture is one group, stacked where it has a
    stacked form."""
    kinds: dict[Any, list[int]] = {}
    sizes: dict[Any, int] = {}
    on_cpu = all(p.device.type == "cpu" for head in heads for p in head.parameters())
    for index, head in enumerate(heads):
        shapes = tuple((name, tuple(value.shape)) for name, value in head.state_dict().items())
        kinds.setdefault((type(head), shapes), []).append(index)
        sizes[(type(head), shapes)] = sum(p.numel() for p in head.parameters())
    groups = []
    for kind, members in kinds.items():
        size = max(1, sizes[kind])
        if shared_input:  # one read per step feeds the whole architecture
            per_stack = len(members)
        else:
            per_stack = min(STACK_SIZE, STACK_PARAMETERS // size, len(members))
        stacked = stack and per_stack > 1 and stacked_form([heads[i] for i in members]) is not None
        if shared_input:
            count = 1
        elif stacked:
            least = min(CPU_GROUPS, len(members)) if on_cpu else 1
            count = max(math.ceil(len(members) / per_stack), least)
        else:
            count = min(workers, len(members))
        for start in range(count):
            indices = members[start::count]
            groups.append(_Group(indices, stacked and len(indices) > 1, size * len(indices)))
    groups.sort(key=lambda group: group.parameters, reverse=True)  # the last to start is short
    return groups


def _train_group(
    group: ProbeGroup,
    specs: Sequence[ProbeSpec],
    indices: list[int],
    step_loss: StepLoss,
    evaluate: Evaluate,
    schedule: StackSchedule,
    rule: Callable[[], StoppingRule],
    progress: StackProgress | None,
    checkpoints: Checkpoints | None = None,
) -> list[TrainResult]:
    optimizer = group.make_optimizer(
        [specs[i].lr for i in indices], schedule.optimizer, schedule.weight_decay
    )
    runs = [
        _ProbeRun(
            index,
            rule(),
            TrainResult(
                best_score=math.nan, best_step=0, steps=0, state=group.probe_state(position)
            ),
        )
        for position, index in enumerate(indices)
    ]
    active = ActiveProbes(
        indices=list(indices),
        specs=[specs[i] for i in indices],
        generators=[torch.Generator().manual_seed(specs[i].seed) for i in indices],
    )
    live = list(runs)
    evaluated_before = False
    start = 1
    name = "probes-" + "-".join(map(str, indices))
    saved = checkpoints.load(name) if checkpoints is not None else None
    if saved is not None:
        live, active = _restore(saved, group, optimizer, runs, active)
        start, evaluated_before = int(saved["step"]) + 1, bool(saved["evaluated_before"])
        if progress:
            progress.advance(sum(run.result.steps for run in live))
            for run in runs:
                if run not in live:
                    progress.stopped(schedule.max_steps - run.result.steps)
    for step in range(start, schedule.max_steps + 1 if live else start):
        raise_if_cancelled()
        active.step = step
        group.train()
        losses = step_loss(group, active)
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step(schedule.grad_clip)
        for run in live:
            run.result.steps = step
        if progress:
            progress.advance(len(live))
        if not schedule.evaluates_at(step, evaluated_before):
            continue
        evaluated_before = True
        group.eval()
        with torch.no_grad():
            evaluations = [_as_evaluation(e) for e in evaluate(group, active)]
        if len(evaluations) != len(live):
            raise ValueError(f"evaluate returned {len(evaluations)} scores for {len(live)} probes")
        keep = []
        for position, (run, evaluation) in enumerate(zip(live, evaluations, strict=True)):
            score = float(evaluation.score)
            run.result.curve.append((step, score))
            if progress:
                progress.evaluated(specs[run.index], score)
            if run.rule.accept(score):
                run.result.best_score, run.result.best_step = score, step
                run.result.state = group.probe_state(position)
                run.result.detail = evaluation.detail
            if not run.rule.stop(score):
                keep.append(position)
            elif progress:
                progress.stopped(schedule.max_steps - step)
        if len(keep) < len(live):
            live = [live[p] for p in keep]
            if keep:
                group.keep(keep)
                optimizer.keep(keep)
                active = ActiveProbes(
                    indices=[active.indices[p] for p in keep],
                    specs=[active.specs[p] for p in keep],
                    generators=[active.generators[p] for p in keep],
                    step=step,
                )
        if checkpoints is not None:
            checkpoints.save(name, _snapshot(step, group, optimizer, runs, live, active))
        if not live:
            break
    return [run.result for run in runs]


def _snapshot(
    step: int,
    group: ProbeGroup,
    optimizer: GroupOptimizer,
    runs: list[_ProbeRun],
    live: list[_ProbeRun],
    active: ActiveProbes,
) -> dict[str, Any]:
    """A stack's whole state after the evaluation of ``step`` (tensors and plain values)."""
    return {
        "step": step,
        "evaluated_before": True,
        "live": [runs.index(run) for run in live],
        "group": group.state_dict() if live else {},
        "optimizer": optimizer.state_dict() if live else {},
        "generators": [generator.get_state() for generator in active.generators] if live else [],
        "runs": [
            {
                "best_score": run.result.best_score,
                "best_step": run.result.best_step,
                "steps": run.result.steps,
                "state": run.result.state,
                "curve": [list(point) for point in run.result.curve],
                "rule": dict(vars(run.rule)),
            }
            for run in runs
        ],
    }


def _restore(
    saved: dict[str, Any],
    group: ProbeGroup,
    optimizer: GroupOptimizer,
    runs: list[_ProbeRun],
    active: ActiveProbes,
) -> tuple[list[_ProbeRun], ActiveProbes]:
    """Put a fresh stack back into ``_snapshot``'s state; the live runs and active probes."""
    for run, state in zip(runs, saved["runs"], strict=True):
        result = run.result
        result.best_score, result.best_step = float(state["best_score"]), int(state["best_step"])
        result.steps, result.state = int(state["steps"]), state["state"]
        result.curve = [(int(step), float(score)) for step, score in state["curve"]]
        vars(run.rule).update(state["rule"])
    positions = [int(p) for p in saved["live"]]
    if not positions:
        return [], active
    if len(positions) < len(runs):
        group.keep(positions)
        optimizer.keep(positions)
    group.load_state_dict(saved["group"])
    optimizer.load_state_dict(saved["optimizer"])
    generators = [active.generators[p] for p in positions]
    for generator, state in zip(generators, saved["generators"], strict=True):
        generator.set_state(state)
    restored = ActiveProbes(
        indices=[active.indices[p] for p in positions],
        specs=[active.specs[p] for p in positions],
        generators=generators,
        step=int(saved["step"]),
    )
    return [runs[p] for p in positions], restored


def _as_evaluation(value: float | Evaluation) -> Evaluation:
    return value if isinstance(value, Evaluation) else Evaluation(float(value))
