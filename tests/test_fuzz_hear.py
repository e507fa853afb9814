"""Property-based fuzzing of the HEAR task-directory parser against an independent oracle.

Hypothesis writes task_metadata.json and split files from valid and arbitrary JSON values;
a small oracle, written from docs/hear.md and not from the parser, says whether each is
valid and what it means. The parser must agree: a ``DataError`` naming the file when the
oracle refuses, the oracle's values when it accepts; never any other exception (a
``TypeError`` from ``"splits": 5`` once stopped HEAR discovery).

The default run tries a fast sample (``EXAMPLES``); ``-m soak`` runs the campaign
(``SOAK_EXAMPLES``).
"""

from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hear_fakes import event_dir, multiclass_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.data import DataError
from bench.hear.metrics import HEAR_METRICS
from bench.hear.taskdir import read_task_dir, read_task_metadata

EXAMPLES, SOAK_EXAMPLES = 80, 4000
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SOAK = settings(FAST, max_examples=SOAK_EXAMPLES, derandomize=False)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
NEAR_MISSES = st.sampled_from(
    ["accuracy", "top1_acc", 5, "5", 0, -1, 2.5, True, None, "", [], [5], ["top1_acc"], {"a": 1}]
)
METRICS = sorted(HEAR_METRICS)
SPLIT_MODES = ["trainvaltest", "new_split_kfold", "presplit_kfold"]
METADATA_KEYS = [
    "task_name", "version", "mode", "embedding_type", "prediction_type", "split_mode", "nfolds",
    "splits", "evaluation", "sample_duration", "use_scoring_for_early_stopping",
    "evaluation_params",
]  # fmt: skip


@st.composite
def valid_metadata(draw) -> dict[str, Any]:
    """A task_metadata.json that docs/hear.md allows, optional fields drawn in or out."""
    embedding = draw(st.sampled_from(["scene", "event"]))
    prediction = (
        "multilabel"
        if embedding == "event"
        else draw(st.sampled_from(["multiclass", "multilabel"]))
    )
    metrics = [name for name in METRICS if HEAR_METRICS[name].kind == embedding]
    split_mode = draw(st.sampled_from(SPLIT_MODES))
    raw: dict[str, Any] = {
        "task_name": draw(st.sampled_from(["esc50", "mytask"])),
        "version": draw(st.sampled_from(["v1.0.0", "hear2021"])),
        "embedding_type": embedding,
        "prediction_type": prediction,
        "split_mode": split_mode,
        "evaluation": draw(st.lists(st.sampled_from(metrics), min_size=1, max_size=2)),
    }
    splits = ["train", "valid", "test"]
    if split_mode != "trainvaltest":
        raw["nfolds"] = draw(st.integers(2, 6))
        splits = [f"fold{i:02d}" for i in range(raw["nfolds"])]
    optional = {
        "mode": st.sampled_from(["full", "5h", None]),
        "splits": st.just(splits),
        "sample_duration": st.floats(0.01, 200) | st.integers(1, 10),
        "use_scoring_for_early_stopping": st.booleans(),
        "evaluation_params": st.fixed_dictionaries(
            {},
            optional={
                "event_postprocessing_grid": st.dictionaries(
                    st.sampled_from(["median_filter_ms", "min_duration"]),
                    st.lists(st.integers(0, 300) | st.floats(0, 300), min_size=1, max_size=2),
                    max_size=2,
                ),
                "task_specific_param_grid": st.dictionaries(
                    st.sampled_from(["max_epochs", "lr"]), st.lists(st.integers(1, 9), max_size=2)
                ),
            },
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            raw[key] = draw(strategy)
    return raw


@st.composite
def mutated_metadata(draw) -> dict[str, Any]:
    """Half the time valid; else one field deleted, or set to a near miss or any JSON."""
    raw = dict(draw(valid_metadata()))
    if draw(st.booleans()):
        key = draw(st.sampled_from(METADATA_KEYS))
        action = draw(st.sampled_from(["delete", "near miss", "json"]))
        if action == "delete":
            raw.pop(key, None)
        else:
            raw[key] = draw(NEAR_MISSES if action == "near miss" else JSON)
    return raw


METADATA = mutated_metadata()


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def is_name(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def oracle_metadata(raw: dict[str, Any]) -> dict[str, Any] | None:
    """What the documented format says the metadata means, or None if it is invalid."""
    get = raw.get
    if get("embedding_type") not in ("scene", "event") or not isinstance(
        get("embedding_type"), str
    ):
        return None
    if not isinstance(get("prediction_type"), str) or get("prediction_type") not in (
        "multiclass",
        "multilabel",
    ):
        return None
    if get("embedding_type") == "event" and get("prediction_type") != "multilabel":
        return None
    split_mode = get("split_mode")
    if not isinstance(split_mode, str) or split_mode not in (
        "trainvaltest",
        "new_split_kfold",
        "presplit_kfold",
    ):
        return None
    evaluation = get("evaluation")
    if not isinstance(evaluation, list) or not evaluation or not all(map(is_name, evaluation)):
        return None
    if any(
        name not in HEAR_METRICS or HEAR_METRICS[name].kind != get("embedding_type")
        for name in evaluation
    ):
        return None
    grid_params = get("evaluation_params")
    if grid_params is None:
        grid_params = {}
    if not isinstance(grid_params, dict):
        return None
    if not is_name(get("task_name")) or not is_name(get("version")):
        return None
    if "mode" in raw and get("mode") is not None and not is_name(get("mode")):
        return None
    if split_mode == "trainvaltest":
        splits = ("train", "valid", "test")
    else:
        nfolds = get("nfolds")
        if type(nfolds) is not int or nfolds < 2:
            return None
        splits = tuple(f"fold{i:02d}" for i in range(nfolds))
    if "splits" in raw:
        listed = get("splits")
        if not isinstance(listed, list) or not all(map(is_name, listed)):
            return None
        if tuple(listed) != splits:
            return None
    duration = get("sample_duration")
    if duration is not None and (not is_number(duration) or duration <= 0):
        return None
    early = get("use_scoring_for_early_stopping")
    if early is not None and not isinstance(early, bool):
        return None
    post = grid_params.get("event_postprocessing_grid")
    if post is not None:
        if not isinstance(post, dict):
            return None
        for key, values in post.items():
            if key not in ("median_filter_ms", "min_duration"):
                return None
            if not isinstance(values, list) or not values or not all(map(is_number, values)):
                return None
    task_grid = grid_params.get("task_specific_param_grid")
    if task_grid is None:
        task_grid = {}
    if not isinstance(task_grid, dict) or not all(isinstance(v, list) for v in task_grid.values()):
        return None
    return {
        "task_name": get("task_name"),
        "version": get("version"),
        "mode": get("mode"),
        "embedding_type": get("embedding_type"),
        "prediction_type": get("prediction_type"),
        "split_mode": split_mode,
        "splits": splits,
        "evaluation": tuple(evaluation),
        "sample_duration": None if duration is None else float(duration),
        "use_scoring_for_early_stopping": True if early is None else early,
        "postprocessing_grid": post,
        "task_param_grid": task_grid,
    }


def metadata_property(raw: dict[str, Any]) -> None:
    expected = oracle_metadata(raw)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "task_metadata.json"
        path.write_text(json.dumps(raw))
        try:
            parsed = read_task_metadata(Path(folder))
        except DataError as error:
            assert str(error).startswith(f"{path}"), error
            assert expected is None, f"refused valid metadata: {error}"
            return
    assert expected is not None, f"accepted invalid metadata {raw}"
    assert {key: getattr(parsed, key) for key in expected} == expected


def duplicate_key_property(raw: dict[str, Any], position: int, value: Any) -> None:
    keys = list(raw)
    if not keys:
        return
    key = keys[position % len(keys)]
    text = json.dumps(raw)
    text = text[:-1] + (", " if len(text) > 2 else "") + f"{json.dumps(key)}: {json.dumps(value)}}}"
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "task_metadata.json").write_text(text)
        with pytest.raises(DataError, match="is given twice"):
            read_task_metadata(Path(folder))


# -- split files --------------------------------------------------------------------------------

_DIRS: dict[str, Path] = {}


def task_dir(kind: str) -> Path:
    """One fake task directory per kind for the whole module (hypothesis reruns a test many
    times; each example rewrites train.json only)."""
    if kind not in _DIRS:
        root = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _DIRS[kind] = (
            multiclass_dir(root, per_class=2)
            if kind == "scene"
            else event_dir(root, files=3, sample_duration=6.0)
        )
        (_DIRS[kind] / "train.original.json").write_text((_DIRS[kind] / "train.json").read_text())
    return _DIRS[kind]


VOCABULARY = {"scene": ["bark", "bell", "horn", "rain"], "event": ["cough", "door", "keys"]}


def file_names(kind: str) -> list[str]:
    return list(json.loads((task_dir(kind) / "train.original.json").read_text()))


@st.composite
def valid_split(draw, kind: str) -> dict[str, Any]:
    """A train.json the format allows: some of the audio files, each with valid labels."""
    names = draw(st.lists(st.sampled_from(file_names(kind)), min_size=1, unique=True))
    labels = st.sampled_from(VOCABULARY[kind])
    if kind == "scene":
        return {name: [draw(labels)] for name in names}
    content = {}
    for name in names:
        events = []
        for _ in range(draw(st.integers(0, 3))):
            start = draw(st.floats(0, 5000) | st.integers(0, 5000))
            length = draw(st.floats(0, 2000))
            events.append({"label": draw(labels), "start": start, "end": start + length})
        content[name] = events
    return content


@st.composite
def split_content(draw, kind: str) -> dict[str, Any]:
    """Half the time valid; else one file's labels damaged, or a bad file name added."""
    content = dict(draw(valid_split(kind)))
    if draw(st.booleans()):
        return content
    name = draw(st.sampled_from(sorted(content)))
    damage = draw(st.sampled_from(["labels", "event", "seconds", "file name"]))
    if damage == "file name":
        content[draw(st.sampled_from(["../x.wav", "/etc/passwd", "absent.wav", ""]))] = ["bark"]
    elif damage == "seconds" and kind == "event":  # every time divided by 1000
        content = {
            key: [{**e, "start": e["start"] / 1000, "end": e["end"] / 1000} for e in events]
            for key, events in content.items()
        }
    elif damage == "event" and kind == "event" and content[name]:
        event = dict(content[name][0])
        event[draw(st.sampled_from(["label", "start", "end"]))] = draw(NEAR_MISSES | JSON)
        content[name] = [event, *content[name][1:]]
    else:
        other = st.lists(st.sampled_from(["bark", "meow", "cough"]), max_size=2)
        content[name] = draw(NEAR_MISSES | JSON | other)
    return content


def oracle_labels(kind: str, content: Any) -> dict[str, Any] | None:
    """Each file's labels as the format defines them, or None if the split is invalid."""
    vocabulary = VOCABULARY[kind]
    names = set(file_names(kind))
    if not isinstance(content, dict) or not content or not set(content) <= names:
        return None
    labels: dict[str, Any] = {}
    for name, value in content.items():
        if not isinstance(value, list):
            return None
        if kind == "scene":
            if any(isinstance(v, dict) for v in value) or len(value) != 1:  # multiclass
                return None
            if str(value[0]) not in vocabulary:
                return None
            labels[name] = (str(value[0]),)
            continue
        events = []
        for event in value:
            if not isinstance(event, dict) or not {"label", "start", "end"} <= set(event):
                return None
            start, end = event["start"], event["end"]
            if not (is_number(start) and is_number(end)) or start < 0 or end < 0 or end < start:
                return None
            if str(event["label"]) not in vocabulary:
                return None
            events.append((start / 1000, end / 1000, str(event["label"])))
        labels[name] = sorted(events)
    ends = [end for events in labels.values() if kind == "event" for _, end, _ in events]
    if ends and max(ends) * 1000 <= 6.0:  # event times in seconds (docs/hear.md)
        return None
    return labels


def split_property(kind: str, content: dict[str, Any]) -> None:
    folder = task_dir(kind)
    path = folder / "train.json"
    path.write_text(json.dumps(content))
    expected = oracle_labels(kind, content)
    try:
        data = read_task_dir(folder)
    except DataError as error:
        assert str(error).startswith(str(path)), error
        assert expected is None, f"refused a valid split: {error}"
        return
    assert expected is not None, f"accepted an invalid split {content}"
    assert {item.key: item.label for item in data.splits["train"]} == expected


# -- the sample in the default run, and the campaigns ------------------------------------------


@FAST
@given(raw=METADATA)
def test_metadata_is_refused_or_read_as_documented(raw):
    metadata_property(raw)


@FAST
@given(raw=METADATA, position=st.integers(0, 20), value=JSON)
def test_a_duplicated_metadata_key_is_refused(raw, position, value):
    duplicate_key_property(raw, position, value)


@FAST
@given(content=split_content("scene"))
def test_scene_split_files_are_refused_or_read_as_documented(content):
    split_property("scene", content)


@FAST
@given(content=split_content("event"))
def test_event_split_files_are_refused_or_read_as_documented(content):
    split_property("event", content)


@pytest.mark.soak
@SOAK
@given(raw=METADATA)
def test_metadata_campaign(raw):
    metadata_property(raw)


@pytest.mark.soak
@SOAK
@given(content=split_content("scene"))
def test_scene_split_campaign(content):
    split_property("scene", content)


@pytest.mark.soak
@SOAK
@given(content=split_content("event"))
def test_event_split_campaign(content):
    split_property("event", content)
