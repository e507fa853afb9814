"""What SUPERB's content tasks (PR, ASR) share: LibriSpeech splits by role, verified then read.

``--data-root DIR`` holds ``DIR/LibriSpeech/<split>/`` as the archives unpack (or the task
option ``librispeech_dir``). Each role (train, dev, test, and ASR's second test set) lists
LibriSpeech splits; their utterances are that role's items, labelled with the transcript.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from bench.corpus_check import CorpusReport
from bench.data import Item, TaskData
from bench.tasks.corpora.librispeech import CORPUS_DIR, read_split, verify_librispeech
from bench.tasks.superb.common import SuperbTask


class LibriSpeechTask(SuperbTask):
    """A SUPERB task on LibriSpeech. Its ``Options`` carry ``librispeech_dir`` and a tuple of
    split names per role of ``roles``."""

    #: TaskData split -> the Options field that lists its LibriSpeech splits
    roles: ClassVar[dict[str, str]] = {"train": "train", "dev": "dev", "test": "test"}
    #: roles scored only when their splits are on disk
    optional_roles: ClassVar[tuple[str, ...]] = ()
    options: Any

    def librispeech_root(self) -> Path:
        marker = self.options.dev[0] if self.options.dev else ""
        return self.corpus_dir(self.options.librispeech_dir, (CORPUS_DIR,), marker)

    def corpus_dirs(self) -> list[Path]:
        return [self.librispeech_root()]

    def role_splits(self) -> dict[str, tuple[str, ...]]:
        """Role -> its LibriSpeech splits; optional roles only when all are present."""
        splits = {}
        for role, field in self.roles.items():
            names = tuple(getattr(self.options, field))
            if role in self.optional_roles and not all(
                (self.librispeech_root() / n).is_dir() for n in names
            ):
                continue
            if names:
                splits[role] = names
        return splits

    def verify(self) -> CorpusReport:
        return verify_librispeech(
            self.librispeech_root(), [n for names in self.role_splits().values() for n in names]
        )

    def read(self) -> TaskData:
        splits: dict[str, list[Item]] = {}
        for role, names in self.role_splits().items():
            splits[role] = [
                item for name in names for item in read_split(self.librispeech_root(), name)
            ]
            self.transcription().check(splits[role], f"{role} ({', '.join(names)})")
        return TaskData(splits=splits)

    def transcription(self) -> Any:  # pragma: no cover - every task implements it
        """The task's ``bench.ctc.text`` transcription (vocabulary, units, scores)."""
        raise NotImplementedError
