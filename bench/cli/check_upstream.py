"""``bench check-upstream U``: build an upstream and check it against its declared interface.

Exit codes: 0 every check passed, 1 a check failed, 2 the upstream could not be built.
Top-level imports stay light; torch and the upstream load inside ``run``.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Build the upstream U and check that it does what its interface declares: layer count and
widths, lengths vs num_frames, frame rate, padding invariance (when claimed), determinism,
finite float32 outputs. U is a registered name (see `bench list upstreams`), a hub id, a
local checkpoint directory, or hf:<id|dir>, s3prl:<name>, hear:<module>[:<model file>]."""

EPILOG = """\
examples:
  bench check-upstream fbank_no_cmvn
  bench check-upstream /ckpts/my-wavlm --device cuda
  bench check-upstream usad_base --trust-remote-code

exit status: 0 all checks pass, 1 a check failed, 2 the upstream could not be loaded"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-upstream",
        help="check an upstream against its declared interface",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "upstream", metavar="U", help="registered name, hub id or checkpoint directory"
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow code that is not part of bench to run (checkpoints that ship code, "
        "hear:<module>); read it first",
    )
    parser.add_argument("--device", default="cpu", help="torch device to run on (default: cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.conformance import check_upstream, format_report
    from bench.upstreams import resolve_upstream

    try:
        bundle = resolve_upstream(args.upstream)
        upstream = bundle.build(trust_remote_code=args.trust_remote_code).to(args.device)
    except Exception as err:  # any load failure is reported the same way: exit 2
        print(f"bench check-upstream: cannot load '{args.upstream}': {err}", file=sys.stderr)
        return 2
    report = check_upstream(upstream, bundle=bundle, device=args.device)
    print(format_report(report))
    return 0 if report.passed else 1
