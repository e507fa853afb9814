"""``bench report``: the leaderboard (Markdown, CSV, HTML) from records and/or MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.common import add_config_options, load_config, print_table

if TYPE_CHECKING:
    from bench.report.leaderboard import Leaderboard

DEFAULT_OUT = Path("results/report")

EXAMPLES = """\
examples:
  bench report                                    every record under bench_runs/records
  bench report --upstreams fbank_no_cmvn mfcc_no_cmvn --tasks 'demo.*' --format md
  bench report --tracking-uri http://127.0.0.1:5000          from an MLflow server only
  bench report --records bench_runs/records --tracking-uri sqlite:///bench_runs/mlflow.db
      (both: records win; each is checked against its own MLflow run)
  bench report --identity 3f2a9c01                 use that result where several exist

When an upstream has several results for a task (other seeds, probe settings, data), the
report uses the most complete protocol (more seeds, then the task's own schedule, then more
data, then the newer) and says so in its notes; --identity picks one. Quick-mode results
(bench run --quick) are left out unless --include-quick, and then marked.

Writes leaderboard.md, leaderboard.csv (tidy: upstream x task x metric) and leaderboard.html
(self-contained: tables, per-task bars, layer-weight heatmaps) to --out.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="leaderboard tables and plots from the results",
        description="Write the leaderboard: measured results beside published ones, with the "
        "SUPERB score and the HEAR average.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output folder (default: {DEFAULT_OUT})",
    )
    parser.add_argument("--upstreams", nargs="+", metavar="U", help="only these upstreams (rows)")
    parser.add_argument(
        "--tasks",
        nargs="+",
        metavar="T",
        help="only these tasks (columns); patterns like 'superb.*'",
    )
    parser.add_argument(
        "--format", default="md,csv,html", metavar="LIST", help="any of md,csv,html (default: all)"
    )
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="DIGEST",
        help="use the result with this identity (a prefix will do) where it applies (repeatable)",
    )
    parser.add_argument(
        "--include-quick",
        action="store_true",
        help="show quick-mode results too (marked quick; never beside full ones as equals)",
    )
    sources = parser.add_argument_group("where the results come from")
    sources.add_argument(
        "--records", type=Path, metavar="DIR", help="JSON records folder (default: paths.records)"
    )
    sources.add_argument(
        "--tracking-uri", metavar="URI", help="MLflow store or server (e.g. http://host:5000)"
    )
    sources.add_argument(
        "--source",
        choices=("auto", "records", "mlflow", "both"),
        default="auto",
        help="auto (default): the records; MLflow alone with --tracking-uri; both with "
        "--records and --tracking-uri",
    )
    sources.add_argument(
        "--references",
        type=Path,
        metavar="DIR",
        help="published numbers (default: results/references)",
    )
    add_config_options(parser)
    parser.set_defaults(func=run)


def resolve_source(args: argparse.Namespace) -> str:
    if args.source != "auto":
        return args.source
    if args.tracking_uri:
        return "both" if args.records else "mlflow"
    return "records"


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from bench.config import tracking_uri
    from bench.identity import canonical_upstream_arg
    from bench.report import ReportError
    from bench.report.leaderboard import build_leaderboard
    from bench.report.outputs import parse_formats, write_report
    from bench.report.references import load_references
    from bench.report.render import ReportContext
    from bench.report.results import collect, select

    config = load_config(args)
    # rows are named as recorded: `./ckpt` is the row of the checkpoint's resolved path
    upstreams = [canonical_upstream_arg(u) for u in args.upstreams] if args.upstreams else None
    formats = parse_formats(args.format)
    source = resolve_source(args)
    records_dir = args.records or Path(config.paths.records)
    uri = args.tracking_uri or tracking_uri(config)
    collected = collect(
        source,
        records_dir=records_dir,
        tracking_uri=uri,
        identities=args.identity,
        include_quick=args.include_quick,
    )
    results = select(collected.results, upstreams, args.tasks)
    inputs = _inputs(source, records_dir, uri)
    if not results and not upstreams:
        raise ReportError(f"no results in {' or '.join(inputs)}; run `bench run` first")
    board = build_leaderboard(results, load_references(args.references), upstreams, args.tasks)
    board.notes += collected.notes
    context = ReportContext(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), inputs=tuple(inputs)
    )
    print_measured(board)
    for note in collected.notes:
        print(f"note: {note}")
    for path in write_report(board, context, args.out, formats):
        print(f"wrote {path}")
    return 0


def print_measured(board: Leaderboard) -> None:
    """The measured rows of the leaderboard on the terminal (the files have everything)."""
    from bench.report.tables import leaderboard_table

    table = leaderboard_table(board)
    measured = table.frame[[not published for published in table.published]]
    if len(measured):
        print_table(
            "leaderboard (test; each task's main metric, mean ± std over seeds)",
            list(measured.columns),
            measured.values.tolist(),
        )


def _inputs(source: str, records_dir: Path, uri: str) -> list[str]:
    inputs = []
    if source in ("records", "both"):
        inputs.append(f"records in {records_dir}")
    if source in ("mlflow", "both"):
        inputs.append(f"MLflow at {uri}")
    return inputs
