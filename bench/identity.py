"""A result's identity: what makes two runs the same experiment.

A record's identity is (upstream, task, settings, inputs):

- ``upstream``: the name the result is recorded under: ``--name`` when given, else the
  upstream's canonical id (``canonical_upstream``: a registered name, a hub id with its
  revision, or the resolved path of a local checkpoint, so ``./x``, ``x`` and ``/abs/x``
  are one upstream);
- ``task``: the task's name (``hear/<task dir name>`` for a generic HEAR directory);
- ``settings``: every setting that changes what a number means, comparable across
  upstreams and machines (the resolved probe settings, task options, the protocol, quick
  limits);
- ``inputs``: what this run read (the upstream's source and weights hash, the data
  fingerprint, the feature cache key).

The digest of all four names the identity; ``settings_digest`` (task and settings only)
says whether two upstreams' results were made the same way (the regression gate matches a
baseline by it). Adding a field to the identity is one line in the runner's
``identity_settings`` or ``identity_inputs`` (bench.runner): every digest changes with it, so
no earlier result is reused for the new setting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

#: bump when the meaning of a field changes (every earlier identity then differs)
IDENTITY_VERSION = 1
DIGEST_LENGTH = 16


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest_of(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:DIGEST_LENGTH]


@dataclass(frozen=True)
class RecordIdentity:
    upstream: str
    task: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    version: int = IDENTITY_VERSION

    @property
    def digest(self) -> str:
        return digest_of(
            {
                "version": self.version,
                "upstream": self.upstream,
                "task": self.task,
                "settings": self.settings,
                "inputs": self.inputs,
            }
        )

    @property
    def settings_digest(self) -> str:
        """The task and settings alone: equal for results made the same way."""
        return digest_of({"version": self.version, "task": self.task, "settings": self.settings})

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "settings_digest": self.settings_digest,
            "version": self.version,
            "upstream": self.upstream,
            "task": self.task,
            "settings": json.loads(canonical_json(self.settings)),
            "inputs": json.loads(canonical_json(self.inputs)),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RecordIdentity:
        return cls(
            upstream=str(payload["upstream"]),
            task=str(payload["task"]),
            settings=dict(payload.get("settings") or {}),
            inputs=dict(payload.get("inputs") or {}),
            version=int(payload.get("version", IDENTITY_VERSION)),
        )


def canonical_upstream(typed: str, bundle_name: str, registered: bool, revision: str | None) -> str:
    """The one name of an upstream however it was typed.

    Registered names stay as they are (``wavlm_base_plus``); a local checkpoint is its
    resolved absolute path (``./x``, ``x``, ``hf:x`` and ``/abs/x`` alike); anything else
    (hub ids, ``s3prl:``, ``hear:``) is the name its bundle resolved to. A pinned
    ``upstream.revision`` is appended as ``@<revision>``.
    """
    at = f"@{revision}" if revision else ""
    if registered:
        return typed + at
    local = Path(typed.removeprefix("hf:")).expanduser()
    if local.exists():
        return str(local.resolve())
    return bundle_name if "@" in bundle_name else bundle_name + at


def canonical_upstream_arg(text: str) -> str:
    """What the user typed for an existing result's upstream, as the runner records it:
    registered names as typed, existing local paths resolved. Cheap: no detector runs."""
    from bench.upstreams import UPSTREAMS

    if text in UPSTREAMS:
        return text
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


# -- which result counts ----------------------------------------------------------------------


class Candidate(Protocol):
    """A result that can be chosen: a ResultRecord, or a report's TaskResult."""

    @property
    def upstream(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def is_quick(self) -> bool: ...
    @property
    def rank(self) -> tuple: ...
    @property
    def description(self) -> str: ...
    @property
    def protocol_label(self) -> str: ...


C = TypeVar("C", bound=Candidate)


@dataclass
class Choice:
    """The result chosen for each (upstream, task), and notes on what was passed over."""

    chosen: list[Any]
    notes: list[str] = field(default_factory=list)


def describe_result(digest: str, seeds: int, own_schedule: bool, quick: bool, when: str) -> str:
    """``3f2a9c01 (3 seeds, the task's schedule, 2026-12-01T09:00)``: enough to tell apart."""
    parts = [
        f"{seeds} seed{'' if seeds == 1 else 's'}",
        "the task's schedule" if own_schedule else "probe overrides",
        *(["QUICK"] if quick else []),
        when[:16],
    ]
    return f"{digest[:8]} ({', '.join(p for p in parts if p)})"


def choose(
    candidates: Iterable[C], identities: Sequence[str] = (), include_quick: bool = False
) -> Choice:
    """One result per (upstream, task, protocol label), from the latest result of each
    identity (two protocols' numbers are two results, never one chosen over the other).

    ``identities``: digests (or prefixes) to use where they apply. Otherwise quick-mode
    results are left out (unless ``include_quick``), and among several identities the most
    complete protocol wins (``rank``: more seeds, then the task's own schedule, then more
    data, then the newer). Every choice between several is noted with what was passed over.
    """
    groups: dict[tuple[str, str, str], list[C]] = {}
    for candidate in candidates:
        key = (candidate.upstream, candidate.task, candidate.protocol_label)
        groups.setdefault(key, []).append(candidate)
    chosen: list[C] = []
    notes: list[str] = []
    used: set[str] = set()
    for (upstream, task, _), group in sorted(groups.items()):
        asked = [c for c in group if any(c.digest.startswith(p) for p in identities)]
        used |= {p for p in identities for c in asked if c.digest.startswith(p)}
        if asked:
            chosen.append(max(asked, key=_full_first))
            continue
        eligible = group if include_quick else [c for c in group if not c.is_quick]
        if not eligible:
            notes.append(
                f"{upstream} on {task}: only quick-mode results "
                f"({', '.join(c.description for c in group)}), left out: a quick check is not "
                "a full result (--include-quick shows it, marked)"
            )
            continue
        best = max(eligible, key=_full_first)
        chosen.append(best)
        others = [c for c in group if c is not best]
        if others:
            notes.append(
                f"{upstream} on {task}: {len(group)} results with different settings; used "
                f"{best.description}, not {', '.join(c.description for c in others)} "
                "(pick another with --identity DIGEST)"
            )
    if unused := sorted(set(identities) - used):
        notes.append(f"no result has identity {', '.join(unused)}")
    return Choice(chosen, notes)


def _full_first(candidate: Candidate) -> tuple:
    return (not candidate.is_quick, *candidate.rank)
