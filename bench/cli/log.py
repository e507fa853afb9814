"""``bench log``: log result records into MLflow (after a tracking failure, or into a new store)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_config_options, load_config
from bench.errors import EXIT_FAILED, EXIT_OK

EXAMPLES = """\
examples:
  bench log                                       records whose logging did not complete
  bench log --tracking-uri http://127.0.0.1:5000  mirror every record into a server
  bench log --tracking-uri sqlite:///fresh/mlflow.db

The records are the source of truth: a run whose MLflow logging failed (full disk, a locked
or broken store) keeps its record, and `bench log` logs it later. Records already logged
and finished in the store are left alone, so running it twice logs nothing twice.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "log",
        help="log result records into MLflow (e.g. after a tracking failure)",
        description="Log every result record that the MLflow store does not hold (finished).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--records", type=Path, metavar="DIR", help="records folder (default: paths.records)"
    )
    parser.add_argument(
        "--tracking-uri", metavar="URI", help="MLflow store or server (default: tracking.uri)"
    )
    add_config_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.config import tracking_uri
    from bench.records import RecordStore
    from bench.tracking import log_records

    config = load_config(args)
    store = RecordStore(args.records or Path(config.paths.records))
    uri = args.tracking_uri or tracking_uri(config)
    logged, present, failures = log_records(store, uri)
    print(
        f"bench: logged {logged} record(s) to {uri}; {present} were already there"
        + (f"; {len(failures)} failed" if failures else "")
    )
    return EXIT_FAILED if failures else EXIT_OK
