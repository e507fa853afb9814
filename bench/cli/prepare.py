"""``bench prepare``: verify a corpus (or generate a demo one) and show what a task reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_config_options, load_config, print_table

EXAMPLES = """\
examples:
  bench prepare demo.keywords                     generates the demo data (paths.data/demo)
  bench prepare superb.ks --data-root /data
  bench prepare hear --task-dir /data/hear/tasks/esc50-v2.0.0-full

exit status: 0 the data is ready; 1 it is missing or incomplete (the message says what);
2 bad command line, configuration or task name.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="verify a task's corpus (generate it for demo tasks)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", metavar="TASK")
    parser.add_argument(
        "--data-root", type=Path, metavar="DIR", help="directory holding the corpus"
    )
    parser.add_argument(
        "--task-dir", type=Path, metavar="DIR", help="a HEAR task directory (with task hear)"
    )
    parser.add_argument(
        "--generate-data",
        action="store_true",
        help="let a demo task generate its data under --data-root",
    )
    add_config_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.errors import UsageError
    from bench.runner import make_task
    from bench.task import TASKS, TaskRun

    config = load_config(args, ["data.generate=true"] if args.generate_data else [])
    task_cls = TASKS.get(args.task)
    if args.task_dir is not None and args.task != "hear":
        raise UsageError("bench prepare: --task-dir is for the task hear (a HEAR task directory)")
    root = args.task_dir if args.task_dir is not None else args.data_root
    task = make_task(task_cls, TaskRun(task_cls.metadata.name, root), config)
    name = task.metadata.name
    task.prepare()
    if task.corpus_report is not None:
        print(task.corpus_report.render())
    data = task.load()
    data.check(name)
    rows = [[split, len(items)] for split, items in data.splits.items()]
    print(f"{name}: data at {task.data_root}")
    print_table(f"{name} items", ["split", "items"], rows)
    return 0
