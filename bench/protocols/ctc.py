"""CTC recognition: SUPERB PR and ASR, and the demo phone task.

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
  better for every CTC metric).

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
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.ctc.decode import greedy_decode
from bench.ctc.recipe import CTCRecipe
from bench.ctc.text import Transcription
from bench.data import DataError, Item, TaskData
from bench.frames.batching import BatchSchedule
from bench.frames.sources import FrameSource, as_frame_source
from bench.probe import TrainResult, seeded, train_probe
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    UpstreamInfo,
)
from bench.protocols.sweep import run_sweep, sweep_outcome
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
    hypotheses: list[list[str]] = [[] for _ in split.items]
    batches = length_batches(split.lengths)
    frames_of = split.source.iterate([split.items[i] for i in index] for index in batches)
    for index, (frames, lengths) in zip(batches, frames_of, strict=True):
        with autocast(settings):
            logits = head(frames.to(settings.device), lengths.to(settings.device))
        decoded = greedy_decode(logits, lengths, transcription.tokens)
        for position, units in zip(index, decoded, strict=True):
            hypotheses[position] = units
    return hypotheses


def build_split(items: list[Item], source: FrameSource, transcription: Transcription) -> CTCSplit:
    references = [transcription.units(item.label) for item in items]
    targets = [transcription.tokens.encode(units) for units in references]
    return CTCSplit(items, source, targets, references, source.frame_counts(items))


def trainable(split: CTCSplit) -> list[int]:
    """Positions whose frames can hold their CTC target."""
    return [
        i
        for i, (frames, targets) in enumerate(zip(split.lengths, split.targets, strict=True))
        if frames >= ctc_frames_needed(targets)
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
        tokens = transcription.tokens
        selection_metric = task.metadata.main_metric
        source = as_frame_source(features, upstream.frame_rate, upstream.num_layers)
        scored = [split for split in data.splits if split not in fold.train]
        splits = {split: build_split(data.splits[split], source, transcription) for split in scored}
        everything = build_split(data.items(fold.train), source, transcription)
        keep = trainable(everything)
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
        device = settings.device
        errors: dict[tuple[float, int], str] = {}

        def train_one(lr: float, seed: int, _fold: int) -> tuple[nn.Module, TrainResult]:
            with seeded(seed, device):
                head = recipe.head.build(
                    upstream.num_layers,
                    upstream.hidden_size,
                    len(tokens),
                    layers=settings.layers,
                    layer_norm=settings.layer_norm,
                )
            head = head.to(device)
            if hasattr(head, "seed"):
                head.seed(seed, device)
            result, error = _train(
                head,
                train,
                splits["dev"],
                schedule,
                recipe,
                transcription,
                settings,
                lr,
                seed,
                selection_metric,
            )
            if error:
                errors[lr, seed] = error
            return head, result

        def score(head: nn.Module, _fold: int) -> dict[str, dict[str, float]]:
            return {
                split: transcription.scores(
                    recognise(head, splits[split], transcription, settings),
                    splits[split].references,
                )
                for split in scored
            }

        trials = run_sweep(train_one, settings, 1, desc=f"probe {name}")
        if {t.lr for t in trials} <= {lr for lr, _ in errors}:
            (lr, seed), error = next(iter(errors.items()))
            raise ProbeDiverged(
                f"{name}: every learning rate has a failed probe, e.g. lr={lr:g} seed={seed}: {error}"
            )
        # a failed probe's dev score is NaN, so its learning rate is never selected
        outcome = sweep_outcome(
            trials, score, selection_metric, [fold.name], higher_is_better=False
        )
        outcome.selected["ctc_skipped_train_utterances"] = skipped
        outcome.selected["frame_source"] = source.kind
        for record in outcome.trials:
            if (record["lr"], record["seed"]) in errors:
                record["error"] = errors[record["lr"], record["seed"]]
        return outcome


def _train(
    head: nn.Module,
    train: CTCSplit,
    dev: CTCSplit,
    schedule: BatchSchedule,
    recipe: CTCRecipe,
    transcription: Transcription,
    settings: ProbeSettings,
    lr: float,
    seed: int,
    selection_metric: str,
) -> tuple[TrainResult, str | None]:
    """The trained probe's result, and the error that stopped it (None when it finished)."""
    drawn = 0
    blank = transcription.tokens.blank

    def batch_loss(model: nn.Module, _generator: torch.Generator) -> Tensor:
        nonlocal drawn
        losses = []
        for _ in range(recipe.accumulate):
            frames, lengths, targets, target_lengths = train.batch(
                schedule.batch(drawn), settings.device
            )
            drawn += 1
            with autocast(settings):
                logits = model(frames, lengths.to(settings.device))
            losses.append(ctc_loss(logits, lengths, targets, target_lengths, blank))
        loss = torch.stack(losses).mean()
        if not math.isfinite(value := float(loss.detach())):
            raise ProbeDiverged(f"training loss is {value} at step {drawn // recipe.accumulate}")
        return loss

    def evaluate(model: nn.Module) -> float:
        hypotheses = recognise(model, dev, transcription, settings)
        return transcription.scores(hypotheses, dev.references)[selection_metric]

    try:
        result = train_probe(
            head,
            batch_loss,
            evaluate,
            settings,
            lr,
            seed,
            higher_is_better=False,
            grad_clip=recipe.grad_clip,
        )
    except ProbeDiverged as error:
        log.error("probe lr=%g seed=%d stopped: %s", lr, seed, error)
        steps = drawn // recipe.accumulate
        return TrainResult(best_score=math.nan, best_step=0, steps=steps, state={}), str(error)
    return result, None


PROTOCOLS.register("ctc_recognition", CTCRecognition)
