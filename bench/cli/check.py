"""``bench check``: the regression gate for a checkpoint (see bench.gate)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_config_options, load_config

EXAMPLES = """\
examples:
  bench check --upstream ./ckpt --baseline results/baselines/demo-fbank_no_cmvn.json
  bench check --upstream ./ckpt --baseline base.json --run --data-root /data probe.seeds=[0]
  bench check --upstream U --baseline base.json --tolerance 0.5 --tolerance superb.ks=0.2,2sd

tolerance: [TASK=]AMOUNT[,AMOUNT]; AMOUNT is a number in the metric's unit or <k>sd (k times
the baseline's seed standard deviation); with both, the larger drop is allowed. Without
TASK= it applies to every task without its own. Default: 2sd.

Without --run, each task's result is the checkpoint's record made with the baseline's
settings (same settings digest), else its most complete one; the verdict says which.
Quick-mode results are never checked.

exit status: 0 pass; 1 a task regressed beyond its tolerance; 2 could not evaluate (a task
without a result, a run that failed, other probe settings or data than the baseline's).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="regression gate: compare a checkpoint with a baseline",
        description="Compare a checkpoint's results with a stored baseline, task by task, "
        "direction-aware; exit non-zero on regression.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--upstream", "-u", required=True, metavar="U", help="the checkpoint")
    parser.add_argument("--baseline", type=Path, required=True, metavar="FILE")
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="SPEC",
        help="allowed drop, e.g. 1.0, 2sd, superb.ks=0.5 (repeatable)",
    )
    parser.add_argument(
        "--run", action="store_true", help="run the baseline's tasks for the checkpoint first"
    )
    parser.add_argument("--data-root", type=Path, metavar="DIR", help="with --run: the corpora")
    parser.add_argument(
        "--records", type=Path, metavar="DIR", help="records folder (default: paths.records)"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write the verdict there (PR comment)"
    )
    add_config_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.baseline import Baseline
    from bench.fileio import atomic_write_text
    from bench.gate import check_policy, compare, parse_tolerances, verdict_markdown

    config = load_config(args)
    baseline = Baseline.load(args.baseline)
    policy = parse_tolerances(args.tolerance)
    check_policy(baseline, policy)  # before spending time on runs
    if args.run:
        records, reasons = _run_tasks(config, args, list(baseline.tasks))
        notes: list[str] = []
    else:
        records, reasons, notes = _read_records(
            args.records or Path(config.paths.records), args.upstream, baseline
        )
    result = compare(baseline, records, policy, reasons, notes, upstream=args.upstream)
    text = verdict_markdown(result)
    print(text, end="")
    if args.markdown:
        atomic_write_text(args.markdown, text)
    return result.exit_code


def _run_tasks(config: object, args: argparse.Namespace, tasks: list[str]) -> tuple[dict, dict]:
    """Run the tasks through ``bench run``'s machinery; only this run's records count."""
    from bench.cli.run import run_tasks
    from bench.task import TaskRun

    outcomes = run_tasks(config, [TaskRun(task, args.data_root) for task in tasks], [args.upstream])
    records = {o.task: o.record for o in outcomes if o.record is not None}
    reasons = {o.task: f"the run failed: {o.error}" for o in outcomes if o.error is not None}
    return records, reasons


def _read_records(records_dir: Path, upstream: str, baseline: object) -> tuple[dict, dict, list]:
    from bench.gate import GateError, pick_records
    from bench.identity import canonical_upstream_arg
    from bench.records import read_records

    upstream = canonical_upstream_arg(upstream)
    try:
        candidates = [r for r in read_records(records_dir) if r.upstream == upstream]
    except ValueError as error:  # a damaged record
        raise GateError(str(error)) from None
    picked = pick_records(baseline, candidates)  # type: ignore[arg-type]
    for task in baseline.tasks:  # type: ignore[attr-defined]
        if task not in picked.records and task not in picked.reasons:
            picked.reasons[task] = (
                f"no record of {upstream} in {records_dir} (run the task, or pass --run)"
            )
    return picked.records, picked.reasons, picked.notes
