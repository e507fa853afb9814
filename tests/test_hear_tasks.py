"""HEAR task registry: the 19 tasks, data-root lookup, the generic task, suite discovery, grid."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hear_fakes import event_dir, kfold_dir, multiclass_dir, multilabel_dir

from bench.data import DataError
from bench.hear.grid import full_grid, sample_grid
from bench.hear.metrics import HEAR_METRICS
from bench.task import SUITES, TASKS, TaskRun
from bench.tasks.hear import HEAR_TASKS, discover, discover_small

OFFICIAL_DIRS = {
    "beehive_states_fold0-v2-full",
    "beijing_opera-v1.0-hear2021-full",
    "dcase2016_task2-hear2021-full",
    "esc50-v2.0.0-full",
    "fsd50k-v1.0-full",
    "gunshot_triangulation-v1.0-full",
    "libricount-v1.0.0-hear2021-full",
    "maestro-v3.0.0-5h",
    "mridangam_stroke-v1.5-full",
    "mridangam_tonic-v1.5-full",
    "nsynth_pitch-v2.2.3-50h",
    "nsynth_pitch-v2.2.3-5h",
    "speech_commands-v0.0.2-5h",
    "speech_commands-v0.0.2-full",
    "tfds_crema_d-1.0.0-full",
    "tfds_gtzan-1.0.0-full",
    "tfds_gtzan_music_speech-1.0.0-full",
    "vocal_imitation-v1.1.3-full",
    "vox_lingua_top10-hear2021-full",
}


def test_the_19_hear_2021_tasks_are_registered() -> None:
    assert {spec.dir_name for spec in HEAR_TASKS} == OFFICIAL_DIRS
    names = {name for name in TASKS.names() if name.startswith("hear.")}
    assert names == {spec.name for spec in HEAR_TASKS}
    assert {
        "hear.esc50",
        "hear.speech_commands_5h",
        "hear.nsynth_pitch_5h",
        "hear.dcase2016_task2",
        "hear.maestro_5h",
    } <= names
    for spec in HEAR_TASKS:
        task = TASKS.get(spec.name)
        metric = HEAR_METRICS[spec.primary_metric]
        assert metric.kind == spec.embedding_type and metric.higher_is_better
        assert task.metadata.main_metric == spec.primary_metric
        assert (
            task.protocol == {"scene": "hear.scene", "event": "hear.timestamp"}[spec.embedding_type]
        )


def test_schedules_follow_hear_eval_kit() -> None:
    esc50 = TASKS.get("hear.esc50").schedule
    assert (esc50.max_steps, esc50.eval_every, esc50.patience, esc50.batch_size) == (
        500,
        3,
        20,
        1024,
    )
    assert TASKS.get("hear.dcase2016_task2").schedule.eval_every == 10
    maestro = TASKS.get("hear.maestro_5h").schedule
    assert (maestro.max_steps, maestro.eval_every) == (50, 1)


def test_small_tasks_are_those_under_three_hours() -> None:
    small = {spec.short for spec in HEAR_TASKS if spec.small}
    assert small == {
        "dcase2016_task2",
        "beijing_opera",
        "esc50",
        "gunshot_triangulation",
        "gtzan_music_speech",
        "mridangam_stroke",
        "mridangam_tonic",
    }
    assert set(SUITES.get("hear-small").tasks) == {f"hear.{short}" for short in small}


@pytest.mark.parametrize("layout", ["direct", "tasks folder", "task dir itself"])
def test_data_root_layouts(tmp_path: Path, layout: str) -> None:
    parent = tmp_path / "tasks" if layout == "tasks folder" else tmp_path
    task_dir = kfold_dir(parent, per_class=1)
    root = task_dir if layout == "task dir itself" else tmp_path
    data = TASKS.get("hear.esc50")(root).load()
    assert len(data.folds) == 5
    assert data.splits["fold00"][0].path.is_relative_to(task_dir)


def test_missing_task_dir_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no task directory esc50-v2\.0\.0-full in .* or .*tasks"):
        TASKS.get("hear.esc50")(tmp_path).load()
    with pytest.raises(DataError, match="needs --data-root"):
        TASKS.get("hear.esc50")(None).load()


def test_a_directory_of_another_task_is_refused(tmp_path: Path) -> None:
    task_dir = kfold_dir(tmp_path, per_class=1)
    metadata = task_dir / "task_metadata.json"
    metadata.write_text(
        json.dumps({**json.loads(metadata.read_text()), "evaluation": ["mAP", "top1_acc"]})
    )
    with pytest.raises(DataError, match=r"not hear\.esc50"):
        TASKS.get("hear.esc50")(tmp_path).load()


def test_generic_task_takes_its_identity_from_the_directory(tmp_path: Path) -> None:
    scene = TASKS.get("hear")(multiclass_dir(tmp_path, per_class=1), {"sample_rate": 16000})
    assert (scene.protocol, scene.metadata.main_metric, scene.metadata.corpus) == (
        "hear.scene",
        "top1_acc",
        "toyscene-v1-full",
    )
    events = TASKS.get("hear")(
        event_dir(
            tmp_path,
            name="office-v2-small",
            files=1,
            evaluation_params={"task_specific_param_grid": {"max_epochs": [7]}},
        )
    )
    assert (events.protocol, events.metadata.main_metric) == (
        "hear.timestamp",
        "event_onset_200ms_fms",
    )
    assert (events.schedule.max_steps, events.schedule.eval_every) == (7, 3)
    assert TASKS.get("hear").protocol == "hear.scene"  # the class is untouched
    assert len(scene.load().splits) == 3


def test_generic_task_applies_the_builtin_dcase_schedule(tmp_path: Path) -> None:
    task = TASKS.get("hear")(event_dir(tmp_path, name="dcase2016_task2-hear2021-small", files=1))
    assert task.schedule.eval_every == 10


def test_generic_task_refuses_grid_overrides_it_cannot_honour(tmp_path: Path) -> None:
    task_dir = event_dir(
        tmp_path, files=1, evaluation_params={"task_specific_param_grid": {"lr": [1e-3, 1e-4]}}
    )
    with pytest.raises(DataError, match="task_specific_param_grid 'lr'"):
        TASKS.get("hear")(task_dir)


def test_generic_task_needs_a_task_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a HEAR task directory"):
        TASKS.get("hear")(tmp_path).load()


def test_discovery_maps_known_dirs_to_their_tasks_and_others_to_hear(tmp_path: Path) -> None:
    kfold_dir(tmp_path / "tasks", per_class=1)
    multilabel_dir(tmp_path / "tasks", items=3)
    unknown = multiclass_dir(tmp_path, per_class=1)
    renamed = event_dir(tmp_path, name="my-dcase-copy", files=1)
    metadata = json.loads((renamed / "task_metadata.json").read_text())
    metadata.update(task_name="dcase2016_task2", version="hear2021", mode="full")
    (renamed / "task_metadata.json").write_text(json.dumps(metadata))
    (tmp_path / "notes").mkdir()
    runs = discover(tmp_path)
    assert sorted((run.task, run.data_root.name) for run in runs) == [
        ("hear", "toyscene-v1-full"),
        ("hear.dcase2016_task2", "my-dcase-copy"),
        ("hear.esc50", "esc50-v2.0.0-full"),
        ("hear.fsd50k", "fsd50k-v1.0-full"),
    ]
    for run in runs:  # every run loads from the root it was given
        assert TASKS.get(run.task)(run.data_root).load().splits
    assert discover(unknown) == [TaskRun("hear", unknown)]
    assert [run.task for run in discover_small(tmp_path)] == ["hear.dcase2016_task2", "hear.esc50"]


def test_discovery_of_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no HEAR task directory"):
        discover(tmp_path)
    multilabel_dir(tmp_path, items=3)
    with pytest.raises(DataError, match="hear-small: none of"):
        discover_small(tmp_path)


def test_suite_points_at_its_discovery_function() -> None:
    suite = SUITES.get("hear")
    module, function = suite.discover.split(":")
    assert module == "bench.tasks.hear" and function == "discover"
    assert len(suite.tasks) == 19


def test_grid_matches_hear_eval_kit() -> None:
    """The reference's PARAM_GRID through scikit-learn's ParameterGrid, then
    ``seed_everything(42)`` + ``random.shuffle``; init functions stand in as names."""
    from sklearn.model_selection import ParameterGrid

    param_grid = {
        "hidden_layers": [1, 2],
        "hidden_dim": [1024],
        "dropout": [0.1],
        "lr": [3.2e-3, 1e-3, 3.2e-4, 1e-4],
        "patience": [20],
        "max_epochs": [500],
        "check_val_every_n_epoch": [3],
        "batch_size": [1024],
        "hidden_norm": ["BatchNorm1d"],
        "norm_after_activation": [False],
        "embedding_norm": ["Identity"],
        "initialization": ["xavier_uniform", "xavier_normal"],
        "optim": ["Adam"],
    }
    confs = list(ParameterGrid(param_grid))
    as_points = [(c["hidden_layers"], c["initialization"], c["lr"]) for c in confs]
    ours = full_grid()
    assert [(p.hidden_layers, p.initialization, p.lr) for p in ours] == as_points
    random.seed(42)
    random.shuffle(confs)
    expected = [(c["hidden_layers"], c["initialization"], c["lr"]) for c in confs[:8]]
    assert [(p.hidden_layers, p.initialization, p.lr) for p in sample_grid(ours)] == expected
    assert len(set(sample_grid(ours))) == 8


def test_copied_task_dir_still_loads(tmp_path: Path) -> None:
    original = multilabel_dir(tmp_path / "a", items=3)
    copy = shutil.copytree(original, tmp_path / "b" / original.name)
    assert TASKS.get("hear.fsd50k")(copy.parent).load().extras["hear"].task_name == "fsd50k"
