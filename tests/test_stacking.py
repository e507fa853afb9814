"""Probes trained as one stacked model (bench.stacking) are the probes trained one by one,
to floating-point tolerance: same optimizer arithmetic, clipping, batches, stopping and
best state; and a sweep's numbers do not depend on how many stacks run at once."""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import stacking
from bench.featurizer import Gathered
from bench.heads import FrameHead, UtteranceHead
from bench.hear import predictor
from bench.hear.grid import GridPoint
from bench.parallel import single_threaded_torch
from bench.probe import make_optimizer, seeded, train_probe
from bench.progress import SweepProgress
from bench.protocols.base import ProbeSettings
from bench.stacking import (
    Lockstep,
    ProbeSpec,
    StackedModule,
    StackedOptimizer,
    StackSchedule,
    clip_per_probe_,
    group_heads,
    train_stack,
)

SETTINGS = ProbeSettings(
    lr_grid=(1e-3, 1e-2),
    seeds=(0, 1),
    batch_size=16,
    max_steps=200,
    eval_every=20,
    patience=3,
    progress=False,
)
SPECS = [ProbeSpec(lr, seed) for lr in SETTINGS.lr_grid for seed in SETTINGS.seeds]


class Problem:
    """Pooled features of 4 layers x 16 dims; layer 1 carries one of 5 classes."""

    def __init__(self, rows: int = 300, layers: int = 4, dim: int = 16, classes: int = 5):
        generator = torch.Generator().manual_seed(0)
        self.layers, self.dim, self.classes = layers, dim, classes
        self.train, self.labels = self._split(rows, generator)
        self.dev, self.dev_labels = self._split(100, generator)
        self.weights = torch.full((rows,), 1.0 / rows, dtype=torch.float64)

    def _split(self, rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(rows, self.layers, self.dim, generator=generator)
        y = torch.randint(self.classes, (rows,), generator=generator)
        x[:, 1, : self.classes] += 2 * F.one_hot(y, self.classes).float()
        return x, y

    def head(self, spec: ProbeSpec) -> UtteranceHead:
        with seeded(spec.seed):
            return UtteranceHead(self.layers, self.dim, self.classes, projector_dim=32)

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        return torch.multinomial(self.weights, SETTINGS.batch_size, True, generator=generator)

    def accuracy(self, logits: torch.Tensor) -> float:
        return 100.0 * float((logits.argmax(-1) == self.dev_labels).float().mean())

    # one probe at a time (bench.probe.train_probe)
    def batch_loss(self, model: nn.Module, generator: torch.Generator) -> torch.Tensor:
        index = self.draw(generator)
        return F.cross_entropy(model(self.train[index]), self.labels[index])

    # a stack (bench.stacking.train_stack)
    def step_loss(self, group: nn.Module, active) -> torch.Tensor:
        index = torch.stack([self.draw(g) for g in active.generators])
        logits, labels = group(self.train[index]), self.labels[index]
        return torch.stack([F.cross_entropy(x, y) for x, y in zip(logits, labels, strict=True)])

    def evaluate(self, group: nn.Module, active) -> list[float]:
        return [self.accuracy(logits) for logits in group(self.dev, shared=True)]

    def train_stacked(self, specs=SPECS, **options) -> tuple[list[nn.Module], list]:
        heads = [self.head(spec) for spec in specs]
        schedule = StackSchedule.of(SETTINGS)
        results = train_stack(heads, specs, self.step_loss, self.evaluate, schedule, **options)
        return heads, results


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([value.flatten().float() for value in module.state_dict().values()])


def test_a_stacked_sweep_equals_probes_trained_one_by_one() -> None:
    problem = Problem()
    with single_threaded_torch():
        heads, results = problem.train_stacked()
        for spec, head, result in zip(SPECS, heads, results, strict=True):
            alone = problem.head(spec)
            evaluate = lambda model: problem.accuracy(model(problem.dev))  # noqa: E731
            reference = train_probe(
                alone, problem.batch_loss, evaluate, SETTINGS, spec.lr, spec.seed
            )
            assert (result.best_step, result.steps) == (reference.best_step, reference.steps)
            assert result.curve == reference.curve
            torch.testing.assert_close(flat(head), flat(alone), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(
                torch.tensor(head.featurizer.learned_weights()),
                torch.tensor(alone.featurizer.learned_weights()),
            )
    assert any(r.steps < SETTINGS.max_steps for r in results)  # early stopping happened


def test_a_sweep_gets_the_same_bits_with_any_workers_and_close_ones_alone() -> None:
    problem = Problem()
    heads = [problem.head(spec) for spec in SPECS]
    stacks = [[group.indices for group in stacking._deal(heads, w, True)] for w in (1, 4)]
    assert stacks == [[[0, 2], [1, 3]]] * 2  # two stacks (CPU_GROUPS), whatever the workers
    with single_threaded_torch():
        heads, _ = problem.train_stacked()
        expected = [flat(head) for head in heads]
        for workers in (2, 3, 4):
            heads, _ = problem.train_stacked(workers=workers)
            assert all(torch.equal(a, flat(b)) for a, b in zip(expected, heads, strict=True))
        # alone, a probe trains as its own module: the same to rounding
        alone, _ = problem.train_stacked(specs=SPECS[2:3])
        torch.testing.assert_close(expected[2], flat(alone[0]), rtol=1e-5, atol=1e-6)
    torch.set_num_threads(2)
    heads, _ = problem.train_stacked(workers=2)  # training is single-threaded regardless
    assert all(torch.equal(a, flat(b)) for a, b in zip(expected, heads, strict=True))


def test_probes_are_grouped_by_size_alone_and_a_shared_input_keeps_one_group() -> None:
    small = [UtteranceHead(4, 16, 5, projector_dim=32) for _ in range(10)]
    big = [UtteranceHead(2, 2048, 5, projector_dim=256) for _ in range(3)]  # 525k parameters

    def groups(heads, workers=2, **options):
        return [(g.indices, g.stacked) for g in stacking._deal(heads, workers, True, **options)]

    # at most STACK_SIZE (8) probes a stack, dealt round-robin, whatever the workers
    two_stacks = [([0, 2, 4, 6, 8], True), ([1, 3, 5, 7, 9], True)]
    assert groups(small, 1) == groups(small, 4) == two_stacks
    assert groups(small, shared_input=True) == [(list(range(10)), True)]
    # on a CPU even a small sweep makes two groups (a group of one trains alone)
    assert groups(small[:5], 3) == [([0, 2, 4], True), ([1, 3], True)]
    assert groups(small[:2], 1) == [([0], False), ([1], False)]
    # over half of STACK_PARAMETERS a probe trains as its own module: lock-step groups
    assert groups(big, 2) == [([0, 2], False), ([1], False)]
    # the costliest group first; a stacked form is used only for a real stack
    assert groups(big + small[:1], 1)[-1] == ([3], False)


def test_lockstep_fallback_trains_each_module_as_train_probe_does() -> None:
    """A head without a stacked form (here the stacked form is refused) trains as its own
    module with its own fused Adam: bit for bit what train_probe gives."""
    problem = Problem()
    with single_threaded_torch():
        heads, results = problem.train_stacked(stack=False)
        for spec, head, result in zip(SPECS, heads, results, strict=True):
            alone = problem.head(spec)
            evaluate = lambda model: problem.accuracy(model(problem.dev))  # noqa: E731
            reference = train_probe(
                alone, problem.batch_loss, evaluate, SETTINGS, spec.lr, spec.seed
            )
            assert result.curve == reference.curve
            assert torch.equal(flat(head), flat(alone))


class RecurrentHead(nn.Module):
    """A head bench has no stacked form for."""

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.rnn = nn.GRU(dim, 8, batch_first=True)
        self.out = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


def test_heads_without_a_stacked_form_train_in_lockstep_on_a_shared_batch() -> None:
    """A stream source: every probe consumes the same batch at each step."""
    problem = Problem()
    specs = SPECS[:2]
    heads = []
    for spec in specs:
        with seeded(spec.seed):
            heads.append(RecurrentHead(problem.dim, problem.classes))
    assert isinstance(group_heads(heads), Lockstep)
    shared = torch.Generator().manual_seed(5)
    batches = [problem.draw(shared) for _ in range(40)]

    def step_loss(group: nn.Module, active) -> torch.Tensor:
        index = batches[active.step - 1]
        logits = group(problem.train[index], shared=True)
        return torch.stack([F.cross_entropy(x, problem.labels[index]) for x in logits])

    improving = iter(range(100))
    schedule = dataclasses.replace(StackSchedule.of(SETTINGS), max_steps=40)
    with single_threaded_torch():
        train_stack(heads, specs, step_loss, lambda g, a: [next(improving)] * len(a), schedule)
        for spec, head in zip(specs, heads, strict=True):
            with seeded(spec.seed):
                alone = RecurrentHead(problem.dim, problem.classes)
            optimizer = make_optimizer("adam", alone.parameters(), spec.lr, 0.0)
            for index in batches:
                optimizer.zero_grad()
                F.cross_entropy(alone(problem.train[index]), problem.labels[index]).backward()
                nn.utils.clip_grad_norm_(alone.parameters(), 1.0)
                optimizer.step()
            assert torch.equal(flat(head), flat(alone))


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_stacked_optimizer_is_torch_optimizer_per_probe_bit_for_bit(name: str) -> None:
    """Each probe's slice is its own parameter of one torch optimizer: the same kernel on
    the same shape as alone. Probes also leave the stack (keep) with their state."""
    torch.manual_seed(0)
    start = torch.randn(3, 40, 7)
    grads = [torch.randn(3, 40, 7) for _ in range(25)]
    lrs = [1e-3, 3e-3, 1e-2]
    module = nn.Module()
    module.weight = nn.Parameter(start.clone())
    stacked = StackedOptimizer(module, lrs, name, weight_decay=0.01)
    kept = [0, 2]
    for step, grad in enumerate(grads):
        if step == 10:  # probe 1 stops: the module and then the optimizer keep 0 and 2
            module.weight = nn.Parameter(module.weight.detach()[kept])
            stacked.keep(kept)
        rows = grad if step < 10 else grad[kept]
        module.weight.grad = rows.clone()
        stacked.step(grad_clip=None)
    for probe, lr in enumerate(lrs):
        weight = nn.Parameter(start[probe].clone())
        optimizer = make_optimizer(name, [weight], lr, weight_decay=0.01)
        for grad in grads[: 10 if probe == 1 else None]:
            weight.grad = grad[probe].clone()
            optimizer.step()
        if probe != 1:
            assert torch.equal(module.weight[kept.index(probe)].detach(), weight.detach())


def test_per_probe_clipping_is_clip_grad_norm_of_each_probe() -> None:
    torch.manual_seed(1)
    grads = [
        torch.randn(3, 20, 5) * torch.tensor([0.01, 1.0, 5.0])[:, None, None],
        torch.randn(3, 5) * torch.tensor([0.01, 1.0, 5.0])[:, None],
    ]
    clipped = [g.clone() for g in grads]
    norms = clip_per_probe_(clipped, max_norm=1.0)
    for probe in range(3):
        params = [nn.Parameter(torch.zeros_like(g[probe])) for g in grads]
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad[probe].clone()
        norm = nn.utils.clip_grad_norm_(params, 1.0)
        torch.testing.assert_close(norm, norms[probe], rtol=1e-6, atol=0)
        for param, grad in zip(params, clipped, strict=True):
            torch.testing.assert_close(param.grad, grad[probe], rtol=1e-6, atol=0)
    assert torch.equal(clipped[0][0], grads[0][0])  # a small gradient is left alone


def test_stopped_probes_leave_the_stack_and_keep_their_best_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stacking, "CPU_GROUPS", 1)  # the two probes in one stack
    problem = Problem()
    scripted = {0: [50, 40, 40, 40], 1: [10, 20, 30, 40, 50, 60, 70, 80, 90, 99]}
    sizes: list[int] = []

    def evaluate(group: nn.Module, active) -> list[float]:
        sizes.append(len(active))
        return [scripted[i][len(sizes) - 1] for i in active.indices]

    heads = [problem.head(spec) for spec in SPECS[:2]]
    schedule = dataclasses.replace(StackSchedule.of(SETTINGS), patience=3)
    results = train_stack(heads, SPECS[:2], problem.step_loss, evaluate, schedule)
    assert sizes == [2, 2, 2, 2, 1, 1, 1, 1, 1, 1]  # probe 0 stopped after 3 stale evaluations
    assert (results[0].best_step, results[0].steps) == (20, 80)
    assert (results[1].best_step, results[1].steps) == (200, 200)
    # probe 0's head holds its state at step 20, the first evaluation (to rounding: alone,
    # it trains as its own module)
    again = [problem.head(SPECS[0])]
    train_stack(
        again,
        SPECS[:1],
        problem.step_loss,
        lambda g, a: [1.0],
        dataclasses.replace(schedule, max_steps=20),
    )
    torch.testing.assert_close(flat(heads[0]), flat(again[0]), rtol=1e-5, atol=1e-6)


def test_stacked_forms_keep_the_head_state_names_and_values() -> None:
    heads = [FrameHead(3, 8, 4, hidden_dim=16) for _ in range(3)]
    group = group_heads(heads)
    assert isinstance(group, StackedModule)
    assert set(group.state_dict()) == set(heads[0].state_dict())
    for position, head in enumerate(heads):
        for name, value in group.probe_state(position).items():
            assert torch.equal(value, head.state_dict()[name])
    group.keep([2, 0])
    assert torch.equal(group.probe_state(0)["mlp.0.weight"], heads[2].mlp[0].weight)


def test_frame_heads_read_gathered_float16_frames_as_stacked_and_alone() -> None:
    torch.manual_seed(0)
    source = torch.randn(500, 3, 8).half()
    index = torch.randint(500, (2, 4, 30))
    heads = [FrameHead(3, 8, 4, hidden_dim=16) for _ in range(2)]
    for head in heads:
        head.featurizer.logits.data.normal_()
    stacked = group_heads(heads)(Gathered(source, index))
    for probe, head in enumerate(heads):
        alone = head(source[index[probe]])
        assert torch.equal(stacked[probe], alone)
        assert torch.equal(head(Gathered(source, index[probe])), alone)


def hear_jobs(config: predictor.TrainingConfig) -> list[predictor.PredictorJob]:
    def make(point: GridPoint) -> predictor.HearPredictor:
        return predictor.HearPredictor(3, 16, 3, point, config, "weighted", multilabel=True)

    points = [GridPoint(layers, "xavier_normal", lr) for layers in (1, 2) for lr in (1e-3, 1e-4)]
    return [predictor.PredictorJob(partial(make, p), p.lr, seed) for seed, p in enumerate(points)]


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_hear_predictors_stacked_equal_their_own_modules_and_any_stack(dtype) -> None:
    rng = np.random.default_rng(0)
    arrays = predictor.ProbeArrays(
        rng.normal(size=(300, 3, 16)).astype(dtype),
        (rng.random((300, 3)) > 0.7).astype(np.float32),
    )
    config = predictor.TrainingConfig(
        max_epochs=6, eval_every=2, patience=5, batch_size=64, hidden_dim=32
    )
    validate = lambda logits: predictor.Validation(-float(logits.abs().mean()))  # noqa: E731

    def run(**options) -> list[predictor.TrainedPredictor]:
        with single_threaded_torch():
            return predictor.train_predictors(
                hear_jobs(config), arrays, arrays.features, validate, config, True, **options
            )

    stacked, apart, two = run(), run(stack=False), run(workers=2)
    for a, b, c in zip(stacked, apart, two, strict=True):
        assert (a.best_epoch, a.epochs) == (b.best_epoch, b.epochs)
        # Outputs, not parameters, and to more than rounding: the bias before BatchNorm
        # has a gradient of rounding noise only, which Adam turns into steps of about lr
        # in either direction; BatchNorm's running mean follows it with a lag.
        logits = [predictor.predict_logits(t.model, arrays.features, 64, "cpu") for t in (a, b)]
        torch.testing.assert_close(*logits, rtol=0, atol=1e-2)
        assert ((logits[0] > 0) == (logits[1] > 0)).float().mean() > 0.99
        torch.testing.assert_close(
            torch.tensor(a.model.combiner.learned_weights()),
            torch.tensor(b.model.combiner.learned_weights()),
        )
        assert torch.equal(flat(a.model), flat(c.model))
        assert [epoch for epoch, _ in a.curve] == [2, 4, 6]


def test_sweep_progress_counts_probe_steps_and_shows_the_best_score() -> None:
    problem = Problem()
    specs = [ProbeSpec(spec.lr, spec.seed, f"lr {spec.lr:g} seed {spec.seed}") for spec in SPECS]
    progress = SweepProgress("probe toy", probes=4, total_steps=4 * 200, enabled=True)
    _, results = problem.train_stacked(specs=specs, progress=progress)
    progress.close()
    assert progress.bar.n == 800  # a stopped probe's remaining steps count as done
    best = max(range(4), key=lambda i: (results[i].best_score, -i))
    assert progress.best == results[best].best_score
    assert f"best dev {progress.best:.4g} ({specs[best].label})" in progress.bar.postfix
    stopped = sum(result.steps < SETTINGS.max_steps for result in results)
    assert stopped and progress.training == 4 - stopped
