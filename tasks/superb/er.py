"""superb.er: emotion recognition on IEMOCAP, five folds (SUPERB ER).

Data (``--data-root DIR``): ``DIR/IEMOCAP_full_release/`` as the licensed archive unpacks
(``SessionN/dialog/EmoEvaluation/*.txt``, ``SessionN/sentences/wav/``), or the task option
``iemocap_dir``. IEMOCAP must be requested from USC SAIL (see ``bench prepare superb.er``).

Labels (``bench.tasks.corpora.iemocap``): neu, hap (with exc merged), ang, sad; 5,531
utterances. Folds: leave one session out, fold N tests on SessionN; its dev is 20% of the
other four sessions' utterances and its train the other 80% (s3prl: ``valid_ratio 0.2``,
a seeded ``random_split`` of the training sessions). bench's 20% is a fixed hash of the
utterance name, so an utterance is dev (or train) in every fold that trains on its session
and each utterance is cached once. Reported: the mean test accuracy over the folds (per
seed), as SUPERB averages its five test accuracies. Task option ``test_sessions`` runs a
subset of folds (e.g. [1] for a quick look; SUPERB needs all five).

Task option ``split: s3prl`` (the reference profile's) makes s3prl's own dev sets: per fold,
``torch.manual_seed(0); random_split`` of ``int(0.8 n)`` / rest over the utterances in the
order of s3prl's ``meta_data/SessionN/train_meta_data.json`` (written by ``os.listdir``, so
not rebuildable from the corpus: give s3prl's ``downstream/emotion/meta_data`` folder as
``s3prl_meta_data``). An utterance is then dev in some folds and train in others; the
splits are the groups of utterances that share a session and a train/dev role in every
fold (``session1.dtttt``: dev in fold 2, train in folds 3-5), so each is still cached once.

Protocol, from s3prl's ``downstream/emotion`` (config.yaml, expert.py): head Linear(D, 256)
-> mean pool -> Linear(4), cross-entropy; Adam, lr 1e-4, batch 4 with 8 accumulation steps
(bench: batch 32, the same mean gradient), 30,000 steps, gradient clipping 1, dev accuracy
every 1,000 steps, the best kept. bench sweeps ``SUPERB_LR_GRID`` and stops early: dev
every 500 steps, after 10 evaluations without improvement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.corpus_check import CorpusReport
from bench.data import DataError, Fold, Item, TaskData
from bench.task import Schedule, TaskMetadata, register_task
from bench.tasks.corpora.iemocap import (
    CORPUS_DIR,
    EMOTIONS,
    SESSIONS,
    read_session,
    verify_iemocap,
)
from bench.tasks.superb.common import CITATION, HOMEPAGE, SUPERB_LR_GRID, SuperbTask


def in_dev(utterance: str, dev_fraction: float) -> bool:
    """A fixed pseudo-random draw per utterance name."""
    digest = hashlib.sha256(utterance.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < dev_fraction


def s3prl_dev_names(meta_data: Path, test_session: int, dev_fraction: float) -> set[str]:
    """Fold ``test_session``'s dev utterances as s3prl draws them (expert.py: a seeded
    ``random_split`` over the order of ``train_meta_data.json``)."""
    import torch

    path = meta_data / f"Session{test_session}" / "train_meta_data.json"
    try:
        entries = json.loads(path.read_text())["meta_data"]
        names = [Path(str(entry["path"])).stem for entry in entries]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{path}: cannot read s3prl's meta data ({error}); s3prl_meta_data must be "
            "s3prl's downstream/emotion/meta_data folder (SessionN/train_meta_data.json)"
        ) from None
    train_count = int((1 - dev_fraction) * len(names))
    # random_split draws randperm(n) from the default generator after manual_seed(0)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(0)).tolist()
    return {names[i] for i in order[train_count:]}


def fold_of(test_session: int) -> Fold:
    others = [s for s in SESSIONS if s != test_session]
    return Fold(
        name=f"fold{test_session}",
        train=tuple(f"session{s}.train" for s in others),
        dev=tuple(f"session{s}.dev" for s in others),
        test=(f"session{test_session}.train", f"session{test_session}.dev"),
    )


@register_task
class EmotionRecognition(SuperbTask):
    __doc__ = __doc__

    metadata = TaskMetadata(
        name="superb.er",
        description="Emotion recognition, IEMOCAP, 4 classes, 5 folds (SUPERB ER)",
        corpus="IEMOCAP",
        data_layout=f"{CORPUS_DIR}/ (Session1/ ... Session5/), licensed by USC SAIL",
        main_metric="accuracy",
        license="IEMOCAP release agreement (USC SAIL); research use, no redistribution",
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    protocol = "utterance_classification"
    schedule = Schedule(
        lr_grid=SUPERB_LR_GRID, batch_size=32, max_steps=30_000, eval_every=500, patience=10
    )

    @dataclass(frozen=True)
    class Options:
        """iemocap_dir: IEMOCAP_full_release; test_sessions: the folds run; dev_fraction."""

        iemocap_dir: str | None = None
        test_sessions: tuple[int, ...] = SESSIONS
        dev_fraction: float = 0.2
        #: hash (bench's: one fixed draw per utterance) or s3prl (per fold, from the
        #: meta data in ``s3prl_meta_data``; see above)
        split: Literal["hash", "s3prl"] = "hash"
        s3prl_meta_data: str | None = None

    def root(self) -> Path:
        return self.corpus_dir(self.options.iemocap_dir, (CORPUS_DIR,), "Session1")

    def corpus_dirs(self) -> list[Path]:
        return [self.root()]

    def verify(self) -> CorpusReport:
        unknown = sorted(set(self.options.test_sessions) - set(SESSIONS))
        if unknown or not self.options.test_sessions:
            raise DataError(
                f"{self.metadata.name}: test_sessions must be some of {list(SESSIONS)}, got {list(self.options.test_sessions)}"
            )
        return verify_iemocap(self.root())

    def read(self) -> TaskData:
        if self.options.split == "s3prl":
            return self._read_s3prl_split()
        if self.options.split != "hash":
            raise DataError(
                f"{self.metadata.name}: split must be hash or s3prl, not {self.options.split!r}"
            )
        splits: dict[str, list[Item]] = {}
        for session in SESSIONS:
            for part in ("train", "dev"):
                splits[f"session{session}.{part}"] = []
            for utterance in read_session(self.root(), session):
                part = "dev" if in_dev(utterance.name, self.options.dev_fraction) else "train"
                splits[f"session{session}.{part}"].append(
                    Item(key=utterance.name, path=utterance.path, label=utterance.emotion)
                )
        return TaskData(
            splits=splits,
            vocabulary={"label": list(EMOTIONS)},
            folds=tuple(fold_of(session) for session in sorted(set(self.options.test_sessions))),
        )

    def _read_s3prl_split(self) -> TaskData:
        if not self.options.s3prl_meta_data:
            raise DataError(
                f"{self.metadata.name}: split s3prl needs s3prl's meta data: set "
                "task_options.superb.er.s3prl_meta_data to s3prl's downstream/emotion/meta_data"
            )
        meta_data = Path(self.options.s3prl_meta_data)
        dev = {s: s3prl_dev_names(meta_data, s, self.options.dev_fraction) for s in SESSIONS}
        splits: dict[str, list[Item]] = {}
        for session in SESSIONS:
            folds = [s for s in SESSIONS if s != session]
            utterances = read_session(self.root(), session)
            for utterance in utterances:
                roles = "".join("d" if utterance.name in dev[f] else "t" for f in folds)
                item = Item(key=utterance.name, path=utterance.path, label=utterance.emotion)
                splits.setdefault(f"session{session}.{roles}", []).append(item)
        return TaskData(
            splits=splits,
            vocabulary={"label": list(EMOTIONS)},
            folds=tuple(
                _s3prl_fold(session, splits) for session in sorted(set(self.options.test_sessions))
            ),
        )


def _s3prl_fold(test_session: int, splits: dict[str, list[Item]]) -> Fold:
    """Fold ``test_session`` over the role groups ``session<s>.<roles>`` (see above)."""
    train, dev, test = [], [], []
    for name in splits:
        session, roles = name.split(".")
        other = int(session.removeprefix("session"))
        if other == test_session:
            test.append(name)
            continue
        folds = [s for s in SESSIONS if s != other]
        (train if roles[folds.index(test_session)] == "t" else dev).append(name)
    return Fold(f"fold{test_session}", tuple(train), tuple(dev), tuple(test))
