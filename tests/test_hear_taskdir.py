"""The hear-preprocess task-directory reader: every task shape, and each malformed directory."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from _unprivileged import call_unprivileged, make_unreadable, public_tmp_dir
from hear_fakes import event_dir, kfold_dir, multiclass_dir, multilabel_dir

from bench.data import DataError
from bench.hear.taskdir import audio_sample_rate, hear_folds, read_task_dir, read_task_metadata


def test_scene_multiclass_dir(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=3)
    data = read_task_dir(task_dir)
    assert set(data.splits) == {"train", "valid", "test"}
    assert data.vocabulary == {"label": ["bark", "bell", "horn", "rain"]}
    item = data.splits["valid"][0]
    assert item.key == "valid_bark_0.wav"
    assert item.path == task_dir / "16000" / "valid" / "valid_bark_0.wav"
    assert item.label == ("bark",)
    assert [(f.name, f.train, f.dev, f.test) for f in data.folds] == [
        ("main", ("train",), ("valid",), ("test",))
    ]
    hear = data.extras["hear"]
    assert (hear.versioned_name, hear.primary_metric, hear.is_kfold) == (
        "toyscene-v1-full",
        "top1_acc",
        False,
    )
    assert data.extras["sample_rate"] == 16000


def test_scene_multilabel_dir_keeps_empty_and_multiple_labels(tmp_path: Path) -> None:
    data = read_task_dir(multilabel_dir(tmp_path, items=30))
    sizes = {len(item.label) for item in data.all_items()}
    assert 0 in sizes and max(sizes) >= 2
    assert data.extras["hear"].prediction_type == "multilabel"


def test_event_dir_reads_events_in_seconds(tmp_path: Path) -> None:
    task_dir = event_dir(tmp_path, files=2)
    raw = json.loads((task_dir / "train.json").read_text())["train_0.wav"]
    data = read_task_dir(task_dir)
    events = data.splits["train"][0].label
    assert events == sorted((e["start"] / 1000, e["end"] / 1000, e["label"]) for e in raw)
    assert all(onset < offset for onset, offset, _ in events)


def test_kfold_dir_rotates_test_and_valid_folds(tmp_path: Path) -> None:
    data = read_task_dir(kfold_dir(tmp_path, folds=5, per_class=1))
    assert [(f.name, f.dev, f.test) for f in data.folds] == [
        ("fold00", ("fold01",), ("fold00",)),
        ("fold01", ("fold02",), ("fold01",)),
        ("fold02", ("fold03",), ("fold02",)),
        ("fold03", ("fold04",), ("fold03",)),
        ("fold04", ("fold00",), ("fold04",)),
    ]
    assert data.folds[0].train == ("fold02", "fold03", "fold04")
    assert data.folds[4].train == ("fold01", "fold02", "fold03")


def test_hear_folds_sort_fold_names() -> None:
    folds = hear_folds(["fold02", "fold00", "fold01"], kfold=True)
    assert [(f.test, f.dev, f.train) for f in folds] == [
        (("fold00",), ("fold01",), ("fold02",)),
        (("fold01",), ("fold02",), ("fold00",)),
        (("fold02",), ("fold00",), ("fold01",)),
    ]


def test_audio_folder_prefers_16k_else_nearest(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=1)
    for rate in ("22050", "48000"):
        shutil.copytree(task_dir / "16000", task_dir / rate)
    assert audio_sample_rate(task_dir) == 16000
    shutil.rmtree(task_dir / "16000")
    assert audio_sample_rate(task_dir) == 22050
    assert audio_sample_rate(task_dir, preferred=44100) == 48000
    data = read_task_dir(task_dir)
    assert data.splits["train"][0].path.parent == task_dir / "22050" / "train"


# -- malformed directories --------------------------------------------------------------------


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def first_key(path: Path) -> str:
    return next(iter(json.loads(path.read_text())))


def rename_first(split: str, new_name: str) -> Callable[[Path], None]:
    def mutate(task_dir: Path) -> None:
        path = task_dir / f"{split}.json"
        edit_json(path, lambda c: c.__setitem__(new_name, c.pop(first_key(path))))

    return mutate


def set_first_label(split: str, value: object) -> Callable[[Path], None]:
    def mutate(task_dir: Path) -> None:
        path = task_dir / f"{split}.json"
        edit_json(path, lambda c: c.__setitem__(first_key(path), value))

    return mutate


def set_metadata(**values: object) -> Callable[[Path], None]:
    return lambda task_dir: edit_json(task_dir / "task_metadata.json", lambda c: c.update(values))


def remove(relative: str) -> Callable[[Path], None]:
    def mutate(task_dir: Path) -> None:
        target = task_dir / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return mutate


def duplicate_train_file_in_test(task_dir: Path) -> None:
    rename_first("test", "train_bark_0.wav")(task_dir)
    shutil.copy(task_dir / "16000/train/train_bark_0.wav", task_dir / "16000/test/")


SCENE_ERRORS = {
    "missing metadata": (remove("task_metadata.json"), "task_metadata.json: missing"),
    "missing vocabulary": (remove("labelvocabulary.csv"), "labelvocabulary.csv: missing"),
    "missing split file": (remove("valid.json"), "valid.json: missing"),
    "missing audio file": (
        remove("16000/test/test_horn_1.wav"),
        "test.json: 1 of 8 audio files are missing",
    ),
    "no audio folder": (remove("16000"), "no audio folder"),
    "label not in vocabulary": (
        set_first_label("train", ["meow"]),
        "label 'meow' is not in labelvocabulary.csv",
    ),
    "absolute path": (
        rename_first("train", "/etc/passwd"),
        "'/etc/passwd' escapes the task directory",
    ),
    "parent path": (
        rename_first("train", "../../secret.wav"),
        "'../../secret.wav' escapes the task directory",
    ),
    "event labels on a scene task": (
        set_first_label("train", [{"label": "bark", "start": 0, "end": 10}]),
        "has event labels but the task is a scene task",
    ),
    "two labels, multiclass": (
        set_first_label("valid", ["bark", "bell"]),
        "a multiclass task needs exactly one",
    ),
    "labels not a list": (set_first_label("valid", "bark"), "labels must be a list"),
    "empty split": (lambda d: (d / "test.json").write_text("{}"), "split 'test' has no files"),
    "invalid json": (
        lambda d: (d / "train.json").write_text("{oops"),
        "train.json: not valid JSON",
    ),
    "unknown embedding type": (
        set_metadata(embedding_type="frame"),
        "'embedding_type' is \"frame\"",
    ),
    "unknown split mode": (set_metadata(split_mode="random"), "'split_mode' is \"random\""),
    "splits disagree with split mode": (
        set_metadata(splits=["fold00", "fold01"]),
        "does not match split_mode",
    ),
    "kfold without nfolds": (set_metadata(split_mode="new_split_kfold"), "needs 'nfolds' >= 2"),
    "unknown metric": (set_metadata(evaluation=["top5_acc"]), "unknown metric 'top5_acc'"),
    "event metric on a scene task": (
        set_metadata(evaluation=["event_onset_200ms_fms"]),
        "metric 'event_onset_200ms_fms' needs a event task, not scene",
    ),
    "missing metadata key": (
        lambda d: edit_json(d / "task_metadata.json", lambda c: c.pop("prediction_type")),
        "missing 'prediction_type'",
    ),
    "vocabulary gap": (
        lambda d: (d / "labelvocabulary.csv").write_text("idx,label\n0,bark\n2,bell\n"),
        "idx must run 0..1",
    ),
    "vocabulary repeat": (
        lambda d: (d / "labelvocabulary.csv").write_text("idx,label\n0,bark\n1,bark\n"),
        "a label is listed twice",
    ),
    "same file in two splits": (
        duplicate_train_file_in_test,
        "'train_bark_0.wav' is in both train and test",
    ),
}


@pytest.mark.parametrize("case", sorted(SCENE_ERRORS))
def test_malformed_scene_dir_fails_with_the_file_and_problem(tmp_path: Path, case: str) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=2)
    mutate, message = SCENE_ERRORS[case]
    mutate(task_dir)
    with pytest.raises(DataError, match=re.escape(message)):
        read_task_dir(task_dir)


EVENT_ERRORS = {
    "scene labels on an event task": (
        set_first_label("train", ["cough"]),
        "event tasks need {label, start, end} entries",
    ),
    "event ends before it starts": (
        set_first_label("train", [{"label": "cough", "start": 500, "end": 100}]),
        "event ends (100.0 ms) before it starts (500.0 ms)",
    ),
    "event time not a number": (
        set_first_label("train", [{"label": "cough", "start": "0", "end": 100}]),
        "event time '0' is not a time in ms",
    ),
    "event label not in vocabulary": (
        set_first_label("valid", [{"label": "sneeze", "start": 0, "end": 100}]),
        "label 'sneeze' is not in labelvocabulary.csv",
    ),
    "multiclass event task": (
        set_metadata(prediction_type="multiclass"),
        "event tasks must be multilabel",
    ),
    "scene metric on an event task": (
        set_metadata(evaluation=["top1_acc"]),
        "metric 'top1_acc' needs a scene task, not event",
    ),
}


@pytest.mark.parametrize("case", sorted(EVENT_ERRORS))
def test_malformed_event_dir_fails_with_the_file_and_problem(tmp_path: Path, case: str) -> None:
    task_dir = event_dir(tmp_path, files=2)
    mutate, message = EVENT_ERRORS[case]
    mutate(task_dir)
    with pytest.raises(DataError, match=re.escape(message)):
        read_task_dir(task_dir)


def test_errors_name_the_file(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=1)
    set_first_label("train", ["meow"])(task_dir)
    with pytest.raises(DataError) as error:
        read_task_dir(task_dir)
    assert str(task_dir / "train.json") in str(error.value)


def test_metadata_overrides_are_parsed(tmp_path: Path) -> None:
    task_dir = event_dir(
        tmp_path,
        files=1,
        use_scoring_for_early_stopping=False,
        evaluation_params={
            "event_postprocessing_grid": {"median_filter_ms": [150], "min_duration": [50]},
            "task_specific_param_grid": {"max_epochs": [50]},
        },
    )
    hear = read_task_metadata(task_dir)
    assert hear.use_scoring_for_early_stopping is False
    assert hear.postprocessing_grid == {"median_filter_ms": [150], "min_duration": [50]}
    assert hear.task_param_grid == {"max_epochs": [50]}


# -- types, units, duplicate keys, links, encodings -------------------------------------------

TYPE_ERRORS = {
    "evaluation as a string": (
        {"evaluation": "top1_acc"},
        """'evaluation' must be a list of names such as ["top1_acc"], got "top1_acc\"""",
    ),
    "evaluation as a number": (
        {"evaluation": 5},
        """'evaluation' must be a list of names such as ["top1_acc"], got 5""",
    ),
    "splits as a number": (
        {"splits": 5},
        """'splits' must be a list of names such as ["train", "valid", "test"], got 5""",
    ),
    "sample_duration as text": (
        {"sample_duration": "abc"},
        """'sample_duration' must be a positive number of seconds, got "abc\"""",
    ),
    "negative sample_duration": (
        {"sample_duration": -1},
        "'sample_duration' must be a positive number of seconds, got -1",
    ),
    "task_name as a number": ({"task_name": 3}, "'task_name' must be a non-empty string, got 3"),
    "version as null": ({"version": None}, "'version' must be a non-empty string, got null"),
    "mode as a list": ({"mode": ["full"]}, """'mode' must be a non-empty string, got ["full"]"""),
    "embedding_type as a list": (
        {"embedding_type": ["scene"]},
        """'embedding_type' is ["scene"]; expected one of ['scene', 'event']""",
    ),
    "early stopping flag as text": (
        {"use_scoring_for_early_stopping": "no"},
        """'use_scoring_for_early_stopping' must be true or false, got "no\"""",
    ),
    "nfolds as a boolean": (
        {"split_mode": "new_split_kfold", "nfolds": True},
        "new_split_kfold needs 'nfolds' >= 2, got true",
    ),
    "evaluation_params as a list": (
        {"evaluation_params": []},
        "'evaluation_params' must be a JSON object, got []",
    ),
    "param grid value not a list": (
        {"evaluation_params": {"task_specific_param_grid": {"max_epochs": 50}}},
        "'evaluation_params.task_specific_param_grid': 'max_epochs' must be a list, got 50",
    ),
}


@pytest.mark.parametrize("case", sorted(TYPE_ERRORS))
def test_metadata_types_are_checked_naming_file_and_field(tmp_path: Path, case: str) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=1)
    values, message = TYPE_ERRORS[case]
    set_metadata(**values)(task_dir)
    with pytest.raises(DataError) as error:
        read_task_metadata(task_dir)
    assert str(error.value) == f"{task_dir / 'task_metadata.json'}: {message}"


def test_postprocessing_grid_keys_and_values_are_checked(tmp_path: Path) -> None:
    task_dir = event_dir(tmp_path, files=1)
    for grid, message in (
        ({"median_filter": [150]}, "unknown key 'median_filter'"),
        ({"min_duration": ["50"]}, """'min_duration' must be a list of milliseconds, got ["50"]"""),
        ({"min_duration": []}, "'min_duration' must be a list of milliseconds, got []"),
    ):
        set_metadata(evaluation_params={"event_postprocessing_grid": grid})(task_dir)
        with pytest.raises(DataError, match=re.escape(message)):
            read_task_metadata(task_dir)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=1)
    split = task_dir / "train.json"
    name = first_key(split)
    text = split.read_text()
    split.write_text(text.replace("{", f'{{"{name}": ["bell"], ', 1))
    with pytest.raises(DataError) as error:
        read_task_dir(task_dir)
    assert str(error.value) == f"{split}: key '{name}' is given twice"
    metadata = task_dir / "task_metadata.json"
    metadata.write_text(metadata.read_text().replace("{", '{"evaluation": ["mAP"], ', 1))
    with pytest.raises(DataError, match="key 'evaluation' is given twice"):
        read_task_metadata(task_dir)


def test_event_times_in_seconds_are_refused(tmp_path: Path) -> None:
    task_dir = event_dir(tmp_path, files=2, sample_duration=6.0)
    read_task_dir(task_dir)  # milliseconds: fine
    valid = task_dir / "valid.json"
    edit_json(
        valid,
        lambda content: [
            event.update(start=event["start"] / 1000, end=event["end"] / 1000)
            for events in content.values()
            for event in events
        ],
    )
    with pytest.raises(DataError) as error:
        read_task_dir(task_dir)
    assert str(error.value).startswith(f"{valid}: every event ends by ")
    assert "the times look like seconds; HEAR label files give start and end in milliseconds" in (
        str(error.value)
    )


def test_links_inside_the_task_dir_work_and_links_out_are_refused(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path / "tasks", per_class=1)
    audio = task_dir / "16000" / "train"
    inside = audio / "train_bark_0.wav"
    shared = task_dir / "shared.wav"
    inside.rename(shared)
    inside.symlink_to(Path("..") / ".." / "shared.wav")  # relative, stays inside
    read_task_dir(task_dir)
    outside = tmp_path / "elsewhere.wav"
    shared.rename(outside)
    inside.unlink()
    inside.symlink_to(outside)
    with pytest.raises(DataError) as error:
        read_task_dir(task_dir)
    assert f"{inside} is a link to {outside}, outside the task directory" in str(error.value)
    inside.unlink()
    inside.symlink_to("/etc/passwd")
    with pytest.raises(DataError, match="is a link to /etc/passwd, outside the task directory"):
        read_task_dir(task_dir)


def test_bad_bytes_and_broken_rows_name_the_file(tmp_path: Path) -> None:
    task_dir = multiclass_dir(tmp_path, per_class=1)
    vocabulary = task_dir / "labelvocabulary.csv"
    vocabulary.write_text("idx,label\n0,bark\n1\n2,horn\n3,rain\n")
    with pytest.raises(DataError, match=re.escape(f"{vocabulary}, line 3: expected 'idx,label'")):
        read_task_dir(task_dir)
    vocabulary.write_text("idx,label\n0,bark\none,bell\n")
    with pytest.raises(DataError, match=re.escape("line 3: idx 'one' is not a whole number")):
        read_task_dir(task_dir)
    vocabulary.write_bytes(b"idx,label\n0,bark\n1,b\xffll\n")
    with pytest.raises(DataError, match=re.escape(f"{vocabulary}, line 3: not UTF-8 text")):
        read_task_dir(task_dir)
    metadata = task_dir / "task_metadata.json"
    metadata.write_bytes(b"\xff" + metadata.read_bytes())
    with pytest.raises(DataError, match=re.escape(f"{metadata}, line 1: not UTF-8 text")):
        read_task_metadata(task_dir)
    metadata.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object, got a list"):
        read_task_metadata(task_dir)


@pytest.fixture
def public_tmp():
    yield from public_tmp_dir()


def test_an_unreadable_audio_folder_is_an_error(public_tmp: Path) -> None:
    task_dir = multiclass_dir(public_tmp, per_class=1)
    make_unreadable(task_dir / "16000" / "valid")
    outcome = call_unprivileged(read_task_dir, task_dir)
    assert outcome.error_type == "DataError"
    assert outcome.message.startswith(
        f"{task_dir / 'valid.json'}: 4 of 4 audio files in {task_dir / '16000' / 'valid'} "
        "cannot be read, e.g. valid_bark_0.wav (permission denied)"
    )


def test_the_documented_examples_are_valid(tmp_path: Path) -> None:
    """docs/hear.md's JSON examples: the metadata ones parse, the label files are JSON."""
    docs = (Path(__file__).parents[1] / "docs" / "hear.md").read_text()
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", docs, re.S)]
    metadata = [block for block in blocks if "task_name" in block]
    assert len(metadata) == 2 and len(blocks) == 4
    for i, content in enumerate(metadata):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "task_metadata.json").write_text(json.dumps(content))
        read_task_metadata(tmp_path / str(i))
