"""bench's command line: ``bench <command> ...``.

Each command lives in its own module with ``register(subparsers)``, which adds its parser
and sets ``func``, and ``run(args) -> int``, the exit code. Modules import heavy
libraries (torch, mlflow) inside ``run`` so that ``bench --help`` and ``bench list`` start
fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "bench.cli.run",
    "bench.cli.list",
    "bench.cli.prepare",
    "bench.cli.check_upstream",
    "bench.cli.report",
    "bench.cli.baseline",
    "bench.cli.check",
)

EPILOG = """\
quick start:
  bench run --suite demo                          offline demo suite, default upstream
  bench run --task demo.keywords --upstream mfcc_no_cmvn probe.seeds=[0]
  bench run --task superb.ks --upstream wavlm_base_plus --data-root /data/speech_commands
  bench list tasks                                what can be run (also: upstreams, suites)
  bench report                                    leaderboard (Markdown, CSV, HTML) of the results
  bench check --upstream U --baseline FILE        regression gate for a checkpoint

Results: one JSON record per (upstream, task) under bench_runs/records/, and an MLflow
run in bench_runs/mlflow.db (view: mlflow ui --backend-store-uri sqlite:///bench_runs/mlflow.db).
"""


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__

    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark speech and audio SSL encoders on SUPERB and HEAR with cached frozen-encoder probes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from bench.cli.common import report_errors

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    with report_errors() as status:
        status.code = args.func(args)
    return status.code


if __name__ == "__main__":
    sys.exit(main())
