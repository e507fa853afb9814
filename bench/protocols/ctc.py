"""CTC recognition: SUPERB PR, ASR and SF, and the demo phone task.

A task names its ``transcription()`` (``bench.ctc.text``: the output vocabulary, how a
transcript becomes units, how recognised units are scored) and its ``ctc_recipe``: the head
(``bench.ctc.heads``), the batch rule (``bench.frames.batching``), gradient accumulation and
clipping. Everything else follows s3prl's CTC experts:

- loss: ``CTCLoss(blank, zero_infinity=True)`` on the log-softmax of the head's logits,
  averaged over the batch (each utterance's loss divided by its target length); targets are
  the units followed by the end-of-sentence token;
- Adam, the gradient norm clipped (1), ``accumulate`` batches per optimizer step;
- dev scored every ``eval_every`` steps with greedy decoding, the best state kept and test
  scored with it; the learning rate with the best mean dev score is selected (lower is
  better for the error rates, higher for SF's slot-type F1: the task's
  ``higher_is_better``).

Training utterances whose frames cannot hold their target under CTC (fewer frames than
units plus repeated neighbours) are left out and counted in ``selected``: with
``zero_infinity`` s3prl gives them a zero loss, so they teach nothing there either (they
still count in its batch mean). Dev and test keep them: they are scored as decoded.
Evaluation runs in length-sorted batches; the heads are padding-invariant, so this equals
s3prl's one utterance at a time.

The probes of the sweep (learning rates x seeds) train as stacked models
(``bench.stacking``; the BLSTM heads in lock-step), all on the same batch sequence: each
batch is read once per group from the cache, or once for all probes from the encoder
stream (``bench.frames.sources``; one group then holds them all), and fed to every probe. The seeds vary the initialisation, SpecAugment and dropout; the batch
order comes from the first seed. The sweep checkpoints every evaluation and resumes after a
kill (``bench.frames.checkpoint``).

A probe whose loss becomes NaN or infinite stops at its next evaluation with that error in
its trial; the other probes go on, and a learning rate with a failed probe is not selected
(when every one has one, the run fails with the first error).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.ctc.decode import Decoder, greedy, greedy_decode
from bench.ctc.heads import output_lengths
from bench.ctc.recipe import CTCRecipe, frame_step
from bench.ctc.text import TokenSet, Transcription
from bench.data import Item, TaskData
from bench.frames.batching import BatchSchedule
from bench.frames.checkpoint import SweepCheckpoints
from bench.frames.sources import FrameSource, as_frame_source
from bench.probe import seeded
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeSettings,
    ResumableProtocol,
    UpstreamInfo,
    single_fold,
)
from bench.protocols.sweep import Trial, run_stacked_sweep, select_lr, sweep_outcome
from bench.stacking import ActiveProbes, PatienceStopping, ProbeGroup, group_heads
from bench.task import Task

log = logging.getLogger(__name__)

#: padded frames per evaluation batch
EVAL_FRAMES = 16_000


class ProbeDiverged(ValueError):
    """A probe's training loss became NaN or infinite (a ValueError, so that the runner
    reports a sweep where every learning rate failed as a failed task)."""


def ctc_frames_needed(targets: Sequence[int]) -> int:
    """The fewest frames that can emit ``targets`` under CTC: one per unit, plus a blank
    between equal neighbours."""
    return len(targets) + sum(1 for a, b in itertools.pairwise(targets) if a == b)


@dataclass
class CTCSplit:
    """A split's items with their targets (token ids), reference units and frame counts;
    frames come from ``source`` batch by batch."""

    items: list[Item]
    source: FrameSource
    targets: list[list[int]]
    references: list[list[str]]
    lengths: list[int]

    def subset(self, keep: Sequence[int]) -> CTCSplit:
        return CTCSplit(
            [self.items[i] for i in keep],
            self.source,
            [self.targets[i] for i in keep],
            [self.references[i] for i in keep],
            [self.lengths[i] for i in keep],
        )

    def targets_of(self, index: Sequence[int]) -> tuple[Tensor, Tensor]:
        """The items' targets concatenated, and their lengths (``F.ctc_loss``'s form)."""
        targets = torch.tensor([t for i in index for t in self.targets[i]])
        return targets, torch.tensor([len(self.targets[i]) for i in index])


def ctc_loss(
    logits: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor, blank: int
) -> Tensor:
    log_probs = logits.float().log_softmax(dim=-1).transpose(0, 1)
    return F.ctc_loss(
        log_probs,
        targets.to(logits.device),
        lengths,
        target_lengths,
        blank=blank,
        reduction="mean",
        zero_infinity=True,
    )


def autocast(settings: ProbeSettings) -> torch.autocast:
    """bfloat16 autocast of the head when ``settings.precision`` asks for it (the CTC loss
    is computed in float32 either way)."""
    device_type = torch.device(settings.device).type
    return torch.autocast(device_type, torch.bfloat16, enabled=settings.precision == "bf16")


def length_batches(lengths: Sequence[int], max_frames: int = EVAL_FRAMES) -> list[list[int]]:
    """Positions sorted by length, grouped so that each padded batch holds at most
    ``max_frames`` frames (or one item)."""
    batches: list[list[int]] = []
    for i in np.argsort(lengths, kind="stable").tolist():
        if batches and (len(batches[-1]) + 1) * lengths[i] <= max_frames:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def transcribe(
    group: ProbeGroup,
    split: CTCSplit,
    settings: ProbeSettings,
    tokens: TokenSet,
    step: int = 1,
    decode: Decoder = greedy_decode,
) -> list[list[list[str]]]:
    """Transcripts (greedy, or ``decode``'s) of every item of ``split`` by every probe of
    ``group``, each batch fed once to all of them (``shared=True``); the heads keep every
    ``step``-th frame."""
    hypotheses: list[list[list[str]]] | None = None
    batches = length_batches(split.lengths)
    frames_of = split.source.iterate([split.items[i] for i in index] for index in batches)
    for index, (frames, lengths) in zip(batches, frames_of, strict=True):
        with autocast(settings):
            logits = group(frames.to(settings.device), lengths.to(settings.device), shared=True)
        if hypotheses is None:
            hypotheses = [[[] for _ in split.items] for _ in range(len(logits))]
        for probe, probe_logits in enumerate(logits):
            for position, units in zip(
                index,
                decode(probe_logits, output_lengths(lengths, step), tokens),
                strict=True,
            ):
                hypotheses[probe][position] = units
    assert hypotheses is not None
    return hypotheses


def build_split(items: list[Item], source: FrameSource, transcription: Transcription) -> CTCSplit:
    references = [transcription.units(item.label) for item in items]
    targets = [transcription.tokens.encode(units) for units in references]
    return CTCSplit(items, source, targets, references, source.frame_counts(items))


def head_lengths(head: nn.Module, lengths: Tensor) -> Tensor:
    """The valid lengths of a head's logits (a head may keep every ``frame_step``-th frame)."""
    return output_lengths(lengths, getattr(head, "frame_step", 1))


def trainable(split: CTCSplit, frame_step: int = 1) -> list[int]:
    """Positions whose head output (every ``frame_step``-th frame) can hold their CTC target."""
    return [
        i
        for i, (frames, targets) in enumerate(zip(split.lengths, split.targets, strict=True))
        if frames // frame_step >= ctc_frames_needed(targets)
    ]


class CTCRecognition(ResumableProtocol):
    feature_kind = "sequence"
    frame_stream = True
    checkpoints: SweepCheckpoints | None = None

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        name = task.metadata.name
        fold = single_fold(data, name, "CTC recognition")
        recipe: CTCRecipe = task.ctc_recipe  # type: ignore[attr-defined]
        transcription: Transcription = task.transcription()  # type: ignore[attr-defined]
        metric, higher_is_better = task.metadata.main_metric, task.metadata.higher_is_better
        step = frame_step(recipe.head, upstream.frame_rate)
        source = as_frame_source(features, upstream.frame_rate, upstream.num_layers)
        scored = [split for split in data.splits if split not in fold.train]
        splits = {split: build_split(data.splits[split], source, transcription) for split in scored}
        train, skipped = _trainable_split(
            build_split(data.items(fold.train), source, transcription), name, step
        )
        schedule = recipe.batching.schedule(
            [len(t) for t in train.targets],
            source.durations(train.items),
            settings.batch_size,
            settings.seeds[0],
        )
        sweep = _CTCSweep(
            train,
            splits["dev"],
            schedule,
            recipe,
            transcription,
            upstream,
            settings,
            metric,
            self.checkpoints,
        )
        trials = run_stacked_sweep(
            sweep,
            settings,
            1,
            f"probe {name}",
            f"dev {metric}",
            higher_is_better=higher_is_better,
            grad_clip=recipe.grad_clip,
            stopping=lambda: DivergenceStopping(settings, higher_is_better),
            # a stream feeds every probe from one encoder forward: one group holds them all
            shared_input=source.kind == "stream",
            checkpoints=self.checkpoints,
        )
        errors = sweep.errors
        for trial in trials:
            if (trial.lr, trial.seed) in errors:
                trial.result.best_score = math.nan  # never selected
        if {t.lr for t in trials} <= {lr for lr, _ in errors}:
            (lr, seed), error = next(iter(errors.items()))
            raise ProbeDiverged(
                f"{name}: every learning rate has a failed probe, e.g. lr={lr:g} seed={seed}: {error}"
            )
        # selection reads greedy dev scores; a task's own decoder (ASR's optional beam
        # search) decodes the selected probes' final scores
        decoder, decoding = getattr(task, "final_decoder", greedy)(transcription.tokens)
        scores = _score_selected(
            trials, splits, transcription, settings, higher_is_better, step, decoder
        )
        outcome = sweep_outcome(
            trials,
            lambda head, _fold: scores[id(head)],
            metric,
            [fold.name],
            higher_is_better=higher_is_better,
        )
        outcome.selected["ctc_skipped_train_utterances"] = skipped
        outcome.selected["frame_source"] = source.kind
        outcome.selected["decoding"] = decoding
        for record in outcome.trials:
            if (record["lr"], record["seed"]) in errors:
                record["error"] = errors[record["lr"], record["seed"]]
        if self.checkpoints is not None:
            self.checkpoints.clear()
        return outcome


def _trainable_split(split: CTCSplit, name: str, step: int) -> tuple[CTCSplit, int]:
    """The training split without the utterances too short for their target (in the head's
    output frames, every ``step``-th), and their count."""
    keep = trainable(split, step)
    skipped = len(split.items) - len(keep)
    if skipped:
        example = next(i for i in range(len(split.items)) if i not in set(keep))
        log.warning(
            "%s: %d training utterance(s) are shorter in frames than their CTC target and are "
            "left out, e.g. %s",
            name,
            skipped,
            split.items[example].key,
        )
    return split.subset(keep), skipped


def _score_selected(
    trials: Sequence[Trial],
    splits: dict[str, CTCSplit],
    transcription: Transcription,
    settings: ProbeSettings,
    higher_is_better: bool,
    step: int,
    decode: Decoder = greedy_decode,
) -> dict[int, dict[str, dict[str, float]]]:
    """The scores of the selected learning rate's probes on every scored split, each split
    read once for all of them (from a stream: one encoder pass), decoded by ``decode``; by
    ``id`` of the head."""
    lr = select_lr(trials, higher_is_better=higher_is_better)
    heads = [t.model for t in trials if t.lr == lr]
    for head in heads:
        head.eval()
    group = group_heads(heads, settings.stack)
    group.eval()
    scores: dict[int, dict[str, dict[str, float]]] = {id(head): {} for head in heads}
    with torch.no_grad():
        for name, split in splits.items():
            for head, hypotheses in zip(
                heads,
                transcribe(group, split, settings, transcription.tokens, step, decode),
                strict=True,
            ):
                scores[id(head)][name] = transcription.scores(hypotheses, split.references)
    return scores


class DivergenceStopping(PatienceStopping):
    """The settings' stopping (patience, or none without ``early_stopping``: s3prl's
    fixed-length runs), and a NaN dev score (a diverged probe, see ``_CTCSweep``) stops at once."""

    def __init__(self, settings: ProbeSettings, higher_is_better: bool):
        super().__init__(settings.patience, higher_is_better)
        self.early_stopping = settings.early_stopping

    def stop(self, score: float) -> bool:
        return math.isnan(score) or (self.early_stopping and super().stop(score))


@dataclass
class _CTCSweep:
    """The probes of a CTC sweep (``bench.protocols.sweep.StackedSweep``). Every probe
    trains on the same batch sequence (``schedule``; batch ``k`` is a function of ``k``),
    fed to the whole group at once (``shared=True``), so a streamed batch costs one encoder
    forward for all of them and a cached one the same numbers."""

    train: CTCSplit
    dev: CTCSplit
    schedule: BatchSchedule
    recipe: CTCRecipe
    transcription: Transcription
    upstream: UpstreamInfo
    settings: ProbeSettings
    #: the dev metric that selects (the task's main metric)
    metric: str
    checkpoints: SweepCheckpoints | None = None
    #: (lr, seed) -> why that probe stopped (its loss became NaN or infinite)
    errors: dict[tuple[float, int], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._feed = _BatchFeed(self.train, self.schedule, self.settings.device)
        #: upstream frames per output frame of the heads
        self.step = frame_step(self.recipe.head, self.upstream.frame_rate)
        saved = self.checkpoints.load("errors") if self.checkpoints is not None else None
        for lr, seed, error in (saved or {}).get("errors", []):
            self.errors[float(lr), int(seed)] = str(error)

    def build_head(self, seed: int, fold: int) -> nn.Module:
        device = self.settings.device
        with seeded(seed, device):
            head = self.recipe.head.build(
                self.upstream.num_layers,
                self.upstream.hidden_size,
                len(self.transcription.tokens),
                frame_rate=self.upstream.frame_rate,
                layers=self.settings.layers,
                layer_norm=self.settings.layer_norm,
            )
        head = head.to(device)
        if hasattr(head, "seed"):
            head.seed(seed, device)
        return head

    def step_loss(self, fold: int, group: nn.Module, active: ActiveProbes) -> Tensor:
        blank, accumulate = self.transcription.tokens.blank, self.recipe.accumulate
        losses = []
        for part in range(accumulate):
            frames, lengths, targets, target_lengths = self._feed(
                (active.step - 1) * accumulate + part
            )
            with autocast(self.settings):
                logits = group(frames, lengths.to(frames.device), shared=True)
            kept = output_lengths(lengths, self.step)
            losses.append(
                torch.stack(
                    [ctc_loss(probe, kept, targets, target_lengths, blank) for probe in logits]
                )
            )
        loss = torch.stack(losses).mean(dim=0)
        finite = torch.isfinite(loss.detach())
        if not bool(finite.all()):
            self._diverged(active, finite, loss.detach())
        return torch.where(finite, loss, torch.zeros_like(loss))

    def _diverged(self, active: ActiveProbes, finite: Tensor, loss: Tensor) -> None:
        for position in torch.nonzero(~finite).flatten().tolist():
            spec = active.specs[position]
            if (spec.lr, spec.seed) not in self.errors:
                error = f"training loss is {float(loss[position])} at step {active.step}"
                log.error("probe lr=%g seed=%d stopped: %s", spec.lr, spec.seed, error)
                self.errors[spec.lr, spec.seed] = error
        if self.checkpoints is not None:
            listed = [[lr, seed, error] for (lr, seed), error in self.errors.items()]
            self.checkpoints.save("errors", {"errors": listed})

    def evaluate(self, fold: int, group: nn.Module, active: ActiveProbes) -> list[float]:
        hypotheses = transcribe(
            group, self.dev, self.settings, self.transcription.tokens, self.step
        )
        return [
            math.nan
            if (spec.lr, spec.seed) in self.errors
            else self.transcription.scores(probe, self.dev.references)[self.metric]
            for spec, probe in zip(active.specs, hypotheses, strict=True)
        ]


class _BatchFeed:
    """Training batch ``k`` of the schedule: read directly from a cache; from a stream
    through ``iterate``, so that the next batch's audio is read while this one trains."""

    def __init__(self, split: CTCSplit, schedule: BatchSchedule, device: str):
        self.split, self.schedule, self.device = split, schedule, device
        self._next: int | None = None
        self._batches: Iterator[tuple[Tensor, Tensor]] | None = None

    def __call__(self, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """frames, lengths, concatenated targets, target lengths of batch ``k``."""
        index = self.schedule.batch(k)
        targets, target_lengths = self.split.targets_of(index)
        if self.split.source.kind != "stream":
            frames, lengths = self.split.source.batch([self.split.items[i] for i in index])
        else:
            if self._next != k:
                items = (
                    [self.split.items[i] for i in self.schedule.batch(j)]
                    for j in itertools.count(k)
                )
                self._batches = self.split.source.iterate(items)
            assert self._batches is not None
            frames, lengths = next(self._batches)
            self._next = k + 1
        return frames.to(self.device), lengths, targets, target_lengths


PROTOCOLS.register("ctc_recognition", CTCRecognition)
