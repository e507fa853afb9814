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
    "bench.cli.new_task",
    "bench.cli.check_upstream",
    "bench.cli.report",
    "bench.cli.baseline",
    "bench.cli.check",
    "bench.cli.log",
)

EPILOG = """\
quick start:
  bench run --suite demo                          offline demo suite, default upstream
  bench run --task demo.keywords --upstream mfcc_no_cmvn probe.seeds=[0]
  bench run --task superb.ks --upstream wavlm_base_plus --data-root /data/speech_commands
  bench list tasks                                what can be run (also: upstreams, suites)
  bench report                                    leaderboard (Markdown, CSV, HTML) of the results
  bench check --upstream U --baseline FILE        regression gate for a checkpoint

Results: one JSON record per run under bench_runs/records/<upstream>/<task>/, and an MLflow
run in bench_runs/mlflow.db (view: mlflow ui --backend-store-uri sqlite:///bench_runs/mlflow.db).
Running the same command again reuses complete results (--rerun trains again).

exit status (every command): 0 done; 1 some of the work failed (a task, a data check, a
regression); 2 nothing was done (bad command line, configuration, name or upstream);
130 interrupted (Ctrl-C); 143 terminated (SIGTERM). --debug shows tracebacks.
"""


class BenchParser(argparse.ArgumentParser):
    """Command-line errors start with ``bench: error:`` in every command (as bench's own
    errors do), after the command's usage; exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"bench: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__

    parser = BenchParser(
        prog="bench",
        description="Benchmark speech and audio SSL encoders on SUPERB and HEAR with cached frozen-encoder probes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks (as runtime.log_level=DEBUG)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from bench.cli.common import report_errors, split_overrides

    parser = build_parser()
    # (not list(...): importing bench.cli.list binds the name `list` in this package)
    argv = [*(sys.argv[1:] if argv is None else argv)]
    command = _command_parser(parser, argv)
    overrides: list[str] = []
    if command is not None:
        argv, overrides = split_overrides(command, argv)
    # --debug is accepted after the command too
    debug = "--debug" in argv
    argv = [word for word in argv if word != "--debug"]
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        where = f"`bench {args.command} --help`" if args.command else "`bench --help`"
        parser.error(f"unrecognized arguments: {' '.join(unknown)} ({where} lists the options)")
    args.debug = debug
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *overrides]
    elif overrides:
        parser.error(f"'{args.command}' takes no key=value overrides: {' '.join(overrides)}")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    with report_errors(debug) as status:
        status.code = args.func(args)
    return status.code


def _command_parser(
    parser: argparse.ArgumentParser, argv: list[str]
) -> argparse.ArgumentParser | None:
    """The sub-parser of the command (and action, for ``bench baseline save``) in ``argv``."""
    for action in parser._actions:  # argparse has no public view of its sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for position, word in enumerate(argv):
                if word in action.choices:
                    sub = action.choices[word]
                    return _command_parser(sub, argv[position + 1 :]) or sub
    return None


if __name__ == "__main__":
    sys.exit(main())
