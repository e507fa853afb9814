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

Every probe of the sweep trains on the same batches (the schedule's, as each s3prl run of
one learning rate would), so the sweep trains as one group (``bench.stacking``): a step
reads its batch once, from the cache or by one forward of a streamed encoder, for all
probes, and dev is decoded likewise.

Training utterances whose frames cannot hold their target under CTC (fewer frames than
units plus repeated neighbours) are left out and counted in ``selected``: with
``zero_infinity`` s3prl gives them a zero loss, so they teach nothing there either (they
still count in its batch mean). Dev and test keep them: they are scored as decoded.
Evaluation runs in length-sorted batches; the heads are padding-invariant, so this equals
s3prl's one utterance at a time.

A probe whose loss becomes NaN or infinite stops with that error in its trial; the other
probes go on, and a learning rate with a failed probe is not selected (when every one has
one, the run fails with the first error).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.ctc.decode import greedy_decode
from bench.ctc.heads import output_lengths
from bench.ctc.recipe import CTCRecipe, frame_step
from bench.ctc.text import Transcription
from bench.data import DataError, Item, TaskData
from bench.frames.batching import BatchSchedule
from bench.frames.sources import FrameSource, as_frame_source
from bench.probe import seeded
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    UpstreamInfo,
)
from bench.protocols.sweep import run_stacked_sweep, sweep_outcome
from bench.stacking import ActiveProbes, per_probe
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

    def batch(self, index: Sequence[int], device: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """frames, lengths, concatenated targets, target lengths."""
        frames, lengths = self.source.batch([self.items[i] for i in index])
        targets = torch.tensor([t for i in index for t in self.targets[i]])
        target_lengths = torch.tensor([len(self.targets[i]) for i in index])
        return frames.to(device), lengths, targets, target_lengths


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


def recognise(
    head: nn.Module, split: CTCSplit, transcription: Transcription, settings: ProbeSettings
) -> list[list[str]]:
    """Greedy transcripts of every item of ``split``."""
    step = getattr(head, "frame_step", 1)
    return recognise_each(lambda f, n: head(f, n)[None], step, split, transcription, settings)[0]


def recognise_each(
    forward: Callable[[Tensor, Tensor], Tensor],
    step: int,
    split: CTCSplit,
    transcription: Transcription,
    settings: ProbeSettings,
) -> list[list[list[str]]]:
    """Greedy transcripts of every item of ``split`` by each of P probes: ``forward(frames,
    lengths)`` gives their logits ``[P, B, T, V]`` (a probe group on a shared batch), so
    the frames of each batch are read once for all of them; the heads keep every
    ``step``-th frame."""
    hypotheses: list[list[list[str]]] = []
    batches = length_batches(split.lengths)
    frames_of = split.source.iterate([split.items[i] for i in index] for index in batches)
    for index, (frames, lengths) in zip(batches, frames_of, strict=True):
        with autocast(settings):
            logits = forward(frames.to(settings.device), lengths.to(settings.device))
        if not hypotheses:
            hypotheses = [[[] for _ in split.items] for _ in logits]
        for probe, probe_logits in zip(hypotheses, logits, strict=True):
            decoded = greedy_decode(
                probe_logits, output_lengths(lengths, step), transcription.tokens
            )
            for position, units in zip(index, decoded, strict=True):
                probe[position] = units
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


class CTCRecognition(ProbeProtocol):
    feature_kind = "sequence"
    frame_stream = True

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        name = task.metadata.name
        if len(data.folds) != 1:
            raise DataError(f"{name}: CTC recognition takes one fold")
        fold = data.folds[0]
        recipe: CTCRecipe = task.ctc_recipe  # type: ignore[attr-defined]
        transcription: Transcription = task.transcription()  # type: ignore[attr-defined]
        selection_metric = task.metadata.main_metric
        higher_is_better = task.metadata.higher_is_better
        source = as_frame_source(features, upstream.frame_rate, upstream.num_layers)
        scored = [split for split in data.splits if split not in fold.train]
        splits = {split: build_split(data.splits[split], source, transcription) for split in scored}
        everything = build_split(data.items(fold.train), source, transcription)
        keep = trainable(everything, frame_step(recipe.head, upstream.frame_rate))
        skipped = len(everything.items) - len(keep)
        if skipped:
            example = next(i for i in range(len(everything.items)) if i not in set(keep))
            log.warning(
                "%s: %d training utterance(s) are shorter in frames than their CTC target and are "
                "left out, e.g. %s",
                name,
                skipped,
                everything.items[example].key,
            )
        train = everything.subset(keep)
        schedule = recipe.batching.schedule(
            [len(t) for t in train.targets],
            source.durations(train.items),
            settings.batch_size,
            settings.seeds[0],
        )
        sweep = _CTCSweep(
            train, splits["dev"], schedule, recipe, transcription, upstream, settings,
            selection_metric,
        )  # fmt: skip
        trials = run_stacked_sweep(
            sweep,
            settings,
            1,
            f"probe {name}",
            f"dev {selection_metric}",
            higher_is_better=higher_is_better,
            grad_clip=recipe.grad_clip,
            fail_on_non_finite_loss=True,
        )
        errors = {(t.lr, t.seed): t.result.error for t in trials if t.result.error}
        for (lr, seed), error in errors.items():
            log.error("probe lr=%g seed=%d stopped: %s", lr, seed, error)

        def score(head: nn.Module, _fold: int) -> dict[str, dict[str, float]]:
            return {
                split: transcription.scores(
                    recognise(head, splits[split], transcription, settings),
                    splits[split].references,
                )
                for split in scored
            }

        if {t.lr for t in trials} <= {lr for lr, _ in errors}:
            (lr, seed), error = next(iter(errors.items()))
            raise ProbeDiverged(
                f"{name}: every learning rate has a failed probe, e.g. lr={lr:g} seed={seed}: {error}"
            )
        # a failed probe's dev score is NaN, so its learning rate is never selected
        outcome = sweep_outcome(
            trials, score, selection_metric, [fold.name], higher_is_better=higher_is_better
        )
        outcome.selected["ctc_skipped_train_utterances"] = skipped
        outcome.selected["frame_source"] = source.kind
        for record in outcome.trials:
            if (record["lr"], record["seed"]) in errors:
                record["error"] = errors[record["lr"], record["seed"]]
        return outcome


@dataclass
class _CTCSweep:
    """The probes of a CTC task (``bench.protocols.sweep.StackedSweep``). Every probe reads
    the same batches (the schedule's), so each step reads its frames once, from the cache
    or by one encoder forward of a streamed source, and every probe of the group trains on
    them (``shared=True``); dev is decoded the same way, one read per batch."""

    train: CTCSplit
    dev: CTCSplit
    schedule: BatchSchedule
    recipe: CTCRecipe
    transcription: Transcription
    upstream: UpstreamInfo
    settings: ProbeSettings
    selection_metric: str

    @property
    def frame_step(self) -> int:
        """Heads keep every ``frame_step``-th frame."""
        return frame_step(self.recipe.head, self.upstream.frame_rate)

    def build_head(self, seed: int, _fold: int) -> nn.Module:
        settings = self.settings
        with seeded(seed, settings.device):
            head = self.recipe.head.build(
                self.upstream.num_layers,
                self.upstream.hidden_size,
                len(self.transcription.tokens),
                frame_rate=self.upstream.frame_rate,
                layers=settings.layers,
                layer_norm=settings.layer_norm,
            )
        head = head.to(settings.device)
        if hasattr(head, "seed"):
            head.seed(seed, settings.device)
        return head

    def step_loss(self, _fold: int, group: nn.Module, active: ActiveProbes) -> Tensor:
        """Each probe's loss, averaged over the step's ``accumulate`` batches."""
        blank, device = self.transcription.tokens.blank, self.settings.device
        losses = []
        for k in range(self.recipe.accumulate):
            drawn = (active.step - 1) * self.recipe.accumulate + k
            frames, lengths, targets, target_lengths = self.train.batch(
                self.schedule.batch(drawn), device
            )
            with autocast(self.settings):
                logits = group(frames, lengths.to(device), shared=True)
            loss = partial(
                ctc_loss,
                lengths=output_lengths(lengths, self.frame_step),
                targets=targets,
                target_lengths=target_lengths,
                blank=blank,
            )
            losses.append(per_probe(loss, logits))
        return torch.stack(losses).mean(0)

    def evaluate(self, _fold: int, group: nn.Module, active: ActiveProbes) -> list[float]:
        def forward(frames: Tensor, lengths: Tensor) -> Tensor:
            return group(frames, lengths, shared=True)

        return [
            self.transcription.scores(hypotheses, self.dev.references)[self.selection_metric]
            for hypotheses in recognise_each(
                forward, self.frame_step, self.dev, self.transcription, self.settings
            )
        ]


PROTOCOLS.register("ctc_recognition", CTCRecognition)
