"""``bench baseline``: store a reference checkpoint's results for ``bench check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_config_options, load_config

EXAMPLES = """\
examples:
  bench run --suite demo --upstream fbank_no_cmvn
  bench baseline save --upstream fbank_no_cmvn --out results/baselines/demo-fbank_no_cmvn.json
  bench baseline save --upstream ./ckpt-v1 --tasks 'superb.*' --out results/baselines/v1.json
  bench baseline show results/baselines/demo-fbank_no_cmvn.json

A baseline keeps each task's main test metric (mean, seed spread, n, direction, unit), the
probe settings and data sizes behind it, the settings digest of its result (bench.identity),
the upstream's weights hash, bench's version and the date. `bench check` compares a new
checkpoint with it. An existing --out is replaced only with --force; results with different
seed counts or probe protocols in one baseline are warned about; quick-mode results are
never kept.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="store or show a baseline for regression checks",
        description="Store a reference checkpoint's results as a baseline, or show one.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    save = actions.add_parser(
        "save",
        help="make a baseline from an upstream's records",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    save.add_argument("--upstream", "-u", required=True, metavar="U", help="upstream as run")
    save.add_argument(
        "--tasks", nargs="+", metavar="T", help="tasks to keep (default: all); patterns allowed"
    )
    save.add_argument("--out", type=Path, required=True, metavar="FILE", help="baseline JSON")
    save.add_argument("--force", action="store_true", help="replace --out if it exists")
    save.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="DIGEST",
        help="use the result with this identity where an upstream has several (repeatable)",
    )
    save.add_argument(
        "--records", type=Path, metavar="DIR", help="records folder (default: paths.records)"
    )
    add_config_options(save)
    save.set_defaults(func=run_save)
    show = actions.add_parser("show", help="print a baseline as a table")
    show.add_argument("file", type=Path, metavar="FILE")
    show.set_defaults(func=run_show)


def run_save(args: argparse.Namespace) -> int:
    import logging

    from bench.baseline import BaselineError, baseline_from_records, mixing_warnings
    from bench.identity import canonical_upstream_arg, choose
    from bench.records import read_records
    from bench.report.results import is_pattern, matches_any

    config = load_config(args)
    if args.out.exists() and not args.force:
        raise BaselineError(
            f"{args.out} exists; pass --force to replace it (or choose another --out)"
        )
    upstream = canonical_upstream_arg(args.upstream)
    records_dir = args.records or Path(config.paths.records)
    try:
        records = [r for r in read_records(records_dir) if r.upstream == upstream]
    except ValueError as error:  # a corrupt record
        raise BaselineError(str(error)) from None
    if args.tasks:
        records = [r for r in records if matches_any(r.task, args.tasks)]
        missing = [
            t for t in args.tasks if not is_pattern(t) and t not in {r.task for r in records}
        ]
        if missing:
            raise BaselineError(
                f"no record of {upstream} in {records_dir} for: {', '.join(missing)}"
            )
    if not records:
        raise BaselineError(f"no records of {upstream} in {records_dir}; run `bench run` first")
    choice = choose(records, args.identity)
    log = logging.getLogger("bench.cli")
    for note in choice.notes:
        log.warning("%s", note)
    if not choice.chosen:
        raise BaselineError(f"no full (non-quick) result of {upstream} to keep")
    for warning in mixing_warnings(choice.chosen):
        log.warning("%s", warning)
    baseline = baseline_from_records(choice.chosen)
    path = baseline.save(args.out)
    print(f"wrote {path}: {upstream} on {', '.join(baseline.tasks)}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from bench.baseline import Baseline
    from bench.cli.common import print_table
    from bench.report.tables import format_stat

    baseline = Baseline.load(args.file)
    rows = [
        [
            name,
            f"{task.metric} {'↑' if task.higher_is_better else '↓'}",
            format_stat(task.mean, task.std, task.n, task.metric),
            task.n,
            task.unit,
            task.protocol,
        ]
        for name, task in baseline.tasks.items()
    ]
    title = (
        f"baseline {baseline.upstream} (weights {baseline.weights_hash[:12]}, "
        f"bench {baseline.bench_version}, {baseline.created_at})"
    )
    print_table(title, ["task", "metric", "test", "seeds", "unit", "protocol"], rows)
    return 0
