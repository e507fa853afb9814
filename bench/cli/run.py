"""``bench run``: run tasks or a suite for one upstream."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.common import add_config_options, load_config, print_table

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("bench.cli")

EXAMPLES = """\
examples:
  bench run --suite demo
  bench run --suite demo --upstream mfcc_no_cmvn probe.seeds=[0]
  bench run --task superb.ks --upstream wavlm_base_plus --data-root /data
      (/data holds speech_commands_v0.01/ and speech_commands_test_set_v0.01/)
  bench run --suite superb-utterance --upstream fbank --data-root /data
      (/data also holds fluent_speech_commands_dataset/, VoxCeleb1/, IEMOCAP_full_release/;
       `bench prepare superb.sid --data-root /data` checks a corpus and says what is missing)
  bench run --suite hear --upstream spear_large_speech_audio --data-root /data/hear/tasks
  bench run --task hear --task-dir /data/hear/tasks/esc50-v2.0.0-full --upstream fbank
  bench run --task demo.keywords --upstream ./my-checkpoint extract.device=cuda

--data-root is the directory that holds a corpus as its archives unpack; `bench list tasks`
shows what each task expects there. Any configuration key can follow as key=value.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run tasks or a suite for an upstream",
        description="Run tasks or a suite for an upstream.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to run")
    what.add_argument(
        "--task", action="append", metavar="TASK", help="a task, e.g. superb.ks (repeatable)"
    )
    what.add_argument("--suite", metavar="SUITE", help="a suite, e.g. demo, superb-utterance, hear")
    what.add_argument(
        "--upstream",
        "-u",
        metavar="UPSTREAM",
        help="registered name, hub id or local checkpoint dir (default: the suite's own)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data-root", type=Path, metavar="DIR", help="directory holding the corpora")
    data.add_argument(
        "--task-dir", type=Path, metavar="DIR", help="a HEAR task directory (with --task hear)"
    )
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow code that is not part of bench to run: checkpoints that ship code "
        "(e.g. USAD) and hear:<module> (importing a module runs it)",
    )
    behaviour.add_argument(
        "--device", metavar="DEVICE", help="extraction device: auto, cpu, cuda, cuda:N"
    )
    behaviour.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    add_config_options(parser)
    parser.set_defaults(func=run)


def resolve_task_runs(args: argparse.Namespace) -> tuple[list, str | None]:
    """The TaskRuns asked for, and the suite's default upstream (if a suite was given)."""
    from bench.task import SUITES, TaskRun

    if bool(args.task) == bool(args.suite):
        raise SystemExit("bench run: give --task (one or more) or --suite, not both")
    if args.task:
        runs = []
        for name in args.task:
            root = (
                args.task_dir if (args.task_dir is not None and name == "hear") else args.data_root
            )
            runs.append(TaskRun(name, root))
        default = None
        if len(args.task) == 1 and "." in args.task[0]:
            suite = args.task[0].split(".", 1)[0]
            default = SUITES.get(suite).default_upstream if suite in SUITES else None
        return runs, default
    suite = SUITES.get(args.suite)
    if suite.discover:
        import importlib

        module, _, function = suite.discover.partition(":")
        return getattr(importlib.import_module(module), function)(
            args.data_root
        ), suite.default_upstream
    return [TaskRun(name, args.data_root) for name in suite.tasks], suite.default_upstream


def run(args: argparse.Namespace) -> int:
    extra = []
    if args.trust_remote_code:
        extra.append("upstream.trust_remote_code=true")
    if args.device:
        extra.append(f"extract.device={args.device}")
    if args.quiet:
        extra.append("runtime.progress=false")
    config = load_config(args, extra)
    task_runs, default_upstream = resolve_task_runs(args)
    upstream = args.upstream or default_upstream
    if upstream is None:
        raise SystemExit("bench run: --upstream is required (see `bench list upstreams`)")
    if not task_runs:
        raise SystemExit(
            f"bench run: no tasks found for suite '{args.suite}' under {args.data_root}"
        )
    outcomes = run_tasks(config, task_runs, upstream)
    return 0 if all(outcome.error is None for outcome in outcomes) else 1


def run_tasks(config: DictConfig, task_runs: list, upstream: str) -> list:
    """Run ``task_runs`` for ``upstream`` and print a summary; one TaskOutcome per task
    (a failed task carries its error). Shared with ``bench check --run``."""
    check_names(task_runs, upstream)

    from bench.runner import Runner
    from bench.runtime import configure_threads

    configure_threads(config.runtime.threads)
    runner = Runner(config)
    outcomes = []
    for position, task_run in enumerate(task_runs, start=1):
        log.info("[%d/%d] %s with %s", position, len(task_runs), task_run.task, upstream)
        outcomes.append(runner.run(task_run, upstream))
    print_summary(outcomes)
    return outcomes


def check_names(task_runs: list, upstream: str) -> None:
    """Unknown task or upstream names fail before anything runs (cheap: no torch)."""
    from bench.task import TASKS
    from bench.upstreams import resolve_upstream

    for task_run in task_runs:
        TASKS.get(task_run.task)
    resolve_upstream(upstream)


def format_score(score: dict) -> str:
    """``mean ± std``; a metric that was not finite (stored as null) shows as n/a."""
    if score["mean"] is None:
        return "n/a"
    return f"{score['mean']:.3g} ± {score['std'] or 0:.2g}"


def print_summary(outcomes: list) -> None:
    rows = []
    for outcome in outcomes:
        if outcome.error is not None:
            rows.append([outcome.task, outcome.upstream, "FAILED", "(error above)", "", "", ""])
            continue
        record = outcome.record
        score = record.score
        rows.append(
            [
                record.task,
                record.upstream,
                record.main_metric,
                format_score(score),
                f"{record.selected.get('lr', ''):g}" if "lr" in record.selected else "",
                str(outcome.record_path),
                (record.mlflow or {}).get("run_id", "-"),
            ]
        )
    print_table(
        "bench results (test, mean ± std over seeds)",
        ["task", "upstream", "metric", "test", "lr", "record", "mlflow run"],
        rows,
    )
