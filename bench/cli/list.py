"""``bench list``: what can be run."""

from __future__ import annotations

import argparse

from bench.cli.common import print_table

#: marks a task bench cannot run here (``Task.unavailable``): suites skip it
NEEDS_ASSETS_MARK = "NEEDS EXTERNAL ASSETS, not run by bench (see its docs):"

EXAMPLES = """\
examples:
  bench list tasks
  bench list tasks --suite demo
  bench list upstreams
  bench list suites
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list tasks, upstreams or suites",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=("tasks", "upstreams", "suites"))
    parser.add_argument("--suite", metavar="SUITE", help="only the tasks of this suite")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    {"tasks": list_tasks, "upstreams": list_upstreams, "suites": list_suites}[args.what](args)
    return 0


def list_tasks(args: argparse.Namespace) -> None:
    from bench.task import TASKS

    rows = []
    for name in TASKS.names():
        task_cls = TASKS.get(name)
        metadata = task_cls.metadata
        if args.suite and metadata.suite != args.suite:
            continue
        # like [remote code] for upstreams: a task that needs what bench cannot provide
        mark = f"{NEEDS_ASSETS_MARK} " if task_cls.unavailable else ""
        rows.append([name, metadata.main_metric, task_cls.protocol, mark + metadata.data_layout])
    print_table(
        "tasks",
        ["task", "metric", "protocol", "--data-root holds"],
        rows,
        wrap=["--data-root holds"],
    )


def list_upstreams(args: argparse.Namespace) -> None:
    from bench.upstreams import UPSTREAMS

    rows = []
    for name in UPSTREAMS.names():
        bundle = UPSTREAMS.get(name)
        rows.append(
            [
                name,
                bundle.family,
                bundle.source,
                "?" if bundle.num_layers is None else bundle.num_layers,
                "?" if bundle.hidden_size is None else bundle.hidden_size,
                "?" if bundle.frame_rate is None else f"{bundle.frame_rate:g} Hz",
                ("[remote code] " if bundle.remote_code else "") + bundle.description,
            ]
        )
    print_table(
        "upstreams",
        ["name", "family", "source", "layers", "dim", "frame rate", "description"],
        rows,
        wrap=["description"],
    )


def list_suites(args: argparse.Namespace) -> None:
    from bench.task import SUITES

    rows = []
    for name in SUITES.names():
        suite = SUITES.get(name)
        tasks = ", ".join(suite.tasks) if suite.tasks else "(every task found under --data-root)"
        rows.append([name, suite.description, tasks, suite.default_upstream or "-"])
    print_table(
        "suites",
        ["suite", "description", "tasks", "default upstream"],
        rows,
        wrap=["description", "tasks"],
    )
