"""Published reference numbers (``results/references/``), in bench's task and metric names.

``SUPERB_COLUMNS`` is the one place that says which bench task and metric a published
SUPERB column is; every published number and SUPERB reference point is converted to bench's
units on load, so the rest of the report compares like with like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.profiles import UNKNOWN, WEIGHTED, published_label
from bench.report import ReportError

REFERENCE_POINTS_FILE = "superb_reference_points.csv"
SUPERB_PUBLISHED_FILE = "superb_published.csv"
HEAR_PUBLISHED_FILE = "hear_published.csv"

HEAR_AVERAGE_COLUMN = "hear_average_19_tasks"
HEAR_AVERAGE_TASKS = 19
#: the CSVs' ``protocol`` column: ``reference`` (made with the reference toolkit's protocol)
#: or ``unknown`` (the source does not say); a file without it is all ``unknown``
PROTOCOL_COLUMN = "protocol"
PUBLISHED_COLUMNS = ["upstream", "task", "metric", "value", "source", "verified", "protocol"]
#: hear_published.csv's ``layers`` -> the embedding (bench.profiles.HEAR_EMBEDDINGS)
HEAR_LAYERS = {"last layer": "last", "all layers concatenated": "concat"}


@dataclass(frozen=True)
class SuperbColumn:
    """Where a published SUPERB column lives in bench: task, metric, and the factor that turns
    bench's value into the published unit (published = bench value x ``scale``)."""

    task: str
    metric: str
    scale: float = 1.0


SUPERB_COLUMNS: dict[str, SuperbColumn] = {
    "PR_per": SuperbColumn("superb.pr", "per"),
    "KS_acc": SuperbColumn("superb.ks", "accuracy"),
    "IC_acc": SuperbColumn("superb.ic", "accuracy"),
    "SID_acc": SuperbColumn("superb.sid", "accuracy"),
    "ER_acc": SuperbColumn("superb.er", "accuracy"),
    "ASR_wer": SuperbColumn("superb.asr", "wer"),
    # The leaderboard prints MTWV x 100; bench keeps MTWV itself.
    "QbE_mtwv_x100": SuperbColumn("superb.qbe", "mtwv", scale=100.0),
    "SF_f1": SuperbColumn("superb.sf", "slot_f1"),
    "SF_cer": SuperbColumn("superb.sf", "slot_cer"),
    "ASV_eer": SuperbColumn("superb.asv", "eer"),
    "SD_der": SuperbColumn("superb.sd", "der"),
    "ST_bleu": SuperbColumn("superb.st", "bleu"),
    "SE_pesq": SuperbColumn("superb.se", "pesq"),
    # The leaderboard prints STOI x 100; bench keeps pystoi's 0-1 value (as s3prl does).
    "SE_stoi": SuperbColumn("superb.se", "stoi", scale=100.0),
    "SS_si_sdri": SuperbColumn("superb.ss", "si_sdri"),
}
"""Published column (``<TASK>_<metric>`` as in the CSVs) -> bench task and metric."""


@dataclass(frozen=True)
class ReferencePoint:
    """The FBANK and SOTA anchors of one SUPERB metric, in bench's units."""

    task: str
    metric: str
    higher_is_better: bool
    fbank: float
    sota: float
    source: str


@dataclass(frozen=True)
class References:
    """Everything published: SUPERB anchors, and published results as a tidy table.

    published: one row per (row label, task, metric) with columns ``upstream``, ``task``,
        ``metric``, ``value``, ``source``, ``verified``, ``protocol`` (the row's protocol
        label, bench.profiles.published_label: ``reference``, ``reference, last``, ``unknown``). HEAR averages use the task name
        ``HEAR_AVERAGE`` and the metric ``hear_average_19_tasks`` (percent).
    """

    points: tuple[ReferencePoint, ...]
    published: pd.DataFrame
    directory: Path


HEAR_AVERAGE = "hear.average"
"""The pseudo-task under which published HEAR averages are listed."""


def default_references_dir() -> Path | None:
    """./results/references (a checkout as working directory), else the checkout that holds
    this package (an editable install); None when neither exists (e.g. a wheel)."""
    candidates = (
        Path.cwd() / "results" / "references",
        Path(__file__).resolve().parents[2] / "results" / "references",
    )
    return next((path for path in candidates if (path / REFERENCE_POINTS_FILE).is_file()), None)


def load_references(directory: Path | None = None) -> References:
    directory = directory or default_references_dir()
    if directory is None:
        raise ReportError(
            "no published references found (results/references/ of a bench checkout); "
            "pass --references DIR"
        )
    directory = Path(directory)
    return References(
        points=tuple(read_reference_points(directory / REFERENCE_POINTS_FILE)),
        published=pd.concat(
            [
                read_superb_published(directory / SUPERB_PUBLISHED_FILE),
                read_hear_published(directory / HEAR_PUBLISHED_FILE),
            ],
            ignore_index=True,
        ),
        directory=directory,
    )


def _read_csv(path: Path, required: set[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"verified": str}, keep_default_na=True)
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: cannot read ({error})") from None
    missing = required - set(frame.columns)
    if missing:
        raise ReportError(f"{path}: missing columns {sorted(missing)}")
    return frame


def _column(key: str, path: Path) -> SuperbColumn:
    try:
        return SUPERB_COLUMNS[key]
    except KeyError:
        raise ReportError(
            f"{path}: column '{key}' is not in bench.report.references.SUPERB_COLUMNS"
        ) from None


def read_reference_points(path: Path) -> list[ReferencePoint]:
    frame = _read_csv(path, {"task", "metric", "higher_is_better", "fbank", "sota", "source"})
    points = []
    for row in frame.itertuples(index=False):
        column = _column(f"{row.task}_{row.metric}", path)
        higher = str(row.higher_is_better).strip().lower() == "true"
        point = ReferencePoint(
            task=column.task,
            metric=column.metric,
            higher_is_better=higher,
            fbank=float(row.fbank) / column.scale,
            sota=float(row.sota) / column.scale,
            source=str(row.source),
        )
        # The score's sign convention relies on SOTA beating FBANK in the metric's direction.
        if (point.sota > point.fbank) != higher:
            raise ReportError(f"{path}: {row.task} {row.metric}: SOTA does not beat FBANK")
        points.append(point)
    return points


def read_superb_published(path: Path) -> pd.DataFrame:
    frame = _read_csv(path, {"upstream", "source"})
    rows = []
    for record in frame.to_dict("records"):
        # SUPERB rows are frozen upstreams read through the weighted sum of layers
        protocol = published_label(_text(record.get(PROTOCOL_COLUMN)), WEIGHTED)
        for key, value in record.items():
            if key in ("upstream", "source", "verified", PROTOCOL_COLUMN) or _is_blank(value):
                continue
            column = _column(key, path)
            rows.append(
                {
                    "upstream": record["upstream"],
                    "task": column.task,
                    "metric": column.metric,
                    "value": float(value) / column.scale,
                    "source": record["source"],
                    "verified": str(record.get("verified", "")),
                    "protocol": protocol,
                }
            )
    return pd.DataFrame(rows, columns=PUBLISHED_COLUMNS)


def read_hear_published(path: Path) -> pd.DataFrame:
    frame = _read_csv(path, {"upstream", HEAR_AVERAGE_COLUMN, "layers", "source"})
    rows = [
        {
            "upstream": _hear_row_label(record["upstream"], str(record["layers"])),
            "task": HEAR_AVERAGE,
            "metric": HEAR_AVERAGE_COLUMN,
            "value": float(record[HEAR_AVERAGE_COLUMN]),
            "source": record["source"],
            "verified": "",
            "protocol": published_label(
                _text(record.get(PROTOCOL_COLUMN)),
                HEAR_LAYERS.get(str(record["layers"]).strip(), UNKNOWN),
            ),
        }
        for record in frame.to_dict("records")
        if not _is_blank(record[HEAR_AVERAGE_COLUMN])
    ]
    return pd.DataFrame(rows, columns=PUBLISHED_COLUMNS)


def _hear_row_label(upstream: str, layers: str) -> str:
    """SPEAR is published twice (last layer; all layers concatenated): keep the rows apart."""
    if layers in ("as in source", "-", "", "nan"):
        return upstream
    return f"{upstream} ({layers})"


def _text(value: object) -> str:
    return "" if _is_blank(value) else str(value)


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
