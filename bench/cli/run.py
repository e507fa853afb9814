"""``bench run``: run tasks or a suite for one or more upstreams, on any executor."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.common import add_config_options, load_config, print_table
from bench.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from bench.runner import TaskOutcome

log = logging.getLogger("bench.cli")

EXAMPLES = """\
examples:
  bench run --suite demo
  bench run --suite demo --upstream mfcc_no_cmvn probe.seeds=[0]
  bench run --suite demo --quick                  a smoke test: 64 items per split, 100 steps
  bench run --suite demo protocol.profile=reference   s3prl's / hear-eval-kit's own protocol
  bench run --task superb.ks --upstream wavlm_base_plus --data-root /data
      (/data holds speech_commands_v0.01/ and speech_commands_test_set_v0.01/)
  bench run --suite superb-utterance --upstream fbank --data-root /data
      (/data also holds fluent_speech_commands_dataset/, VoxCeleb1/, IEMOCAP_full_release/;
       `bench prepare superb.sid --data-root /data` checks a corpus and says what is missing)
  bench run --suite hear --upstream spear_large_speech_audio --data-root /data/hear/tasks
  bench run --task hear --task-dir /data/hear/tasks/esc50-v2.0.0-full --upstream fbank
  bench run --task demo.keywords --upstream ./ckpt-50k --name my-ckpt-step50k extract.device=cuda
  bench run --suite demo --upstream fbank_no_cmvn,mfcc_no_cmvn       several upstreams, one command
  bench run --suite hear --upstream ./ckpt-a,./ckpt-b --data-root /data/hear/tasks \
      executor=slurm slurm.partition=gpu work.gpus=1 extract.device=cuda
      (units of work as Slurm job arrays; executor=ray for a Ray cluster; docs/scaling.md)

--data-root is the directory that holds a corpus as its archives unpack; `bench list tasks`
shows what each task expects there. Any configuration key can be given as key=value,
anywhere on the line.

A run whose settings, data and weights match a complete earlier record reuses it (nothing
is trained or logged again); --rerun trains again and keeps both, --overwrite replaces it.

exit status: 0 every task done; 1 some task failed (the summary lists why); 2 nothing ran
(bad command line, configuration, name, or an upstream that cannot be loaded). A suite skips
the tasks bench cannot run (`bench list tasks` marks them, e.g. superb.vc) and says so;
asked for with --task, such a task fails.
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
        action="append",
        help="registered name, hub id or local checkpoint dir (default: the suite's own); "
        "several as A,B,C or repeated",
    )
    what.add_argument(
        "--name",
        metavar="NAME",
        help="record the upstream under this name (default: its registered name, hub id, "
        "or the resolved path of a checkpoint)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data-root", type=Path, metavar="DIR", help="directory holding the corpora")
    data.add_argument(
        "--task-dir", type=Path, metavar="DIR", help="a HEAR task directory (with --task hear)"
    )
    data.add_argument(
        "--generate-data",
        action="store_true",
        help="let demo tasks generate their data under --data-root (by default only in "
        "paths.data/demo)",
    )
    results = parser.add_argument_group("earlier results")
    existing = results.add_mutually_exclusive_group()
    existing.add_argument(
        "--skip-existing",
        dest="existing",
        action="store_const",
        const="reuse",
        help="reuse a complete record with the same identity (the default)",
    )
    existing.add_argument(
        "--rerun",
        dest="existing",
        action="store_const",
        const="rerun",
        help="train again; earlier records are kept",
    )
    existing.add_argument(
        "--overwrite",
        dest="existing",
        action="store_const",
        const="overwrite",
        help="train again and delete the earlier records of the same identity",
    )
    quick = parser.add_argument_group("quick checks (never a full result)")
    quick.add_argument(
        "--quick",
        action="store_true",
        help="few items per split and a short schedule (quick.items_per_split, quick.max_steps)",
    )
    quick.add_argument(
        "--limit", type=int, metavar="N", help="quick mode with at most N items per split"
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
    parser.set_defaults(func=run, existing="reuse")


def resolve_task_runs(args: argparse.Namespace) -> tuple[list, str | None]:
    """The TaskRuns asked for, and the suite's default upstream (if a suite was given)."""
    from bench.task import SUITES, TaskRun

    if bool(args.task) == bool(args.suite):
        raise UsageError("bench run: give --task (one or more) or --suite, not both")
    if args.task_dir is not None and "hear" not in (args.task or []):
        raise UsageError("bench run: --task-dir is for --task hear (a HEAR task directory)")
    if args.task:
        runs = []
        for name in args.task:
            root = (
                args.task_dir if (args.task_dir is not None and name == "hear") else args.data_root
            )
            runs.append(TaskRun(name, root))
        # tasks of one suite (demo.keywords, demo.events) take its default upstream
        suites = {name.split(".", 1)[0] if "." in name else None for name in args.task}
        suite = suites.pop() if len(suites) == 1 else None
        default = SUITES.get(suite).default_upstream if suite in SUITES else None
        return runs, default
    suite = SUITES.get(args.suite)
    if suite.discover:
        import importlib

        if args.data_root is None:
            raise UsageError(f"bench run: suite '{args.suite}' needs --data-root DIR")
        module, _, function = suite.discover.partition(":")
        return getattr(importlib.import_module(module), function)(
            args.data_root
        ), suite.default_upstream
    return [TaskRun(name, args.data_root) for name in suite.tasks], suite.default_upstream


def skip_unavailable(task_runs: list) -> tuple[list, dict[str, str]]:
    """A suite's tasks that bench can run, and the others (``Task.unavailable``) -> why: a
    suite run skips those and says so; a task asked for by name runs and fails instead."""
    from bench.task import TASKS

    runnable, skipped = [], {}
    for task_run in task_runs:
        reason = TASKS.get(task_run.task).unavailable
        if reason:
            skipped[task_run.task] = reason
        else:
            runnable.append(task_run)
    return runnable, skipped


def run(args: argparse.Namespace) -> int:
    extra = []
    if args.trust_remote_code:
        extra.append("upstream.trust_remote_code=true")
    if args.device:
        extra.append(f"extract.device={args.device}")
    if args.quiet:
        extra.append("runtime.progress=false")
    if args.generate_data:
        extra.append("data.generate=true")
    if args.quick or args.limit is not None:
        extra.append("quick.enabled=true")
    if args.limit is not None:
        extra.append(f"quick.items_per_split={args.limit}")
    config = load_config(args, extra)
    task_runs, default_upstream = resolve_task_runs(args)
    skipped: dict[str, str] = {}
    if args.suite:
        task_runs, skipped = skip_unavailable(task_runs)
    upstreams = split_upstreams(args.upstream) or ([default_upstream] if default_upstream else [])
    if not upstreams:
        raise UsageError("bench run: --upstream is required (see `bench list upstreams`)")
    if args.name and len(upstreams) > 1:
        raise UsageError("bench run: --name names one upstream; give it with one --upstream")
    if not task_runs:
        raise UsageError(
            f"bench run: no tasks found for suite '{args.suite}' under {args.data_root}"
            + (f" that bench can run (not run: {', '.join(skipped)})" if skipped else "")
        )
    outcomes = run_tasks(
        config, task_runs, upstreams, existing=args.existing, name=args.name, skipped=skipped
    )
    return EXIT_OK if all(outcome.error is None for outcome in outcomes) else EXIT_FAILED


def split_upstreams(given: list[str] | None) -> list[str]:
    """``--upstream A,B --upstream C`` -> [A, B, C], each once, in order."""
    names = [name.strip() for value in given or [] for name in value.split(",")]
    return list(dict.fromkeys(name for name in names if name))


def run_tasks(
    config: DictConfig,
    task_runs: list,
    upstreams: list[str],
    existing: str = "reuse",
    name: str | None = None,
    skipped: dict[str, str] | None = None,
) -> list[TaskOutcome]:
    """Run ``task_runs`` for every upstream on ``config.executor`` and print a summary;
    one TaskOutcome per (upstream, task) (a failed task carries its error). ``skipped``:
    a suite's tasks bench cannot run -> why (the summary lists them). Shared with
    ``bench check --run``."""
    check_names(task_runs, upstreams)

    from bench.executors import make_executor
    from bench.runtime import check_device, configure_threads

    if config.executor == "local":  # elsewhere, each worker checks its own devices
        check_device("extract.device", str(config.extract.device))
        check_device("probe.device", str(config.probe.device))
    configure_threads(config.runtime.threads)
    executor = make_executor(config, existing=existing, name=name)  # type: ignore[arg-type]
    outcomes = executor.run(upstreams, task_runs)
    print_summary(outcomes, config, skipped)
    return outcomes


def check_names(task_runs: list, upstreams: list[str]) -> None:
    """Unknown task or upstream names fail before anything runs (cheap: no torch)."""
    from bench.task import TASKS
    from bench.upstreams import resolve_upstream

    for task_run in task_runs:
        TASKS.get(task_run.task)
    for upstream in upstreams:
        resolve_upstream(upstream)


def format_score(score: dict, metric: str) -> str:
    """``mean ± std`` in the metric's unit; the mean alone for one seed; n/a if not finite."""
    from bench.report.tables import format_stat

    n = len(score.get("values") or [])
    return format_stat(score["mean"], score.get("std"), n, metric)


def print_summary(
    outcomes: list[TaskOutcome],
    config: DictConfig | None = None,
    skipped: dict[str, str] | None = None,
) -> None:
    from bench.report.units import unit_of

    rows = []
    for outcome in outcomes:
        if outcome.error is not None:
            rows.append([outcome.task, outcome.upstream, "FAILED", "", "", "", "", "see below"])
            continue
        record = outcome.record
        assert record is not None
        unit = unit_of(record.main_metric).label
        rows.append(
            [
                record.task,
                record.upstream,
                record.main_metric + (f" ({unit})" if unit else ""),
                format_score(record.score, record.main_metric),
                record.seed_count,
                f"{record.selected['lr']:g}" if "lr" in record.selected else "",
                "reused" if outcome.reused else ("QUICK" if record.quick else "new"),
                _shown(outcome.record_path),
            ]
        )
    seeds = {o.record.seed_count for o in outcomes if o.record is not None}
    spread = "mean ± std over seeds" if seeds != {1} else "one seed, no spread"
    print_table(
        f"bench results (test, {spread})",
        ["task", "upstream", "metric", "test", "seeds", "lr", "result", "record"],
        rows,
    )
    for outcome in outcomes:
        if outcome.error is not None:
            print(f"FAILED {outcome.task} on {outcome.upstream}: {outcome.error}")
        for warning in dict.fromkeys(outcome.warnings):
            print(f"note: {outcome.task} on {outcome.upstream}: {warning}")
    for task, reason in (skipped or {}).items():
        print(f"NOT RUN {task}: {reason}")
    if any(o.record is not None and o.record.quick for o in outcomes):
        print("QUICK results are smoke tests: bench report and bench check leave them out.")
    _print_next_steps(outcomes, config, skipped or {})


def _shown(path: Path | None) -> str:
    """A path relative to the working directory when it is below it (shorter to read)."""
    if path is None:
        return ""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _print_next_steps(
    outcomes: list[TaskOutcome], config: DictConfig | None, skipped: dict[str, str]
) -> None:
    done = [o for o in outcomes if o.record is not None]
    failed = len(outcomes) - len(done)
    print(
        f"{len(done)} of {len(outcomes)} tasks done"
        + (f", {failed} failed" if failed else "")
        + (f" ({sum(o.reused for o in done)} reused)" if any(o.reused for o in done) else "")
        + (
            f"; not run, bench cannot run them: {', '.join(skipped)} (see NOT RUN above)"
            if skipped
            else ""
        )
        + "."
    )
    if not done or config is None:
        return
    import importlib.util

    from bench.config import tracking_uri

    print("next: `bench report` for the leaderboard", end="")
    if config.tracking.enabled:
        uri = tracking_uri(config)
        ui = f"`mlflow ui --backend-store-uri {uri}` to browse runs"
        if importlib.util.find_spec("flask") is None:  # mlflow-skinny logs; the UI needs mlflow
            ui += " (after pip install 'bench-ssl[ui]')"
        unlogged = [o for o in done if (o.record.mlflow or {}).get("status") != "logged"]
        if unlogged:  # the store failed: browsing it would not show these
            ui = f"`bench log` once MLflow works ({len(unlogged)} record(s) not logged)"
        print(f"; {ui}", end="")
    print()
