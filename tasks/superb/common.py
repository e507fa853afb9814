"""What the SUPERB tasks share: the learning-rate grid, finding a corpus folder, and
verify-then-load.

``SuperbTask.prepare`` verifies the corpus tree (``bench.corpus_check``), refuses it with
the full report when a required file is missing, then reads every audio file's duration
through the corpus manifest (``bench.manifest``: once per corpus, remembered under
``<paths.data>/manifests/``) and records the report there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.data import TaskData
from bench.manifest import CorpusManifest, manifest_path
from bench.task import Task

#: Five learning rates on a log scale (SUPERB swept about five per task), holding s3prl's
#: defaults (1e-4 for KS, IC, SID, ER).
SUPERB_LR_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
HOMEPAGE = "https://superbbenchmark.org"
CITATION = (
    "Yang et al., SUPERB: Speech processing Universal PERformance Benchmark, Interspeech 2021"
)


def find_corpus_dir(
    data_root: Path | None, option: str | None, names: Sequence[str], marker: str
) -> Path | None:
    """The corpus folder: the task option when set; else the first ``DATA_ROOT/<name>``
    holding ``marker``; else ``DATA_ROOT`` itself when it holds it; else
    ``DATA_ROOT/<names[0]>`` (which the corpus check then reports missing)."""
    if option:
        return Path(option).expanduser()
    if data_root is None:
        return None
    for name in names:
        if (data_root / name / marker).exists():
            return data_root / name
    if (data_root / marker).exists():
        return data_root
    return data_root / names[0]


class SuperbTask(Task):
    """A SUPERB task on a real corpus: verified before it is read."""

    def corpus_dirs(self) -> list[Path]:  # pragma: no cover - every task implements it
        """The folders the task reads (they name its manifest)."""
        raise NotImplementedError

    def verify(self) -> CorpusReport:  # pragma: no cover - every task implements it
        raise NotImplementedError

    def read(self) -> TaskData:  # pragma: no cover - every task implements it
        """The corpus as its lists define it."""
        raise NotImplementedError

    def load(self) -> TaskData:
        return self.read()

    def prepare(self) -> None:
        report = self.verify()
        self.corpus_report = report
        report.raise_for_errors()
        manifest = self._manifest()
        audio = {item.path for item in self.read().all_items()}
        durations = manifest.durations(sorted(audio))
        report.ok(f"audio: {len(durations):,} files, {sum(durations.values()) / 3600:.2f} h")
        manifest.save(report)

    def durations(self, paths: Iterable[Path]) -> dict[Path, float]:
        """Durations in seconds, from the corpus manifest (headers read once per file)."""
        return self._manifest().durations(sorted(set(paths)))

    def _manifest(self) -> CorpusManifest:
        if self.manifest_dir is None:
            return CorpusManifest(None)
        return CorpusManifest(
            manifest_path(self.manifest_dir, self.metadata.name, self.corpus_dirs())
        )

    def corpus_dir(self, option: str | None, names: Sequence[str], marker: str) -> Path:
        """``find_corpus_dir`` for this task; without an option it needs ``--data-root``."""
        found = find_corpus_dir(None if option else self.require_data_root(), option, names, marker)
        assert found is not None
        return found
