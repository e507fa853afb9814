"""Listing and reading a corpus's files: nothing that cannot be read is skipped.

``Path.glob`` hides every problem a reader must report: a folder it cannot list looks
empty, a broken symlink looks absent, and ``*.wav`` misses ``*.WAV``. Corpus readers list
folders and files through these functions instead, which match suffixes without regard
to case and raise ``DataError`` naming the path and the cause for anything they cannot
read. The only names left out on purpose are hidden ones (``.*``): the ``._x.wav``
resource files of Mac-packed copies are not audio.

For corpora defined by lists (CSV, label files, trial lists), ``unreadable_files`` sorts
the listed files into missing and unreadable ones, and ``read_text`` reads a list file as
UTF-8 with errors that name the file and line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.data import DataError

#: audio formats the readers pick up (soundfile reads them all)
AUDIO_SUFFIXES = (".wav", ".flac")


def list_subdirs(directory: Path) -> list[Path]:
    """The folders in ``directory``, sorted by name; hidden ones left out.

    An entry whose type cannot be determined (a symlink to nothing, a folder that
    cannot be searched) is an error, not a non-folder."""
    return [Path(entry.path) for entry in _entries(directory) if _is_dir(entry)]


def list_files(directory: Path, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> list[Path]:
    """The files in ``directory`` whose suffix is one of ``suffixes`` in any case
    (``.wav`` finds ``x.WAV``), sorted by name; hidden ones left out.

    A matching name that is not a regular file (a broken symlink, a folder, a FIFO) is
    an error; whether each file can be read shows when it is read (``unreadable_files``
    checks a list of them up front)."""
    wanted = {suffix.lower() for suffix in suffixes}
    files = []
    for entry in _entries(directory):
        if Path(entry.name).suffix.lower() in wanted:
            _require_regular_file(entry)
            files.append(Path(entry.path))
    return files


def find_files(root: Path, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> list[Path]:
    """``list_files`` over ``root`` and every folder below it, sorted by path
    (e.g. LibriSpeech's ``<speaker>/<chapter>/*.flac``)."""
    found: list[Path] = []
    pending = [Path(root)]
    while pending:
        directory = pending.pop()
        found += list_files(directory, suffixes)
        pending += list_subdirs(directory)
    return sorted(found)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as scan:
            entries = [entry for entry in scan if not entry.name.startswith(".")]
    except FileNotFoundError:
        raise DataError(f"{directory}: folder is missing") from None
    except NotADirectoryError:
        raise DataError(f"{directory}: not a folder") from None
    except OSError as error:
        raise DataError(f"{directory}: cannot list folder ({_cause(error)})") from None
    return sorted(entries, key=lambda entry: entry.name)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        if entry.is_dir():
            return True
        if entry.is_symlink() and not os.path.exists(entry.path):
            raise DataError(
                f"{entry.path}: symlink to a missing target ({os.readlink(entry.path)})"
            )
    except OSError as error:
        raise DataError(f"{entry.path}: cannot read ({_cause(error)})") from None
    return False


def _require_regular_file(entry: os.DirEntry[str]) -> None:
    try:
        if entry.is_file():
            return
        if entry.is_symlink() and not os.path.exists(entry.path):
            problem = f"symlink to a missing target ({os.readlink(entry.path)})"
        elif entry.is_dir():
            problem = "a folder, not an audio file"
        else:
            problem = "not a regular file"
    except OSError as error:
        problem = f"cannot read ({_cause(error)})"
    raise DataError(f"{entry.path}: {problem}")


@dataclass(frozen=True)
class FileProblems:
    """Listed files that cannot be used: ``missing`` and ``unreadable`` (name, cause)."""

    missing: list[str]
    unreadable: list[tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unreadable)


def unreadable_files(files: Iterable[tuple[str, Path]]) -> FileProblems:
    """Which of ``(name, path)`` are missing or cannot be read (permissions, not a file)."""
    missing: list[str] = []
    unreadable: list[tuple[str, str]] = []
    for name, path in files:
        problem = file_problem(path)
        if problem == "missing":
            missing.append(name)
        elif problem is not None:
            unreadable.append((name, problem))
    return FileProblems(missing, unreadable)


def file_problem(path: Path) -> str | None:
    """None for a readable regular file; else "missing" or the cause."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "symlink to a missing target" if os.path.islink(path) else "missing"
    except OSError as error:  # e.g. a folder above it that cannot be searched
        return _cause(error)
    if not stat.S_ISREG(status.st_mode):
        return "a folder, not a file" if stat.S_ISDIR(status.st_mode) else "not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def read_text(path: Path, what: str = "") -> str:
    """A UTF-8 text file (a list, a CSV); errors name the file, the line and the cause."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} is missing{f' ({what})' if what else ''}") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({_cause(error)})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
            f"{error.start}); is the file corrupt?"
        ) from None


def _cause(error: OSError) -> str:
    return (error.strerror or type(error).__name__).lower()
