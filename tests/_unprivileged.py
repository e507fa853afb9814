"""Permission tests that also work as root.

``chmod 000`` stops an ordinary user but not root (CAP_DAC_OVERRIDE), and CI and these
machines run the tests as root. ``call_unprivileged`` runs a function where permissions
apply: in-process for an ordinary user; for root, in a forked child that first becomes
``nobody``. The fake tree must then live where ``nobody`` can reach it (``public_tmp_dir``:
pytest's own tmp folders are private to their owner). Where neither works, the test is
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NOBODY = 65534


@dataclass(frozen=True)
class Outcome:
    """What the function did: returned ``value`` (its repr) or raised ``error`` (type, message)."""

    value: str | None = None
    error_type: str | None = None
    message: str = ""

    @property
    def raised(self) -> bool:
        return self.error_type is not None


def _outcome(function: Callable[..., Any], args: tuple[Any, ...]) -> Outcome:
    try:
        return Outcome(value=repr(function(*args)))
    except Exception as error:
        return Outcome(error_type=type(error).__name__, message=str(error))


def call_unprivileged(function: Callable[..., Any], *args: Any) -> Outcome:
    if os.geteuid() != 0:
        return _outcome(function, args)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run, report, exit without pytest's cleanup
        status = 0
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            outcome = _outcome(function, args)
        except OSError as error:
            outcome, status = Outcome(error_type="SetuidError", message=str(error)), 3
        with os.fdopen(write_end, "w") as pipe:
            json.dump(outcome.__dict__, pipe)
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    outcome = Outcome(**json.loads(report))
    if outcome.error_type == "SetuidError":
        pytest.skip(f"running as root and cannot become nobody ({outcome.message})")
    return outcome


def make_unreadable(path: Path) -> None:
    """No permissions at all: a folder can be neither listed nor searched, a file not read."""
    os.chmod(path, 0)


def public_tmp_dir() -> Iterator[Path]:
    """A tmp folder that ``nobody`` can traverse (files written by the test stay 0644);
    permissions are restored before it is removed. Wrap it in a fixture."""
    directory = Path(tempfile.mkdtemp(prefix="bench-perm-"))
    os.chmod(directory, 0o755)
    yield directory
    for folder, subfolders, _ in os.walk(directory):  # top-down: restore before descending
        for path in (Path(folder) / name for name in subfolders):
            if not path.is_symlink():
                os.chmod(path, 0o755)
    shutil.rmtree(directory, ignore_errors=True)
