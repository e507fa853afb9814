"""superb.qbe: query by example spoken term detection on QUESST 2014 (SUPERB QbE).

Data (``--data-root DIR``): ``DIR/quesst14Database/`` as the database unpacks (or the
task option ``quesst14_dir``); see ``bench.tasks.corpora.quesst14``.

Items, as s3prl's ``downstream/quesst14_dtw`` reads them: the queries and documents of one
language (``language``, default ``nnenglish``, SUPERB's English subset; ``all`` for every
language) from the ``scoring/language_key_*.lst`` lists; dev = the development queries,
test = the evaluation queries, ``documents`` = the search repository. Audio at -3 dB
(s3prl's sox ``gain -3.0``), resampled from 8 kHz to the upstream's rate.

Protocol (``bench.protocols.dtw``): no training; subsequence DTW between every query and
every document on one layer's frames, s3prl's settings (task options ``distance``,
``minmax_norm``, ``feature_normalization``); the layer with the best dev MTWV is scored
on test. Metrics (``bench.metrics.twv``): MTWV, the main one, and ATWV, against the whole
ground truth of each query set, as ``score-TWV-Cnxe.sh <dir> groundtruth_quesst14_<set>
-10`` scores s3prl's output: queries of the other languages stay in the average as misses.
``stdlist_dir`` writes the detections of the selected layer as
``<dir>/{dev,test}/benchmark.stdlist.xml`` for the official scorer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.data import DataError, Fold, Item, TaskData
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora.quesst14 import (
    CORPUS_DIR,
    SCORING_DIR,
    SUPERB_LANGUAGE,
    ListedAudio,
    read_quesst14,
    verify_quesst14,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE, SuperbTask

DOCUMENTS = "documents"
#: bench split -> QUESST query set
QUERY_SPLITS = {"dev": "dev", "test": "eval"}


class QueryByExampleTask(SuperbTask):
    """A QUESST-layout task: lists, ground truth, DTW settings (shared with demo.qbe)."""

    protocol = "query_by_example"
    # No probe is trained; the runner's probe settings still read a schedule.
    schedule = Schedule(lr_grid=(), max_steps=0)
    audio_gain_db = -3.0

    @dataclass(frozen=True)
    class Options:
        """language (``all``: every one); distance, minmax_norm, feature_normalization:
        s3prl's DTW settings; stdlist_dir: write detections for the official scorer."""

        quesst14_dir: str | None = None
        language: str = SUPERB_LANGUAGE
        distance: str = "cosine_exp"
        minmax_norm: bool = True
        feature_normalization: bool = True
        stdlist_dir: str | None = None

    def root(self) -> Path:
        return self.corpus_dir(self.options.quesst14_dir, (CORPUS_DIR,), SCORING_DIR)

    def language(self) -> str | None:
        return None if self.options.language == "all" else self.options.language

    def corpus_dirs(self) -> list[Path]:
        return [self.root()]

    def verify(self) -> CorpusReport:
        return verify_quesst14(self.root(), self.language())

    def read(self) -> TaskData:
        corpus = read_quesst14(self.root(), self.language())
        splits = {split: _items(corpus.queries[name]) for split, name in QUERY_SPLITS.items()}
        splits[DOCUMENTS] = _items(corpus.documents)
        return TaskData(
            splits=splits,
            folds=(Fold("main", (), ("dev",), ("test",)),),
            extras={"ground_truth": {s: corpus.ground_truth[n] for s, n in QUERY_SPLITS.items()}},
        )

    def load(self) -> TaskData:
        from bench.protocols.dtw import DTWConfig, QbeSetup

        data = self.read()
        durations = self.durations(item.path for item in data.all_items())
        empty = sorted(str(path) for path, seconds in durations.items() if seconds <= 0)
        if empty:
            raise DataError(f"{self.metadata.name}: audio with no samples: {', '.join(empty[:5])}")
        options = self.options
        data.extras["qbe"] = QbeSetup(
            documents=DOCUMENTS,
            ground_truth=data.extras.pop("ground_truth"),
            dtw=DTWConfig(options.distance, options.minmax_norm, options.feature_normalization),
            stdlist_dir=Path(options.stdlist_dir) if options.stdlist_dir else None,
        )
        return data


def _items(entries: list[ListedAudio]) -> list[Item]:
    return [Item(key=e.name, path=e.path, label=None, group=e.language) for e in entries]


@register_task
class QueryByExample(QueryByExampleTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.qbe",
        description="Query by example, QUESST 2014 English, DTW per layer (SUPERB QbE)",
        corpus="QUESST 2014",
        data_layout=f"{CORPUS_DIR}/ (Audio/, dev_queries/, eval_queries/, scoring/)",
        main_metric="mtwv",
        higher_is_better=True,
        license="QUESST 2014 database terms (MediaEval 2014)",
        homepage=HOMEPAGE,
        citation=CITATION,
    )
