"""Pieces shared by the commands: config options, overrides, error reporting, tables."""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Terminated,
    exit_code_of,
    is_expected,
)

#: ``key=value`` where key is a dotted configuration path
#: width of a description column on a terminal too narrow for the whole table
WRAP_WIDTH = 40
OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")

log = logging.getLogger("bench.cli")


@dataclass
class ExitStatus:
    code: int = 0


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def report_errors(debug: bool = False) -> Iterator[ExitStatus]:
    """Expected errors become one message on stderr and their exit code (bench.errors);
    Ctrl-C exits 130 and SIGTERM 143, both after the same clean stop (child processes
    ended, MLflow runs marked KILLED). ``debug`` adds the traceback."""
    status = ExitStatus()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield status
    except KeyboardInterrupt as error:
        terminated = isinstance(error, Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        print(
            f"bench: {what}; finished results and cache shards are kept: run the same "
            "command again to resume",
            file=sys.stderr,
        )
        status.code = EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except Exception as error:
        if not is_expected(error):
            raise
        if debug or logging.getLogger("bench").isEnabledFor(logging.DEBUG):
            log.error("traceback (--debug):", exc_info=error)
        print(f"bench: error: {error}", file=sys.stderr)
        status.code = exit_code_of(error)
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        help="override any configuration key, anywhere on the line, e.g. probe.seeds=[0]",
    )


def split_overrides(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list, list]:
    """``argv`` without its ``key=value`` overrides, and the overrides, wherever they are
    (``bench run probe.seeds=[0] -u mfcc runtime.progress=false``). A word that is the value
    of an option (``--tolerance superb.ks=0.5``) stays with its option."""
    takes_value = {
        option
        for action in parser._actions  # argparse has no public view of its options
        if action.nargs is None and action.option_strings and action.const is None
        for option in action.option_strings
    } - {"-h", "--help"}
    rest, overrides = [], []
    value_expected = False
    for word in argv:
        if value_expected:
            rest.append(word)
            value_expected = False
        elif word in takes_value:
            rest.append(word)
            value_expected = True
        elif OVERRIDE.match(word):
            overrides.append(word)
        else:
            rest.append(word)
    return rest, overrides


def load_config(args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    """The configuration from ``--config``/bench.yaml, overrides, then ``extra`` overrides."""
    from bench.config import load_config as load
    from bench.progress import setup_logging

    config = load(args.config, [*args.overrides, *extra])
    level = "DEBUG" if getattr(args, "debug", False) else config.runtime.log_level
    setup_logging(level)
    return config


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    wrap: Sequence[str] = (),
) -> None:
    """A plain table on stdout (rich when the output is a terminal).

    Identifiers (names the user types again) are never cut; only the ``wrap`` columns
    (descriptions) fold onto more lines when the terminal is narrow.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold", min_width=len(title))
    for column in columns:
        if column in wrap:
            table.add_column(column, overflow="fold", ratio=1, min_width=WRAP_WIDTH)
        else:
            table.add_column(column, no_wrap=True, overflow="ignore")
    for row in rows:
        # Text, not str: rich would read "[remote code]" or "[0]" in a cell as markup
        table.add_row(*(Text(str(cell)) for cell in row))
    # Off a terminal (CI logs, pipes) rich would wrap at 80 columns; tables read better whole.
    console = Console(width=None if sys.stdout.isatty() else 200)
    needed = _natural_width(columns, rows, wrap)
    if needed > console.width:  # never cut an identifier: widen past the terminal instead
        console = Console(width=needed)
    console.print(table)


def _natural_width(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], wrap: Sequence[str]
) -> int:
    """Width of the table with every column at full width but the ``wrap`` ones."""
    width = 1
    for position, column in enumerate(columns):
        cells = [len(str(row[position])) for row in rows] + [len(column)]
        width += (WRAP_WIDTH if column in wrap else max(cells)) + 3
    return width
