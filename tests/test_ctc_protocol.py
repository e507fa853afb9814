"""The CTC protocol's parts: s3prl's batch rules, SpecAugment, CTC feasibility, failed probes."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.ctc.augment import mask_along, spec_augment, time_warp
from bench.ctc.recipe import CTCRecipe, LinearHead, RecurrentHead, SpecAugment
from bench.ctc.text import PhoneTranscription
from bench.data import Item, TaskData
from bench.frames.batching import LengthBuckets, SlidingWindows
from bench.protocols.base import ProbeSettings, UpstreamInfo
from bench.protocols.ctc import CTCRecognition, ProbeDiverged, ctc_frames_needed, length_batches
from bench.task import Schedule, Task, TaskMetadata


def test_sliding_windows_are_s3prls_libriphone_buckets():
    label_lengths = [3, 1, 4, 1, 5, 9, 2, 6]
    durations = [1.0] * 8
    durations[5] = 20.0  # the longest label, over 18.75 s: its windows are halved
    schedule = SlidingWindows().schedule(label_lengths, durations, batch_size=3, seed=0)
    order = [5, 7, 4, 2, 0, 6, 1, 3]  # longest label first, ties in position order
    windows = [order[min(5, i) : min(5, i) + 3] for i in range(8)]
    windows[0] = windows[0][:1]
    assert schedule.batches_per_epoch == 8
    for epoch in range(3):
        seen = [schedule.batch(epoch * 8 + k) for k in range(8)]
        assert sorted(seen) == sorted(windows)  # every start position once per epoch
    first, second = ([schedule.batch(k) for k in range(8 * e, 8 * e + 8)] for e in (0, 1))
    assert first != second  # a new order each epoch...
    again = SlidingWindows().schedule(label_lengths, durations, batch_size=3, seed=0)
    assert [again.batch(k) for k in range(16)] == first + second  # ...that the seed fixes
    other = SlidingWindows().schedule(label_lengths, durations, batch_size=3, seed=1)
    assert [other.batch(k) for k in range(16)] != first + second


def test_length_buckets_are_s3prls_asr_buckets():
    durations = [0.1, 3.0, 2.0, 0.05, 4.0, 1.0, 0.11, 0.12, 5.0, 0.01]
    schedule = LengthBuckets().schedule([1] * 10, durations, batch_size=4, seed=3)
    # longest first: 8 4 1 2 | 5 7 6 0 | 3 9; the first two buckets are over 2,000 samples and
    # halved; the last (two items) is kept unsplit
    buckets = [[8, 4], [1, 2], [5, 7], [6, 0], [3, 9]]
    assert sorted(schedule.batch(k) for k in range(5)) == sorted(buckets)
    small = LengthBuckets().schedule([1] * 5, [0.01] * 5, batch_size=4, seed=0)
    assert [small.batch(0)] == [
        [0, 1, 2, 3]
    ]  # short buckets are not halved; a last single item is dropped
    assert small.batches_per_epoch == 1


def test_spec_augment_is_seeded_and_zeroes_padding():
    features = torch.randn(3, 50, 64)
    lengths = torch.tensor([50, 30, 8])
    config = SpecAugment()
    one = spec_augment(features, lengths, config, torch.Generator().manual_seed(0))
    two = spec_augment(features, lengths, config, torch.Generator().manual_seed(0))
    assert torch.equal(one, two)
    assert not torch.equal(
        one, spec_augment(features, lengths, config, torch.Generator().manual_seed(1))
    )
    assert one[1, 30:].abs().sum() == 0 and one[2, 8:].abs().sum() == 0
    # an utterance too short to warp (length - 5 <= 5) is copied as is
    warped = time_warp(features, lengths, 5, torch.Generator().manual_seed(0))
    assert torch.equal(warped[2, :8], features[2, :8])
    assert warped.shape == features.shape and not torch.equal(warped[0], features[0])


def test_masks_cover_at_most_count_times_width():
    features = torch.ones(4, 100, 80)
    masked = mask_along(features, 2, (0, 50), 4, torch.Generator().manual_seed(0))
    zero_columns = (masked == 0).all(dim=1).sum(dim=1)
    assert (zero_columns <= 4 * 49).all() and zero_columns.sum() > 0
    masked = mask_along(features, 1, (0, 40), 2, torch.Generator().manual_seed(0))
    zero_rows = (masked == 0).all(dim=2).sum(dim=1)
    assert (zero_rows <= 2 * 39).all()


def test_ctc_frames_needed_counts_a_blank_between_repeats():
    assert ctc_frames_needed([4, 5, 5, 6, 1]) == 6
    assert ctc_frames_needed([1]) == 1


def test_length_batches_cover_every_item_within_the_frame_budget():
    lengths = [5, 100, 20, 20, 300, 7]
    batches = length_batches(lengths, max_frames=60)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 60 for b in batches)


# -- the protocol on synthetic frames ------------------------------------------------------

LEXICON = {"A": ("AA1",), "B": ("B",), "C": ("K", "AH0")}


class Frames:
    """A FeatureStore of fixed random frames per word sequence: each word's phones are
    frames near a class prototype."""

    def __init__(self, items: list[Item], dim: int = 8, seed: int = 0):
        rng = np.random.default_rng(seed)
        prototypes = {p: rng.standard_normal(dim) * 3 for p in ("AA1", "B", "K", "AH0", "_")}
        self.arrays = {}
        for item in items:
            frames = []
            for phone in [p for w in item.label.split() for p in (*LEXICON[w], "_")]:
                frames += [prototypes[phone] + 0.3 * rng.standard_normal(dim) for _ in range(3)]
            self.arrays[item.key] = np.array(frames, dtype=np.float16)[:, None, :]

    def sequences(self, items):
        return [self.arrays[item.key] for item in items]


class DivergingHead(nn.Module):
    """A linear CTC head whose outputs become NaN once a weight exceeds 50 (a large lr)."""

    def __init__(self, num_tokens: int):
        super().__init__()
        self.featurizer = nn.Identity()
        self.featurizer.learned_weights = lambda: None
        self.linear = nn.Linear(8, num_tokens)

    def forward(self, frames, lengths):
        logits = self.linear(frames[:, :, 0].float())
        if self.linear.weight.abs().max() > 50:
            logits = logits * float("nan")
        return logits


@dataclass(frozen=True)
class DivergingSpec:
    def build(self, num_layers, input_dim, num_tokens, **featurizer):
        return DivergingHead(num_tokens)


def toy_task(head) -> Task:
    class Toy(Task):
        metadata = TaskMetadata("toy.ctc", "", "", "", main_metric="per", higher_is_better=False)
        schedule = Schedule(lr_grid=(1e-2,))
        protocol = "ctc_recognition"
        ctc_recipe = CTCRecipe(head=head, batching=SlidingWindows())

        def transcription(self):
            return PhoneTranscription(LEXICON)

    return Toy(None)


def toy_data(tmp_path: Path) -> TaskData:
    rng = np.random.default_rng(1)
    splits = {}
    for split, count in (("train", 40), ("dev", 10), ("test", 10)):
        splits[split] = [
            Item(
                f"{split}-{n}", tmp_path / f"{split}-{n}.flac", " ".join(rng.choice(list("ABC"), 3))
            )
            for n in range(count)
        ]
    return TaskData(splits=splits)


def settings(lr_grid, seeds=(0,), steps=150) -> ProbeSettings:
    return ProbeSettings(
        lr_grid=lr_grid, seeds=seeds, batch_size=8, max_steps=steps, eval_every=25, patience=20,
        progress=False,
    )  # fmt: skip


UPSTREAM = UpstreamInfo("toy", num_layers=1, hidden_size=8, frame_rate=50.0)


def test_linear_ctc_probe_learns_phones(tmp_path):
    data = toy_data(tmp_path)
    outcome = CTCRecognition().run(
        toy_task(LinearHead(project_dim=16)),
        data,
        Frames(data.all_items()),
        UPSTREAM,
        settings((3e-2,)),
    )
    assert outcome.metrics["test"]["per"].mean < 20
    assert outcome.selected["ctc_skipped_train_utterances"] == 0


def test_recurrent_ctc_probe_learns_phones(tmp_path):
    data = toy_data(tmp_path)
    head = RecurrentHead(project_dim=16, rnn_dim=16)
    outcome = CTCRecognition().run(
        toy_task(head), data, Frames(data.all_items()), UPSTREAM, settings((1e-2,), steps=200)
    )
    assert outcome.metrics["test"]["per"].mean < 30


def test_a_diverging_probe_stops_and_the_others_are_kept(tmp_path, caplog):
    data = toy_data(tmp_path)
    frames = Frames(data.all_items())
    outcome = CTCRecognition().run(
        toy_task(DivergingSpec()), data, frames, UPSTREAM, settings((1e-2, 1e3), steps=60)
    )
    assert outcome.selected["lr"] == 1e-2
    failed = [t for t in outcome.trials if "error" in t]
    assert [t["lr"] for t in failed] == [1e3]
    assert failed[0]["error"].startswith("training loss is nan at step")
    assert "probe lr=1000 seed=0 stopped: training loss is nan" in caplog.text
    with pytest.raises(
        ProbeDiverged, match=r"every learning rate has a failed probe, e\.g\. lr=1000"
    ):
        CTCRecognition().run(toy_task(DivergingSpec()), data, frames, UPSTREAM, settings((1e3,)))


def test_training_utterances_too_short_for_their_target_are_left_out(tmp_path, caplog):
    data = toy_data(tmp_path)
    frames = Frames(data.all_items())
    for item in data.splits["train"][:3]:
        frames.arrays[item.key] = frames.arrays[item.key][:2]  # 2 frames for >= 3 phones
    outcome = CTCRecognition().run(
        toy_task(LinearHead(project_dim=16)), data, frames, UPSTREAM, settings((3e-2,), steps=25)
    )
    assert outcome.selected["ctc_skipped_train_utterances"] == 3
    assert "3 training utterance(s) are shorter in frames than their CTC target" in caplog.text


def test_asr_head_is_s3prls_and_augments_only_while_training():
    from bench.tasks.superb.asr import SpeechRecognition

    head = SpeechRecognition.ctc_recipe.head.build(13, 768, 32)
    lstm = lambda i, h: 2 * 4 * h * (i + h + 2)  # noqa: E731 - two directions, four gates, two biases
    expected = 13 + (768 * 1024 + 1024) + lstm(1024, 1024) + lstm(2048, 1024) + (2048 * 32 + 32)
    assert sum(p.numel() for p in head.parameters()) == expected
    small = RecurrentHead(project_dim=8, rnn_dim=8, dropout=0.0, spec_augment=SpecAugment()).build(
        2, 16, 5
    )
    frames, lengths = torch.randn(2, 60, 2, 16), torch.tensor([60, 40])
    small.seed(0)
    small.eval()
    assert torch.equal(small(frames, lengths), small(frames, lengths))
    small.train()
    assert not torch.equal(small(frames, lengths), small.eval()(frames, lengths))
