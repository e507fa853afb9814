"""Pieces shared by the commands: config options, error reporting, tables."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPECTED_ERRORS = (
    "bench.config.ConfigError",
    "bench.registry.UnknownNameError",
    "bench.data.DataError",
    "bench.audio.AudioError",
    "bench.cache.CacheError",
    "bench.runner.UpstreamLoadError",
    "bench.extract.UpstreamOutputError",
    "bench.tracking.TrackingError",
    "bench.report.ReportError",
    "bench.gate.GateError",
    "bench.baseline.BaselineError",
)


@dataclass
class ExitStatus:
    code: int = 0


def _is_expected(error: BaseException) -> bool:
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}
    return bool(names & set(EXPECTED_ERRORS))


@contextlib.contextmanager
def report_errors() -> Iterator[ExitStatus]:
    """Known errors become one line on stderr and exit code 2; Ctrl-C exits 130."""
    status = ExitStatus()
    try:
        yield status
    except KeyboardInterrupt:
        print(
            "bench: interrupted (finished cache shards are kept; run again to resume)",
            file=sys.stderr,
        )
        status.code = 130
    except Exception as error:
        if not _is_expected(error):
            raise
        print(f"bench: error: {error}", file=sys.stderr)
        status.code = 2


def add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="configuration file (default: ./bench.yaml when present)",
    )
    group.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override any configuration key, e.g. probe.seeds=[0] extract.device=cuda",
    )


def reclaim_overrides(args: argparse.Namespace, *list_options: str) -> None:
    """Move ``key=value`` items that a list option (``nargs="+"``, e.g. ``--upstreams a b``)
    swallowed back to the overrides: argparse gives a list option every word that follows it.
    Upstream and task names never contain ``=``."""
    for option in list_options:
        values = getattr(args, option) or []
        overrides = [value for value in values if "=" in value]
        if overrides:
            setattr(args, option, [value for value in values if "=" not in value] or None)
            args.overrides = [*args.overrides, *overrides]


def load_config(args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    """The configuration from ``--config``/bench.yaml, overrides, then ``extra`` overrides."""
    from bench.config import load_config as load
    from bench.progress import setup_logging

    config = load(args.config, [*args.overrides, *extra])
    setup_logging(config.runtime.log_level)
    return config


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain table on stdout (rich when the output is a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold", min_width=len(title))
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    # Off a terminal (CI logs, pipes) rich would wrap at 80 columns; tables read better whole.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
