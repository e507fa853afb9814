"""``bench new-task hear SOURCE``: a HEAR task directory from a folder of labelled audio."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  bench new-task hear my_sounds/                   my_sounds/<label>/*.wav -> ./my_sounds-v1.0.0-full/
  bench new-task hear my_sounds/ --folds 5 --out tasks/my_sounds-v1.0.0-full
  bench new-task hear my_sounds/ --split 0.8 0.1 0.1 --name birds --version v2

then:
  bench run --task hear --task-dir ./my_sounds-v1.0.0-full

The format of a task directory (event tasks too) is in docs/hear.md.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "new-task",
        help="make a HEAR task directory from a folder of labelled audio",
        description=(
            "Write a HEAR scene task directory (task_metadata.json, labelvocabulary.csv, split "
            "JSON, 16000/<split>/*.wav) from SOURCE/<label>/*.wav, split per label."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=("hear",), help="the kind of task directory")
    parser.add_argument("source", type=Path, metavar="SOURCE", help="one folder per label")
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out", type=Path, metavar="DIR", help="the task directory (default: ./NAME-VERSION-full)"
    )
    output.add_argument("--name", help="task_name (default: SOURCE's folder name)")
    output.add_argument("--version", default="v1.0.0", help="version (default: v1.0.0)")
    splits = output.add_mutually_exclusive_group()
    splits.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K folds (new_split_kfold) instead of train/valid/test",
    )
    splits.add_argument(
        "--split",
        type=float,
        nargs=3,
        metavar=("TRAIN", "VALID", "TEST"),
        help="train/valid/test fractions of each label's files (default: 0.7 0.15 0.15)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.fileio import safe_name
    from bench.hear.new_task import DEFAULT_FRACTIONS, new_scene_task

    name = safe_name(args.name or args.source.resolve().name)
    out = args.out or Path(f"{name}-{args.version}-full")
    summary = new_scene_task(
        args.source,
        out,
        name=name,
        version=args.version,
        folds=args.folds,
        fractions=args.split or DEFAULT_FRACTIONS,
    )
    sizes = ", ".join(f"{split} {count}" for split, count in summary.files_per_split.items())
    print(f"wrote {summary.task_dir}: {len(summary.labels)} labels; files per split: {sizes}")
    print(f"run it: bench run --task hear --task-dir {summary.task_dir}")
    return 0
