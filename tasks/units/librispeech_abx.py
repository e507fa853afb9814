"""``units.librispeech_abx``: ABX phone discriminability of features and units (Libri-Light).

The Libri-Light / ZeroSpeech 2021 ABX on one LibriSpeech split: the utterances that task
option ``item_file`` (Libri-Light's ``dev-clean.item``...) names, scored by
``bench.protocols.abx`` with zerospeech-libriabx2, on layer ``layer`` and on the units
``bench.tasks.units.librispeech`` would score (``units: none`` skips them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.data import DataError, Fold, TaskData
from bench.task import Schedule, Task, TaskMetadata, register_task
from bench.tasks.corpora.abx_items import read_item_files
from bench.tasks.corpora.librispeech import CORPUS_DIR
from bench.tasks.units.librispeech import fit_items, utterance_items


@register_task
class LibriSpeechABX(Task):
    metadata = TaskMetadata(
        name="units.librispeech_abx",
        description="ABX error within/across speaker of a layer and of units (Libri-Light, ZeroSpeech 2021)",
        corpus="LibriSpeech (dev-clean) with Libri-Light's ABX item files",
        data_layout=f"{CORPUS_DIR}/<split>/<speaker>/<chapter>/<utterance>.flac (openslr.org/12), "
        "plus task option item_file=<dev-clean.item of Libri-Light's ABX_data.tgz>",
        main_metric="abx_within",
        higher_is_better=False,
        license="CC BY 4.0",
        homepage="https://github.com/facebookresearch/libri-light/tree/main/eval",
        citation="Kahn et al. Libri-Light: A Benchmark for ASR with Limited or No Supervision. "
        "ICASSP 2020. Dunbar et al. The Zero Resource Speech Challenge 2021. Interspeech 2021.",
    )
    #: nothing is trained; the schedule only satisfies the runner
    schedule = Schedule(lr_grid=(0.0,), max_steps=0, eval_every=1, patience=1)
    protocol = "abx"

    @dataclass(frozen=True)
    class Options:
        item_file: str | None = None
        split: str = "dev-clean"
        #: the layer scored as continuous features, and clustered by k-means (default: the last)
        layer: int | None = None
        #: auto (the upstream's own, else k-means) | own | kmeans | none (no unit ABX)
        units: str = "auto"
        num_units: int = 100
        fit_split: str | None = None
        fit_utterances: int = 1000
        max_fit_frames: int = 500_000
        #: cosine | euclidean | kl | kl_symmetric (the library's; cosine is Libri-Light's)
        distance: str = "cosine"
        #: none (frame-wise DTW) | mean | hamming
        pooling: str = "none"
        #: also score zrc_abx2's any-context ABX (metrics ending in _any)
        any_context: bool = False
        max_size_group: int = 10
        max_x_across: int = 5

    def item_file_path(self) -> Path:
        if not self.options.item_file:
            raise DataError(
                f"{self.metadata.name} needs task option item_file=PATH: an ABX .item file "
                "such as dev-clean.item of Libri-Light's ABX_data.tgz; see docs/units.md"
            )
        return Path(self.options.item_file)

    def load(self) -> TaskData:
        root = self.require_data_root()
        item_file = self.item_file_path()
        speakers = read_item_files(item_file)
        test, missing = utterance_items(root, self.options.split, list(speakers), str(item_file))
        return TaskData(
            splits={"train": fit_items(root, test, self.options), "test": test},
            folds=(Fold("abx", ("train",), (), ("test",)),),
            extras={"item_file": item_file.resolve(), "items_without_audio": missing},
        )
