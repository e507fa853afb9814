"""``bench prepare``: verify a corpus (or generate a demo one) and show what a task reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import add_config_options, load_config, print_table

EXAMPLES = """\
examples:
  bench prepare demo.keywords
  bench prepare superb.ks --data-root /data
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
    add_config_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.runner import resolve_data_root
    from bench.task import TASKS, TaskRun

    config = load_config(args)
    task_cls = TASKS.get(args.task)
    name = task_cls.metadata.name
    task = task_cls(
        resolve_data_root(task_cls, TaskRun(name, args.data_root), config),
        config.task_options.get(name, {}),
    )
    task.manifest_dir = Path(config.paths.data) / "manifests"
    task.prepare()
    if task.corpus_report is not None:
        print(task.corpus_report.render())
    data = task.load()
    data.check(name)
    rows = [[split, len(items)] for split, items in data.splits.items()]
    print(f"{name}: data at {task.data_root}")
    print_table(f"{name} items", ["split", "items"], rows)
    return 0
