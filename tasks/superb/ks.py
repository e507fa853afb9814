"""superb.ks: keyword spotting on Speech Commands v0.01 (SUPERB KS).

Data (``--data-root DIR``): ``DIR/speech_commands_v0.01/`` and
``DIR/speech_commands_test_set_v0.01/`` side by side, each archive unpacked into a folder
of its own name (``DIR/speech_commands/`` holding both also works), or the task options
``train_dir`` and ``test_dir``.

Splits and labels (``bench.tasks.corpora.speech_commands``): 12 classes, the 10 keywords,
``_unknown_`` (the other 20 words) and ``_silence_`` (1 s crops of the background noise);
test = the separate test set (3,081 clips). Train and dev come from the first archive by
the ``split`` option's rule:

- ``lists`` (default): the archive's validation_list.txt is dev, testing_list.txt is left
  out, the rest is train. This is bench's own reading of the corpus, not s3prl's.
- ``hash``: what s3prl 0.4.18's recipe does (``expert.py``, ``split_dataset``): it ignores
  the lists and splits by TensorFlow's ``which_set`` on the SHA-1 of each file's speaker
  id (< 10 % dev, < 20 % left out, the rest train), with every background-noise file in
  both train and dev. Same split as ``lists`` on the official archive, whose lists were
  made by this rule; not on trees whose lists were made otherwise.

The rule is recorded with the result (``data.split_rule``).

Two more options switch on s3prl's own handling (the reference profile sets both):

- ``audio``: ``gain`` (default) multiplies by 10^(-3/20) in float32; ``sox`` is s3prl's
  loader, sox ``gain -3.0`` on int32 samples (``bench.audio_effects.SUPERB_KS_EFFECTS``,
  sample for sample). The chain is part of the feature cache's key, so the two never share
  features.
- ``dev``: ``all`` (default) scores all of dev and selects on its balanced accuracy;
  ``resample`` scores what s3prl's ``_get_balanced_dev_dataloader`` does: one draw of
  len(dev) items with replacement, each with weight len(dev) / its class's count
  (``WeightedRandomSampler``; s3prl reseeds before every evaluation, so it is the same draw
  each time), and selects on its plain accuracy. bench's draw is ``torch.multinomial``
  from a generator seeded 1337 (s3prl's seed): the same distribution, not s3prl's very
  draw (its global generator's state also depends on its data loaders). A drawn item is
  the original under the key ``<key>#<n>`` (n-th draw), sharing its cached features.
- ``silence_crops``: 0 (default) keeps the split rule's fixed ``_silence_`` crops; M > 0
  is s3prl's random crops, drawn once (``bench.tasks.corpora.speech_commands``): every
  noise file in train and dev, M random 1 s crops of each for training (a read takes one
  at random), one random crop of each for dev: a cheap approximation of s3prl, which takes
  a fresh crop at every read (about 89,000 reads per file over 200,000 updates); M = 1,000
  is 6,000 s of noise crops to extract, about a tenth of KS's training audio.
- ``training_crops``: ``cached`` (default) trains on the feature cache; ``waveform`` is
  s3prl exactly (the reference profile's): each noise file is one whole training item and
  every training read is encoded in the training loop (protocol
  ``utterance_classification.waveform_crops``, ``bench.frames.crops``), a ``_silence_``
  read as a fresh random ``crop_seconds`` (1 s) window, the clips whole; dev (one random
  crop per noise file, as ``silence_crops``) and test come from the cache. Its price is
  s3prl's: an encoder forward of 32 x 1 s per update, about 1,800 h of encoder input over
  200,000 updates (about 125 passes over KS's training set).

Protocol, from s3prl's ``downstream/speech_commands`` (config.yaml, dataset.py,
expert.py): head Linear(D, 256) -> mean pool -> Linear(12), cross-entropy; Adam, lr 1e-4,
batch 32, 200,000 steps, gradient clipping 1; training batches class-balanced (a
``WeightedRandomSampler`` with weights 1 / class count); audio at -3 dB (sox ``gain
-3.0``); dev accuracy measured on a class-balanced resample of dev every 5,000 steps
(``eval_step``), the best kept. bench sweeps ``SUPERB_LR_GRID`` around that lr, selects
on dev balanced accuracy (the expectation of s3prl's resampled dev accuracy), and stops
early: dev every 1,000 steps, after 10 evaluations without improvement.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.audio_effects import SUPERB_KS_EFFECTS
from bench.corpus_check import CorpusReport
from bench.data import DataError, Item, TaskData
from bench.protocols.utterance import WAVEFORM_CROPS_PROTOCOL
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora.speech_commands import (
    SILENCE,
    TEST_DIR,
    TRAIN_DIR,
    SplitRule,
    read_speech_commands,
    verify_speech_commands,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID, SuperbTask

#: option ``audio``: bench's float gain, or s3prl's sox chain; option ``dev`` (module doc)
AUDIO_CHOICES, DEV_CHOICES = ("gain", "sox"), ("all", "resample")
#: option ``training_crops``: training items from the cache, or read in the training loop
CROPS = ("cached", "waveform")
#: s3prl's ``--seed``, with which it reseeds before every evaluation
S3PRL_SEED = 1337


class KeywordSpottingProtocol:
    """SUPERB KS's probing protocol (see the module doc); demo.keywords shares it."""

    protocol = "utterance_classification"
    balanced_sampling = True
    selection_metric = "balanced_accuracy"
    audio_gain_db = -3.0


@register_task
class KeywordSpotting(KeywordSpottingProtocol, SuperbTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.ks",
        description="Keyword spotting, Speech Commands v0.01, 12 classes (SUPERB KS)",
        corpus="Speech Commands v0.01",
        data_layout=f"{TRAIN_DIR}/ and {TEST_DIR}/ side by side, as the archives unpack",
        main_metric="accuracy",
        license="CC BY 4.0",
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=32, max_steps=200_000, eval_every=1000, patience=10
    )

    @dataclass(frozen=True)
    class Options:
        """train_dir, test_dir: the two unpacked archives, when not under --data-root.
        split: how train and dev are made, ``lists`` or ``hash`` (s3prl's; see above).
        audio: ``gain`` or ``sox``; dev: ``all`` or ``resample`` (s3prl's; see above);
        silence_crops: 0 (the split rule's fixed crops) or M random crops per noise file;
        training_crops: cached | waveform; crop_seconds (module doc)."""

        train_dir: str | None = None
        test_dir: str | None = None
        split: SplitRule = "lists"
        audio: str = "gain"
        dev: str = "all"
        silence_crops: int = 0
        training_crops: str = "cached"
        #: the fresh _silence_ crops' length (``training_crops: waveform``; s3prl: 1 s)
        crop_seconds: float = 1.0

    def __init__(self, data_root: Path | None, options: Mapping[str, Any] | None = None):
        super().__init__(data_root, options)
        if self.options.dev == "resample":  # s3prl's dev-best is on plain accuracy
            self.selection_metric = "accuracy"  # type: ignore[misc]
        if self.options.training_crops == "waveform":  # the encoder in the training loop
            self.protocol = WAVEFORM_CROPS_PROTOCOL  # type: ignore[misc]

    def crops_item(self, item: Item) -> bool:
        """Which training reads ``training_crops: waveform`` crops: s3prl crops only
        ``_silence_`` (its other clips are at most 1 s and read whole)."""
        return item.label == SILENCE

    def audio_effects(self) -> tuple[tuple[str, ...], ...]:
        return SUPERB_KS_EFFECTS if self.options.audio == "sox" else ()

    def train_root(self) -> Path:
        return self.corpus_dir(
            self.options.train_dir,
            (TRAIN_DIR, f"speech_commands/{TRAIN_DIR}"),
            "validation_list.txt",
        )

    def test_root(self) -> Path:
        return self.corpus_dir(
            self.options.test_dir, (TEST_DIR, f"speech_commands/{TEST_DIR}"), SILENCE
        )

    def corpus_dirs(self) -> list[Path]:
        return [self.train_root(), self.test_root()]

    def verify(self) -> CorpusReport:
        options = (("audio", AUDIO_CHOICES), ("dev", DEV_CHOICES), ("training_crops", CROPS))
        for name, choices in options:
            if getattr(self.options, name) not in choices:
                raise DataError(
                    f"{self.metadata.name}: {name} must be one of {', '.join(choices)}, "
                    f"got {getattr(self.options, name)!r}"
                )
        if self.options.silence_crops < 0:
            raise DataError(f"{self.metadata.name}: silence_crops must be 0 or more")
        return verify_speech_commands(self.train_root(), self.test_root(), self.options.split)

    def read(self) -> TaskData:
        return read_speech_commands(
            self.train_root(),
            self.test_root(),
            self.options.split,
            random_crops=self.options.silence_crops,
            whole_noise=self.options.training_crops == "waveform",
        )

    def load(self) -> TaskData:
        data = self.read()
        if self.options.dev == "resample":
            data.splits["dev"] = balanced_resample(data.splits["dev"], S3PRL_SEED)
        return data


def balanced_resample(items: Sequence[Item], seed: int) -> list[Item]:
    """One class-balanced draw of ``len(items)`` with replacement, as s3prl's
    ``WeightedRandomSampler(weights = N / class count, N)`` (module doc)."""
    import torch

    counts = Counter(item.label for item in items)
    weights = torch.tensor([len(items) / counts[item.label] for item in items], dtype=torch.double)
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.multinomial(weights, len(items), replacement=True, generator=generator)
    return [
        dataclasses.replace(items[index], key=f"{items[index].key}#{n}")
        for n, index in enumerate(drawn.tolist())
    ]
