"""Small file helpers: atomic writes, temporaries of dead processes, locks, checksums, names.

Every temporary file or folder bench writes is named ``.<name>.<kind>-<pid>@<host>``
(``kind`` is ``tmp`` for files, ``partial`` for folders), so a process killed mid-write
leaves something recognisable: ``remove_stale_temporaries`` deletes those whose process is
gone (this host: the PID no longer runs; another host sharing the folder: older than a
day), and cache and data folders call it when they are opened.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import filelock

log = logging.getLogger(__name__)

#: a temporary of a process on another host is left alone for this long (it may be alive)
FOREIGN_TEMPORARY_SECONDS = 24 * 3600
_TEMPORARY = re.compile(r"^\..+\.(?:tmp|partial)-(?P<pid>\d+)(?:@(?P<host>[A-Za-z0-9._-]+))?$")


def safe_name(name: str) -> str:
    """A file-system-safe form of a name (hub ids and paths included)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name).strip("-.") or "unnamed"


_HOST = safe_name(socket.gethostname())


def temporary_path(path: Path, kind: str = "tmp") -> Path:
    """Where this process builds ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}@{_HOST}")


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same directory, fsync, then rename into place:
    readers see the old file or the complete new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporaries in ``directory`` left by processes that no longer run."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or not _is_stale(entry, int(match["pid"]), match["host"]):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info(
            "removed %d temporary file(s) of interrupted runs in %s: %s",
            len(removed),
            directory,
            ", ".join(p.name for p in removed[:3]) + (" ..." if len(removed) > 3 else ""),
        )
    return removed


def _is_stale(entry: os.DirEntry[str], pid: int, host: str | None) -> bool:
    if host is not None and host != _HOST:
        try:
            return time.time() - entry.stat(follow_symlinks=False).st_mtime > (
                FOREIGN_TEMPORARY_SECONDS
            )
        except FileNotFoundError:
            return False
    return not process_is_running(pid)


def process_is_running(pid: int) -> bool:
    """Whether a process with this PID runs on this host (signal 0 delivers nothing)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


@contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block; a
    process that finds it held says what it waits for, then waits. The operating system
    releases it when the holder dies, even by kill -9."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("waiting for another bench process to finish %s (lock %s)", what, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
