"""The 19 HEAR 2021 tasks, as data.

Sources: the HEAR benchmark's task table (hearbenchmark.com/hear-tasks.html: embedding type,
predictor type, split method, clip duration and count, primary metric) and hear-preprocess's
task configurations (task names, versions, modes, evaluation lists, MAESTRO's and DCASE's
task-specific schedules). Directory names are ``<task_name>-<version>-<mode>`` as
hear-preprocess writes them and the HEAR 2021 archives ship them.

Beehive States exists as two directories (``beehive_states_fold0``: train hive 1, test hive 3;
``fold1`` the reverse); the benchmark's task is fold0. fold1 runs through the generic ``hear``
task (suite discovery picks it up like any unlisted HEAR directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SMALL_TASK_HOURS = 3.0
"""Tasks with at most this much audio are "small": quick to embed and probe (a smoke subset)."""


@dataclass(frozen=True)
class HearTaskSpec:
    """One HEAR 2021 task.

    short: registered as ``hear.<short>``.
    dir_name: the hear-preprocess task directory.
    folds: k for k-fold tasks, None for train/valid/test.
    hours: total audio (clips x clip duration; FSD50K's clips vary, 108 h in all).
    max_epochs, eval_every: hear-eval-kit's schedule where it differs from 500 / 3.
    """

    short: str
    title: str
    dir_name: str
    embedding_type: Literal["scene", "event"]
    prediction_type: Literal["multiclass", "multilabel"]
    primary_metric: str
    folds: int | None
    clips: int
    hours: float
    max_epochs: int = 500
    eval_every: int = 3

    @property
    def name(self) -> str:
        return f"hear.{self.short}"

    @property
    def task_name(self) -> str:
        return self.dir_name.split("-", 1)[0]

    @property
    def small(self) -> bool:
        return self.hours <= SMALL_TASK_HOURS

    @property
    def split_method(self) -> str:
        return f"{self.folds}-fold" if self.folds else "train/valid/test"


def _scene(
    short: str,
    title: str,
    dir_name: str,
    folds: int | None,
    clips: int,
    hours: float,
    metric: str = "top1_acc",
    prediction: Literal["multiclass", "multilabel"] = "multiclass",
) -> HearTaskSpec:
    """A scene task (all but DCASE and MAESTRO); most are multiclass, scored by accuracy."""
    return HearTaskSpec(short, title, dir_name, "scene", prediction, metric, folds, clips, hours)


HEAR_TASKS: tuple[HearTaskSpec, ...] = (
    HearTaskSpec(
        "dcase2016_task2",
        "DCASE 2016 Task 2 (office sound event detection)",
        "dcase2016_task2-hear2021-full",
        "event",
        "multilabel",
        "event_onset_200ms_fms",
        folds=None,
        clips=72,
        hours=2.4,
        eval_every=10,
    ),
    _scene(
        "nsynth_pitch_5h",
        "NSynth Pitch 5h",
        "nsynth_pitch-v2.2.3-5h",
        None,
        5000,
        5.56,
        "pitch_acc",
    ),
    _scene(
        "nsynth_pitch_50h",
        "NSynth Pitch 50h",
        "nsynth_pitch-v2.2.3-50h",
        None,
        49060,
        54.5,
        "pitch_acc",
    ),
    _scene(
        "speech_commands_5h", "Speech Commands 5h", "speech_commands-v0.0.2-5h", None, 22890, 6.36
    ),
    _scene(
        "speech_commands_full",
        "Speech Commands (full)",
        "speech_commands-v0.0.2-full",
        None,
        100503,
        27.9,
    ),
    _scene(
        "beehive_states",
        "Beehive States",
        "beehive_states_fold0-v2-full",
        None,
        576,
        96.0,
        "aucroc",
    ),
    _scene(
        "beijing_opera",
        "Beijing Opera Percussion",
        "beijing_opera-v1.0-hear2021-full",
        5,
        236,
        0.31,
    ),
    _scene("crema_d", "CREMA-D", "tfds_crema_d-1.0.0-full", 5, 7438, 10.3),
    _scene("esc50", "ESC-50", "esc50-v2.0.0-full", 5, 2000, 2.78),
    _scene("fsd50k", "FSD50K", "fsd50k-v1.0-full", None, 51185, 108.0, "mAP", "multilabel"),
    _scene(
        "gunshot_triangulation",
        "Gunshot Triangulation",
        "gunshot_triangulation-v1.0-full",
        7,
        88,
        0.04,
    ),
    _scene("gtzan_genre", "GTZAN Genre", "tfds_gtzan-1.0.0-full", 10, 1000, 8.33),
    _scene(
        "gtzan_music_speech",
        "GTZAN Music Speech",
        "tfds_gtzan_music_speech-1.0.0-full",
        10,
        128,
        1.07,
    ),
    _scene("libricount", "LibriCount", "libricount-v1.0.0-hear2021-full", 5, 5720, 7.94),
    HearTaskSpec(
        "maestro_5h",
        "MAESTRO 5h (piano note onsets)",
        "maestro-v3.0.0-5h",
        "event",
        "multilabel",
        "event_onset_50ms_fms",
        folds=5,
        clips=185,
        hours=6.17,
        max_epochs=50,
        eval_every=1,
    ),
    _scene("mridangam_stroke", "Mridangam Stroke", "mridangam_stroke-v1.5-full", 5, 6977, 1.57),
    _scene("mridangam_tonic", "Mridangam Tonic", "mridangam_tonic-v1.5-full", 5, 6977, 1.57),
    _scene(
        "vocal_imitation", "Vocal Imitations", "vocal_imitation-v1.1.3-full", 3, 5601, 17.5, "mAP"
    ),
    _scene(
        "vox_lingua_top10", "VoxLingua107 Top 10", "vox_lingua_top10-hear2021-full", 5, 972, 5.03
    ),
)

SPECS_BY_DIR = {spec.dir_name: spec for spec in HEAR_TASKS}
