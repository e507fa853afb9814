"""superb.asv: speaker verification on VoxCeleb1 (SUPERB ASV).

Data (``--data-root DIR``): ``DIR/VoxCeleb1/`` as for superb.sid (``iden_split.txt``, wavs
under ``dev/wav/`` and ``test/wav/`` or ``wav/``) plus the trial list ``veri_test2.txt``.

Splits, as s3prl's ``VoxCeleb1SV`` corpus builds them: train = every utterance in
iden_split.txt of a speaker absent from the trial list (the 1,211 VoxCeleb1 dev speakers,
148,642 utterances), labelled by speaker; test = the utterances the trial list names.
The trial list is ``veri_test2.txt``, VoxCeleb1-O cleaned (37,611 trials); option
``trial_list: veri_test.txt`` gives the original list (37,720 trials, a few with label
errors). s3prl's ``voxceleb1_test_v2.txt`` is *not* the cleaned list: it has the original
list's 37,720 trials (18,860 target) over 4,715 utterances, and it is what SUPERB scores
(docs/protocols.md, ASV).

Audio (option ``audio``): ``gain`` (bench's ``fast``) is -3 dB as a float multiply, and
training utterances shorter than ``min_seconds`` (2.0) as recorded are dropped (no
VoxCeleb1 utterance is under 4 s, so none is on the real corpus). ``sox`` (the reference
profile's) is s3prl's loader: every read, train and test, goes through its sox chain
``gain -3.0, silence 1 0.1 0.1% -1 0.1 0.1%`` (``bench.audio_effects.SUPERB_ASV_EFFECTS``,
sample for sample), so the encoder sees the audio with its silences removed (its own
feature cache: the chain is part of the key), and training utterances of at most
``min_seconds`` x 16,000 = 32,000 samples *after* the chain are dropped (s3prl:
``length > vad_config.min_sec`` kept). The post-chain lengths are computed once per file
and kept in the corpus manifest (about 30 ms per 8 s utterance on one core: on the order
of an hour for VoxCeleb1's 153,516 files, once), as s3prl keeps them in ``.wav_lengths``.

Training crops (option ``training_crops``): ``frames`` (``fast``) crops random 8 s windows
of the cached frames, computed with the whole utterance as context; ``waveform`` (the
reference profile's) is s3prl's: every training read takes a fresh random window of at
most 128,000 samples of the (effected) waveform and the encoder runs on it in the training
loop (``bench.protocols.verification.WaveformCrops``), so it sees only the window. That
costs an encoder forward of up to 50 x 8 s of audio per update (s3prl's cost: about 22,000
h of encoder input over 200,000 updates); the test trials are still embedded from the cache
of whole utterances, as s3prl embeds whole utterances.

Protocol (s3prl 0.4.18 ``problem/asv/superb_asv.py`` and ``nn/speaker_model.py``; the
protocol itself is ``bench.protocols.verification``): x-vector on the weighted sum of
frames, AM-softmax (s = 30, m = 0.4), random 8 s training crops, AdamW lr 1e-4 (torch's
default weight decay 0.01), batch 10 with 5 accumulation steps (bench: batch 50), 200,000
steps, gradient clipping 1,000, audio at -3 dB; cosine scoring; EER (%) and minDCF
(p_target 0.01, C_miss = C_fa = 1). s3prl's ExponentialLR (gamma 0.9) is not applied.

Checkpoint selection (option ``checkpoint_selection``, recorded in the result's
``selected``):

- ``test`` (default, SUPERB's protocol): VoxCeleb1 has no dev set; SUPERB saves a
  checkpoint every 20,000 steps, scores each on the test trials and reports the best EER.
  bench's ``fast`` profile evaluates on the test trials every 5,000 steps, keeps the best,
  stops after 5 evaluations without improvement, and selects the learning rate the same
  way. The ``reference`` profile (bench.profiles) is SUPERB's rule: one learning rate
  (1e-4), 200,000 steps without early stopping, the test trials scored every 20,000 steps
  (the 10 checkpoints), the best reported. Optimistic by construction; it is what SUPERB
  numbers mean.
- ``dev_speakers``: ``dev_speakers`` (40, as many as the test set) training speakers are
  held out (a fixed hash order) and their utterances make dev trials, one same-speaker and
  one different-speaker trial per utterance (seeded); checkpoints and learning rate are
  selected on the dev EER, and test is scored once.

Sequence cache: the x-vector reads frames, so ASV fills the frame-level cache (float16,
every layer). For VoxCeleb1 (about 352 h) that is about 20 GB for FBANK but about 1.3 TB
for a 13-layer, 768-dimensional model (HuBERT/WavLM Base), far over
``extract.max_sequence_cache_gb`` (50 GB); bench refuses such a run rather than fill the
disk. Raise the limit on a machine with the disk for it; caching fewer layers is not
implemented, and ``training_crops: waveform`` encodes training reads online but the cache
still holds every utterance (only the test trials would need theirs).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.audio_effects import SUPERB_ASV_EFFECTS
from bench.corpus_check import CorpusReport
from bench.data import DataError, Fold, Item, TaskData
from bench.protocols.verification import WAVEFORM_CROPS_PROTOCOL
from bench.task import EFFECTED_DURATIONS, Schedule, TaskMetadata, register_task
from bench.tasks.corpora.voxceleb1 import (
    CORPUS_DIR,
    TRIAL_LIST,
    WavIndex,
    find_trial_list,
    read_iden_split,
    read_trials,
    speaker_of,
    verify_voxceleb1,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE
from bench.tasks.superb.sid import VOXCELEB_LICENSE, VoxCeleb1Options, VoxCeleb1Task

SELECTIONS = ("test", "dev_speakers")
#: option ``audio``: bench's float gain, or s3prl's sox chain (module doc)
AUDIO_CHOICES = ("gain", "sox")
#: option ``training_crops``: random 8 s windows of cached frames, or of the waveform
#: before the encoder (module doc)
TRAINING_CROPS = ("frames", "waveform")
#: the rate s3prl's chain runs at (its ``rate 16000``): the post-chain lengths' unit
EFFECTS_RATE = 16_000
#: Each probe trains an x-vector for up to 200k steps: three rates around s3prl's 1e-4.
ASV_LR_GRID = (1e-5, 1e-4, 1e-3)


def held_out_speakers(speakers: set[str], count: int) -> set[str]:
    """A fixed pseudo-random choice of ``count`` speakers."""
    order = sorted(speakers, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    return set(order[:count])


def speaker_trials(items: list[Item], seed: int = 0) -> list[tuple[int, str, str]]:
    """One target and one non-target trial per utterance (targets need two utterances)."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[str]] = defaultdict(list)
    for item in items:
        by_speaker[item.label].append(item.key)
    speakers = sorted(by_speaker)
    trials = []
    for speaker in speakers:
        others = [s for s in speakers if s != speaker]
        for key in by_speaker[speaker]:
            same = [k for k in by_speaker[speaker] if k != key]
            if same:
                trials.append((1, key, rng.choice(same)))
            if others:
                trials.append((0, key, rng.choice(by_speaker[rng.choice(others)])))
    return trials


@register_task
class SpeakerVerification(VoxCeleb1Task):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.asv",
        description="Speaker verification, VoxCeleb1-O trials, x-vector + AM-softmax (SUPERB ASV)",
        corpus="VoxCeleb1",
        data_layout=f"{CORPUS_DIR}/ (iden_split.txt, veri_test2.txt; dev/wav/ and test/wav/, or wav/)",
        main_metric="eer",
        higher_is_better=False,
        license=VOXCELEB_LICENSE,
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    protocol = "speaker_verification"
    schedule = Schedule(
        lr_grid=ASV_LR_GRID,
        batch_size=50,
        max_steps=200_000,
        eval_every=5000,
        patience=5,
        optimizer="adamw",
        weight_decay=0.01,
    )
    audio_gain_db = -3.0

    @dataclass(frozen=True)
    class Options(VoxCeleb1Options):
        """trial_list; checkpoint_selection: test (SUPERB) | dev_speakers; dev_speakers;
        min_seconds: shortest training utterance kept; audio: gain | sox; training_crops:
        frames | waveform (module doc)."""

        trial_list: str = TRIAL_LIST
        checkpoint_selection: str = "test"
        dev_speakers: int = 40
        min_seconds: float = 2.0
        audio: str = "gain"
        training_crops: str = "frames"

    def __init__(self, data_root: Path | None, options: Mapping[str, Any] | None = None):
        super().__init__(data_root, options)
        if self.options.training_crops == "waveform":  # the encoder in the training loop
            self.protocol = WAVEFORM_CROPS_PROTOCOL  # type: ignore[misc]

    def audio_effects(self) -> tuple[tuple[str, ...], ...]:
        return SUPERB_ASV_EFFECTS if self.options.audio == "sox" else ()

    def verify(self) -> CorpusReport:
        if self.options.audio not in AUDIO_CHOICES:
            raise DataError(
                f"{self.metadata.name}: audio must be one of {', '.join(AUDIO_CHOICES)}, "
                f"got {self.options.audio!r}"
            )
        if self.options.training_crops not in TRAINING_CROPS:
            raise DataError(
                f"{self.metadata.name}: training_crops must be one of {', '.join(TRAINING_CROPS)}, "
                f"got {self.options.training_crops!r}"
            )
        if self.options.checkpoint_selection == "dev_speakers" and self.options.dev_speakers < 2:
            raise DataError(f"{self.metadata.name}: dev trials need dev_speakers >= 2")
        if self.options.checkpoint_selection not in SELECTIONS:
            raise DataError(
                f"{self.metadata.name}: checkpoint_selection must be one of {', '.join(SELECTIONS)}, "
                f"got {self.options.checkpoint_selection!r}"
            )
        return verify_voxceleb1(self.root(), self.options.trial_list)

    def read(self) -> TaskData:
        index = WavIndex(self.root())
        trials = read_trials(find_trial_list(self.root(), self.options.trial_list))
        test_keys = sorted({key for _, *pair in trials for key in pair})
        test_speakers = {speaker_of(key) for key in test_keys}
        train = [
            Item(key=relative, path=index.path(relative), label=speaker_of(relative))
            for _, relative in read_iden_split(self.split_file())
            if speaker_of(relative) not in test_speakers
        ]
        test = [Item(key=key, path=index.path(key), label=speaker_of(key)) for key in test_keys]
        return TaskData(splits={"train": train, "test": test}, extras={"trials": {"test": trials}})

    def load(self) -> TaskData:
        data = self.read()
        if self.audio_effects():
            train = self._effected(data)
        else:
            durations = self.durations(item.path for item in data.splits["train"])
            train = [
                i for i in data.splits["train"] if durations[i.path] >= self.options.min_seconds
            ]
        fold = Fold("main", ("train",), (), ("test",))
        if self.options.checkpoint_selection == "dev_speakers":
            held_out = held_out_speakers({i.label for i in train}, self.options.dev_speakers)
            dev = [i for i in train if i.label in held_out]
            train = [i for i in train if i.label not in held_out]
            data.splits["dev"] = dev
            data.extras["trials"]["dev"] = speaker_trials(dev)
            fold = Fold("main", ("train",), ("dev",), ("test",))
        data.splits["train"] = train
        data.vocabulary = {"label": sorted({i.label for i in train})}
        data.folds = (fold,)
        return data

    def _effected(self, data: TaskData) -> list[Item]:
        """The training items s3prl keeps after its sox chain (more than ``min_seconds`` x
        16,000 samples); every item's post-chain duration goes to the data's extras."""
        items = data.all_items()
        lengths = self.effected_samples(item.path for item in items)
        empty = sorted(str(i.path) for i in data.splits["test"] if lengths[i.path] == 0)
        if empty:
            raise DataError(
                f"{self.metadata.name}: {len(empty)} test utterance(s) have no audio left after "
                f"the sox chain (silence removal), e.g. {empty[0]}"
            )
        data.extras[EFFECTED_DURATIONS] = {
            item.audio_ref: lengths[item.path] / EFFECTS_RATE for item in items
        }
        minimum = round(self.options.min_seconds * EFFECTS_RATE)
        return [i for i in data.splits["train"] if lengths[i.path] > minimum]

    def effected_samples(self, paths: Iterable[Path]) -> dict[Path, int]:
        """Each file's length in samples after ``audio_effects``, from the corpus manifest
        (the chain runs once per file; the manifest is saved when ``prepare`` ran)."""
        manifest = self._manifest()
        lengths = manifest.effected_samples(sorted(set(paths)), self.audio_effects())
        if self.corpus_report is not None:
            manifest.save(self.corpus_report)
        return lengths
