"""``demo.units`` and ``demo.units_abx``: the unit tasks on generated espeak-ng speech.

The real ``units.librispeech`` and ``units.librispeech_abx`` on a small corpus bench
generates offline (``bench.tasks.units.demo_corpus``), whose phone alignment is espeak-ng's
own phone timing. Not in the demo suite (see docs/units.md for their run time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.task import TaskMetadata, register_task
from bench.tasks.demo.tasks import GENERATED, DemoData
from bench.tasks.units.librispeech import LibriSpeechUnits
from bench.tasks.units.librispeech_abx import LibriSpeechABX

UNITS_DIR = "librispeech_units"
SPLIT = "dev-clean"
ALIGNMENTS = f"{SPLIT}.tsv"
ITEMS = f"{SPLIT}.item"


class _UnitsDemoData(DemoData):
    """The generated corpus, at ``<demo data root>/librispeech_units``."""

    def corpus_root(self) -> Path:
        return self.root() / UNITS_DIR

    def prepare(self) -> None:
        from bench.tasks.units.demo_corpus import build_units_demo_in_fresh_process

        self.generate(self.corpus_root(), build_units_demo_in_fresh_process)

    def require_data_root(self) -> Path:
        return self.corpus_root()


_DEMO_LAYOUT = f"{UNITS_DIR}/ (LibriSpeech/{SPLIT}/, {ALIGNMENTS}, {ITEMS})"


@register_task
class DemoUnits(_UnitsDemoData, LibriSpeechUnits):
    metadata = TaskMetadata(
        name="demo.units",
        description="Unit quality (PNMI, purities, bitrate) of espeak-ng syllables, espeak's own phone timing",
        corpus="espeak-ng speech of CV syllable sequences in the LibriSpeech layout",
        data_layout=_DEMO_LAYOUT,
        main_metric="pnmi",
        license=GENERATED,
    )

    @dataclass(frozen=True)
    class Options(LibriSpeechUnits.Options):
        num_units: int = 32

    def alignments_path(self) -> Path:
        return Path(self.options.alignments or self.corpus_root() / ALIGNMENTS)


@register_task
class DemoUnitsABX(_UnitsDemoData, LibriSpeechABX):
    metadata = TaskMetadata(
        name="demo.units_abx",
        description="ABX within/across speaker of espeak-ng syllables, tokens from espeak's phone timing",
        corpus="espeak-ng speech of CV syllable sequences in the LibriSpeech layout",
        data_layout=_DEMO_LAYOUT,
        main_metric="abx_within",
        higher_is_better=False,
        license=GENERATED,
    )

    @dataclass(frozen=True)
    class Options(LibriSpeechABX.Options):
        num_units: int = 32

    def item_file_path(self) -> Path:
        return Path(self.options.item_file or self.corpus_root() / ITEMS)
