"""Read a hear-preprocess task directory into a ``TaskData``.

A task directory, as hear-preprocess writes it and the HEAR 2021 archives ship it::

    <task_name>-<version>-<mode>/          e.g. esc50-v2.0.0-full
        task_metadata.json                 the task's configuration (see HearTaskMetadata)
        labelvocabulary.csv                idx,label: class index -> label
        train.json valid.json test.json    or fold00.json ... foldNN.json: file -> labels
        16000/<split>/<file>.wav           audio, one folder per sample rate

Label files map each audio file name to a list of labels (scene tasks) or a list of
``{"label", "start", "end"}`` events in milliseconds (event tasks). Items come back with
``label`` = tuple of label names (scene) or a list of ``(onset_s, offset_s, label)``
(event), keyed by file name (unique over the task, as hear-preprocess guarantees).

Folds follow hear-eval-kit: one fold for ``trainvaltest`` (train / valid / test); for k
folds, fold i is the test set, fold i+1 (mod k) the validation set and the rest train.

Audio is read from the ``16000`` folder when there is one, else from the rate nearest to
the preferred one (higher on a tie: downsampling loses less); bench resamples on load.
Anything malformed raises ``DataError`` naming the file and the problem.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from bench.corpus_files import list_subdirs, read_text, unreadable_files
from bench.data import DataError, Fold, Item, TaskData
from bench.hear.metrics import HEAR_METRICS

METADATA_FILE = "task_metadata.json"
VOCABULARY_FILE = "labelvocabulary.csv"
DEFAULT_SAMPLE_RATE = 16000
TRAIN_VALID_TEST = ("train", "valid", "test")
SPLIT_MODES = ("trainvaltest", "new_split_kfold", "presplit_kfold")
#: the keys of evaluation_params.event_postprocessing_grid (bench.hear.events)
POSTPROCESSING_KEYS = ("median_filter_ms", "min_duration")

EmbeddingType = Literal["scene", "event"]
PredictionType = Literal["multiclass", "multilabel"]


@dataclass(frozen=True)
class HearTaskMetadata:
    """The parts of task_metadata.json that evaluation uses.

    splits: split names in order (``train valid test`` or ``fold00 ... foldNN``).
    evaluation: metric names; the first is the primary metric.
    use_scoring_for_early_stopping: False (MAESTRO) selects on validation loss instead.
    postprocessing_grid / task_param_grid: ``evaluation_params`` overrides of the event
        post-processing grid and of the predictor's training grid (e.g. MAESTRO's 50 epochs).
    """

    task_name: str
    version: str
    mode: str | None
    embedding_type: EmbeddingType
    prediction_type: PredictionType
    split_mode: str
    splits: tuple[str, ...]
    evaluation: tuple[str, ...]
    sample_duration: float | None = None
    use_scoring_for_early_stopping: bool = True
    postprocessing_grid: Mapping[str, Sequence[float]] | None = None
    task_param_grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    @property
    def versioned_name(self) -> str:
        """The directory name hear-preprocess gives the task."""
        return "-".join(part for part in (self.task_name, self.version, self.mode) if part)

    @property
    def primary_metric(self) -> str:
        return self.evaluation[0]

    @property
    def is_kfold(self) -> bool:
        return self.split_mode != "trainvaltest"


def is_task_dir(path: Path) -> bool:
    return (path / METADATA_FILE).is_file()


def read_task_metadata(task_dir: Path) -> HearTaskMetadata:
    """Parse and check task_metadata.json: every field's type and value (docs/hear.md)."""
    path = Path(task_dir) / METADATA_FILE
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object, got {_json_type(raw)}")
    fields = _Fields(path, raw)
    embedding_type = fields.choice("embedding_type", ("scene", "event"))
    prediction_type = fields.choice("prediction_type", ("multiclass", "multilabel"))
    if embedding_type == "event" and prediction_type != "multilabel":
        # Frames may carry no label or several; a one-label-per-example loss cannot train them.
        raise DataError(f"{path}: event tasks must be multilabel, not {prediction_type}")
    split_mode = fields.choice("split_mode", SPLIT_MODES)
    evaluation = tuple(fields.names("evaluation", example='["top1_acc"]'))
    _check_metrics(path, evaluation, embedding_type)
    params = fields.mapping("evaluation_params")
    return HearTaskMetadata(
        task_name=fields.text("task_name"),
        version=fields.text("version"),
        mode=fields.text("mode", required=False),
        embedding_type=embedding_type,
        prediction_type=prediction_type,
        split_mode=split_mode,
        splits=_split_names(fields, split_mode),
        evaluation=evaluation,
        sample_duration=fields.seconds("sample_duration"),
        use_scoring_for_early_stopping=fields.flag("use_scoring_for_early_stopping", True),
        postprocessing_grid=_postprocessing_grid(path, params),
        task_param_grid=_param_grid(path, params),
    )


class _Fields:
    """Typed access to task_metadata.json's fields; errors name the file and the field."""

    def __init__(self, path: Path, raw: Mapping[str, Any]):
        self.path = path
        self.raw = raw

    def fail(self, key: str, expected: str) -> DataError:
        return DataError(
            f"{self.path}: '{key}' must be {expected}, got {_json_repr(self.raw[key])}"
        )

    def get(self, key: str, required: bool) -> Any:
        if key not in self.raw:
            if required:
                raise DataError(f"{self.path}: missing '{key}'")
            return None
        return self.raw[key]

    def choice(self, key: str, allowed: Sequence[str]) -> str:
        value = self.get(key, required=True)
        if not isinstance(value, str) or value not in allowed:
            raise DataError(
                f"{self.path}: '{key}' is {_json_repr(value)}; expected one of {list(allowed)}"
            )
        return value

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string")
        return value

    def names(self, key: str, example: str) -> list[str]:
        value = self.get(key, required=True)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"a list of names such as {example}")
        return value

    def seconds(self, key: str) -> float | None:
        value = self.get(key, required=False)
        if value is None:
            return None
        if not _is_number(value) or value <= 0:
            raise self.fail(key, "a positive number of seconds")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def integer(self, key: str, minimum: int) -> int:
        value = self.get(key, required=True)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"a whole number >= {minimum}")
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.get(key, required=False)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "a JSON object")
        return value


def _split_names(fields: _Fields, split_mode: str) -> tuple[str, ...]:
    if split_mode == "trainvaltest":
        expected = TRAIN_VALID_TEST
    else:
        try:
            nfolds = fields.integer("nfolds", minimum=2)
        except DataError:
            raise DataError(
                f"{fields.path}: {split_mode} needs 'nfolds' >= 2, got "
                f"{_json_repr(fields.raw.get('nfolds'))}"
            ) from None
        expected = tuple(f"fold{i:02d}" for i in range(nfolds))
    if "splits" in fields.raw:
        listed = fields.names("splits", example=f"{list(expected)}".replace("'", '"'))
        if tuple(listed) != expected:
            raise DataError(
                f"{fields.path}: 'splits' {listed} does not match split_mode {split_mode} "
                f"(expected {list(expected)})"
            )
    return expected


def _postprocessing_grid(path: Path, params: Mapping[str, Any]) -> dict[str, list[float]] | None:
    """``evaluation_params.event_postprocessing_grid``: lists of milliseconds per known key."""
    grid = params.get("event_postprocessing_grid")
    if grid is None:
        return None
    where = f"{path}: 'evaluation_params.event_postprocessing_grid'"
    if not isinstance(grid, dict):
        raise DataError(f"{where} must be a JSON object, got {_json_repr(grid)}")
    for key, values in grid.items():
        if key not in POSTPROCESSING_KEYS:
            raise DataError(f"{where}: unknown key '{key}'; known: {list(POSTPROCESSING_KEYS)}")
        if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
            raise DataError(
                f"{where}: '{key}' must be a list of milliseconds, got {_json_repr(values)}"
            )
    return grid


def _param_grid(path: Path, params: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``evaluation_params.task_specific_param_grid``: each key a list of values (the
    task's ``schedule_for`` says which keys bench supports)."""
    grid = params.get("task_specific_param_grid")
    if grid is None:
        return {}
    where = f"{path}: 'evaluation_params.task_specific_param_grid'"
    if not isinstance(grid, dict):
        raise DataError(f"{where} must be a JSON object, got {_json_repr(grid)}")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise DataError(f"{where}: '{key}' must be a list, got {_json_repr(values)}")
    return dict(grid)


def _check_metrics(path: Path, evaluation: Sequence[str], embedding_type: str) -> None:
    if not evaluation:
        raise DataError(f"{path}: 'evaluation' lists no metric")
    for name in evaluation:
        metric = HEAR_METRICS.get(name)
        if metric is None:
            raise DataError(f"{path}: unknown metric '{name}'; known: {sorted(HEAR_METRICS)}")
        if metric.kind != embedding_type:
            expected = "scene" if metric.kind == "scene" else "event"
            raise DataError(
                f"{path}: metric '{name}' needs a {expected} task, not {embedding_type}"
            )


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _json_repr(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_label_vocabulary(task_dir: Path) -> list[str]:
    """labelvocabulary.csv: labels in index order; indices must be 0..n-1, labels unique."""
    path = Path(task_dir) / VOCABULARY_FILE
    if not path.is_file():
        raise DataError(f"{path}: missing")
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        rows = list(reader)
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not a valid CSV ({error})") from None
    if not rows or not {"idx", "label"} <= set(rows[0]):
        raise DataError(f"{path}: expected a header 'idx,label' and at least one row")
    by_index: dict[int, str] = {}
    for line, row in enumerate(rows, start=2):
        index, label = row.get("idx"), row.get("label")
        if index is None or label is None or None in row:
            raise DataError(f"{path}, line {line}: expected 'idx,label', got {row}")
        try:
            by_index[int(index)] = label
        except ValueError:
            raise DataError(f"{path}, line {line}: idx {index!r} is not a whole number") from None
    if sorted(by_index) != list(range(len(rows))):
        raise DataError(f"{path}: idx must run 0..{len(rows) - 1} without gaps or repeats")
    labels = [by_index[i] for i in range(len(rows))]
    if len(set(labels)) != len(labels):
        raise DataError(f"{path}: a label is listed twice")
    return labels


def audio_sample_rate(task_dir: Path, preferred: int = DEFAULT_SAMPLE_RATE) -> int:
    """The audio folder to read: ``preferred`` if present, else the nearest rate."""
    rates = sorted(int(p.name) for p in list_subdirs(Path(task_dir)) if p.name.isdigit())
    if not rates:
        raise DataError(f"{task_dir}: no audio folder (e.g. {DEFAULT_SAMPLE_RATE}/<split>/)")
    return min(rates, key=lambda rate: (abs(rate - preferred), -rate))


def read_task_dir(task_dir: Path, sample_rate: int = DEFAULT_SAMPLE_RATE) -> TaskData:
    """Read a whole task directory; see the module docstring.

    ``extras`` carries ``"hear"`` (the HearTaskMetadata) and ``"sample_rate"`` (the folder read).
    """
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise DataError(f"{task_dir}: not a directory")
    metadata = read_task_metadata(task_dir)
    vocabulary = read_label_vocabulary(task_dir)
    rate = audio_sample_rate(task_dir, sample_rate)
    label_reader = _LabelReader(metadata, set(vocabulary))
    splits = {
        name: _read_split(task_dir, name, task_dir / str(rate) / name, label_reader)
        for name in metadata.splits
    }
    _check_unique_files(task_dir, splits)
    data = TaskData(
        splits=splits,
        vocabulary={"label": vocabulary},
        folds=hear_folds(metadata.splits, metadata.is_kfold),
        extras={"hear": metadata, "sample_rate": rate},
    )
    data.check(metadata.versioned_name)
    return data


def hear_folds(splits: Sequence[str], kfold: bool) -> tuple[Fold, ...]:
    """hear-eval-kit's arrangement: fold i tests, fold i+1 validates, the others train."""
    if not kfold:
        train, valid, test = splits
        return (Fold("main", (train,), (valid,), (test,)),)
    ordered = sorted(splits)
    folds = []
    for i, test in enumerate(ordered):
        valid = ordered[(i + 1) % len(ordered)]
        train = tuple(name for name in ordered if name not in (test, valid))
        folds.append(Fold(test, train, (valid,), (test,)))
    return tuple(folds)


def _read_split(task_dir: Path, split: str, audio_dir: Path, labels: _LabelReader) -> list[Item]:
    path = task_dir / f"{split}.json"
    entries = _read_json(path)
    if not isinstance(entries, dict):
        raise DataError(
            f"{path}: expected a JSON object mapping file names to labels, got {_json_type(entries)}"
        )
    if not entries:
        raise DataError(f"{path}: split '{split}' has no files")
    items = [
        Item(
            key=filename,
            path=audio_dir / _safe_relative(path, filename),
            label=labels(path, filename, value),
        )
        for filename, value in entries.items()
    ]
    problems = unreadable_files((item.key, item.path) for item in items)
    if problems.missing:
        shown = ", ".join(str(audio_dir / name) for name in problems.missing[:3])
        raise DataError(
            f"{path}: {len(problems.missing)} of {len(items)} audio files are missing, e.g. {shown}"
        )
    if problems.unreadable:
        shown = ", ".join(f"{name} ({cause})" for name, cause in problems.unreadable[:3])
        raise DataError(
            f"{path}: {len(problems.unreadable)} of {len(items)} audio files in {audio_dir} "
            f"cannot be read, e.g. {shown}"
        )
    _check_inside(task_dir, path, items)
    if labels.metadata.embedding_type == "event":
        _check_milliseconds(path, labels.metadata, items)
    return items


def _check_inside(task_dir: Path, path: Path, items: Sequence[Item]) -> None:
    """Symlinks in the audio folders must not lead out of the task directory."""
    root = task_dir.resolve()
    for item in items:
        target = item.path.resolve()
        if not target.is_relative_to(root):
            raise DataError(
                f"{path}: {item.path} is a link to {target}, outside the task directory "
                f"{root}; copy the file into the task directory instead"
            )


def _check_milliseconds(path: Path, metadata: HearTaskMetadata, items: Sequence[Item]) -> None:
    """Event times are milliseconds; times that all end within the clip's length in
    seconds were written in seconds (a 3 s clip whose events all end by 3 ms)."""
    ends_ms = [offset * 1000.0 for item in items for _, offset, _ in item.label]
    if not ends_ms or metadata.sample_duration is None:
        return
    if max(ends_ms) <= metadata.sample_duration:
        raise DataError(
            f"{path}: every event ends by {max(ends_ms):g} ms, in clips of "
            f"{metadata.sample_duration:g} s: the times look like seconds; HEAR label files give "
            'start and end in milliseconds, e.g. {"label": "dog", "start": 1250.0, "end": 2000.0}'
        )


def _safe_relative(path: Path, filename: str) -> PurePosixPath:
    """A label file's key must stay inside the audio folder: no absolute paths, no '..'."""
    relative = PurePosixPath(filename.replace("\\", "/"))
    if (
        not filename
        or relative.is_absolute()
        or ".." in relative.parts
        or Path(filename).is_absolute()
    ):
        raise DataError(f"{path}: file name {filename!r} escapes the task directory")
    return relative


class _LabelReader:
    """Checks one file's labels against the task's type and vocabulary."""

    def __init__(self, metadata: HearTaskMetadata, vocabulary: set[str]):
        self.metadata = metadata
        self.vocabulary = vocabulary

    def __call__(self, path: Path, filename: str, value: Any) -> Any:
        if not isinstance(value, list):
            raise DataError(
                f"{path}: '{filename}': labels must be a list, got {type(value).__name__}"
            )
        if self.metadata.embedding_type == "event":
            return sorted(self._event(path, filename, entry) for entry in value)
        return self._scene(path, filename, value)

    def _scene(self, path: Path, filename: str, value: list[Any]) -> tuple[str, ...]:
        if any(isinstance(entry, dict) for entry in value):
            raise DataError(f"{path}: '{filename}' has event labels but the task is a scene task")
        labels = tuple(self._known(path, filename, entry) for entry in value)
        if self.metadata.prediction_type == "multiclass" and len(labels) != 1:
            raise DataError(
                f"{path}: '{filename}' has {len(labels)} labels; a multiclass task needs exactly one"
            )
        return labels

    def _event(self, path: Path, filename: str, entry: Any) -> tuple[float, float, str]:
        if not isinstance(entry, dict) or not {"label", "start", "end"} <= set(entry):
            raise DataError(
                f"{path}: '{filename}': event tasks need {{label, start, end}} entries, got {entry!r}"
            )
        start, end = (
            _milliseconds(path, filename, entry["start"]),
            _milliseconds(path, filename, entry["end"]),
        )
        if end < start:
            raise DataError(
                f"{path}: '{filename}': event ends ({end} ms) before it starts ({start} ms)"
            )
        return (start / 1000.0, end / 1000.0, self._known(path, filename, entry["label"]))

    def _known(self, path: Path, filename: str, label: Any) -> str:
        # hear-eval-kit compares labels as strings (pitch labels may be JSON numbers).
        name = str(label)
        if name not in self.vocabulary:
            raise DataError(f"{path}: '{filename}': label '{name}' is not in {VOCABULARY_FILE}")
        return name


def _milliseconds(path: Path, filename: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise DataError(f"{path}: '{filename}': event time {value!r} is not a time in ms")
    return float(value)


def _check_unique_files(task_dir: Path, splits: Mapping[str, list[Item]]) -> None:
    seen: dict[str, str] = {}
    for split, items in splits.items():
        for item in items:
            if item.key in seen:
                raise DataError(f"{task_dir}: '{item.key}' is in both {seen[item.key]} and {split}")
            seen[item.key] = split


def _read_json(path: Path) -> Any:
    """A JSON file; a key given twice is an error (JSON itself keeps the last silently)."""
    if not path.is_file():
        raise DataError(f"{path}: missing")
    try:
        return json.loads(read_text(path), object_pairs_hook=_unique_keys(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def _unique_keys(path: Path) -> Any:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        content: dict[str, Any] = {}
        for key, value in pairs:
            if key in content:
                raise DataError(f"{path}: key {key!r} is given twice")
            content[key] = value
        return content

    return build
