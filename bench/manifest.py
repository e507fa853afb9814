"""A corpus manifest: the corpus report and every audio file's duration, kept on disk.

Reading the headers of a large corpus (VoxCeleb1: 153,516 files) takes minutes; a task
that needs durations (e.g. to plan crops) reads them once. Each file is remembered with
its size and modification time, so a changed file is read again and nothing stale is
used. The manifest is rewritten only when its content changes, atomically.

Where: ``<paths.data>/manifests/<task>-<hash of the corpus dirs>.json`` (the runner and
``bench prepare`` give the task ``Task.manifest_dir``), so read-only corpus trees work
and nothing is written next to the data. Without a manifest dir (a task built directly,
as in library use) the durations are read every time and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.audio import audio_info
from bench.corpus_check import CorpusReport
from bench.fileio import atomic_write_text, remove_stale_temporaries

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1


def manifest_path(directory: Path, task: str, corpus_dirs: Sequence[Path]) -> Path:
    """One manifest per task and corpus location."""
    where = "\n".join(str(Path(d).resolve()) for d in corpus_dirs)
    return Path(directory) / f"{task}-{hashlib.sha256(where.encode()).hexdigest()[:12]}.json"


class CorpusManifest:
    """Durations of a corpus's audio files (by absolute path) and its last corpus report."""

    def __init__(self, file: Path | None):
        self.file = file
        if file is not None:
            remove_stale_temporaries(file.parent)  # of runs killed while writing one
        self._stored: dict[str, Any] = self._read(file) if file is not None else {}
        self._durations: dict[str, list[float | int]] = dict(self._stored.get("audio", {}))
        #: per sox chain (``bench.audio_effects.chain_name``): each file's length in samples
        #: after it, as [size, mtime, samples]
        self._effected: dict[str, dict[str, list[int]]] = {
            chain: dict(lengths) for chain, lengths in self._stored.get("effects", {}).items()
        }

    @staticmethod
    def _read(file: Path) -> dict[str, Any]:
        try:
            stored = json.loads(file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable corpus manifest %s (%s)", file, error)
            return {}
        return stored if stored.get("format") == MANIFEST_FORMAT else {}

    def durations(self, paths: Sequence[Path]) -> dict[Path, float]:
        """Each file's duration in seconds; headers are read only for new or changed files."""
        durations = {}
        for path in paths:
            stat = os.stat(path)
            stamp = [stat.st_size, stat.st_mtime_ns]
            known = self._durations.get(str(path))
            if known is None or known[:2] != stamp:
                known = [*stamp, audio_info(path).duration]
                self._durations[str(path)] = known
            durations[Path(path)] = float(known[2])
        return durations

    def effected_samples(
        self, paths: Sequence[Path], effects: Sequence[Sequence[str]]
    ) -> dict[Path, int]:
        """Each file's length in samples (at the chain's rate) after the sox chain
        ``effects`` (``bench.audio_effects``); the chain runs only for new or changed files
        (s3prl's ASV loader keeps the same lengths, in its ``.wav_lengths`` cache)."""
        from bench.audio_effects import EffectsLoader, chain_name, chain_rate

        rate = chain_rate(effects)
        if rate is None:
            raise ValueError(f"the sox chain {chain_name(effects)!r} names no rate")
        loader = EffectsLoader(rate, effects)
        known_lengths = self._effected.setdefault(chain_name(effects), {})
        lengths = {}
        for path in paths:
            stat = os.stat(path)
            stamp = [stat.st_size, stat.st_mtime_ns]
            known = known_lengths.get(str(path))
            if known is None or known[:2] != stamp:
                known = [*stamp, len(loader.load_at_chain_rate(path))]
                known_lengths[str(path)] = known
            lengths[Path(path)] = int(known[2])
        return lengths

    def save(self, report: CorpusReport) -> None:
        """Write the manifest when its content changed (never when it has no file)."""
        if self.file is None:
            return
        content = {
            "format": MANIFEST_FORMAT,
            "corpus_report": report.to_dict(),
            "audio": dict(sorted(self._durations.items())),
        }
        if any(self._effected.values()):
            content["effects"] = {
                chain: dict(sorted(lengths.items()))
                for chain, lengths in sorted(self._effected.items())
                if lengths
            }
        if content != self._stored:
            atomic_write_text(self.file, json.dumps(content, indent=0))
            self._stored = content
            log.info("wrote corpus manifest %s", self.file)
