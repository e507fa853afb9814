"""The feature cache: every layer of a frozen upstream, computed once per utterance.

Two kinds, by what the task's probe needs:

- ``pooled``: per utterance and layer, the mean of the hidden states over valid frames,
  and the mean of the per-frame layer-normed states. SUPERB's utterance head
  (Linear -> mean pool -> Linear) on a weighted sum of layers is linear up to the
  pooling, so these means give exactly the probe of the full sequences.
- ``sequence``: the frames themselves, float16 ``[T, L, D]`` per utterance, for frame-level
  heads; memory-mapped at training time.
- ``scene``: the upstream's own clip embedding (e.g. a HEAR module's scene embedding) as
  one layer, raw and layer-normed, stored and read like ``pooled``.

A cache directory is keyed by everything that changes the features: the upstream's
weights hash and layer layout, the audio policy, the cache format and the data
fingerprint (paths, segments, sizes and modification times of the audio). The audio is
planned into shards of about ``shard_seconds`` (``plan.json``); each shard is written
atomically, then its commit record: the shard's checksum and size, and what binds it to
its place (its index, its items' audio refs, the digest of the plan). A shard whose commit
record is missing or does not match is extracted again, so an interrupted extraction
resumes where it stopped, and a corrupt shard, or one moved or copied into another
shard's place, is detected and redone, never used. A plan that cannot be read (empty,
truncated by a full disk) is made again; temporaries of killed runs are removed when the
cache is opened.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.audio import audio_info, segment_duration
from bench.data import Item
from bench.fileio import (
    atomic_write,
    atomic_write_text,
    remove_stale_temporaries,
    safe_name,
    sha256_file,
)

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
#: commit records that bind a shard to its place (index, refs, plan digest)
RECORD_FORMAT = 2
#: bump when bench.audio's policy (downmix, resampler) changes
AUDIO_POLICY = "mono-mean/soxr-hq/v1"

AudioRef = tuple[str, float, float | None]
#: kinds holding one ``[2, L, D]`` row per item
POOLED_KINDS = ("pooled", "scene")


class CacheError(RuntimeError):
    """A cache that cannot be used; the message names the directory and the problem."""


@dataclass(frozen=True)
class CacheKey:
    upstream: str
    weights_hash: str
    hidden_sizes: tuple[int, ...]
    frame_rate: float
    sample_rate: int
    kind: str
    data_fingerprint: str
    gain_db: float = 0.0
    #: every clip zero-padded or trimmed to this many seconds (HEAR's sample_duration)
    clip_seconds: float | None = None
    audio_policy: str = AUDIO_POLICY
    format_version: int = CACHE_FORMAT_VERSION
    #: the layers a sequence cache holds, in order (None: every layer)
    layers: tuple[int, ...] | None = None
    #: a sox chain every read goes through (``bench.audio_effects``; it holds the gain, so
    #: ``gain_db`` is 0 then); None: none
    effects: tuple[tuple[str, ...], ...] | None = None

    def digest(self) -> str:
        fields = asdict(self)
        if fields["layers"] is None:  # every layer: the key caches had before layer subsets
            del fields["layers"]
        if fields["effects"] is None:  # the key caches had before sox chains
            del fields["effects"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def data_fingerprint(refs: Sequence[AudioRef]) -> str:
    """Hash of the audio a task uses: paths, segments, and each file's size and mtime."""
    digest = hashlib.sha256()
    stats: dict[str, str] = {}
    for path, start, end in sorted(refs, key=_ref_sort_key):
        if path not in stats:
            try:
                stat = os.stat(path)
            except OSError as error:
                raise CacheError(f"{path}: cannot read audio file ({error.strerror})") from None
            stats[path] = f"{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(f"{path}|{start}|{end}|{stats[path]}\n".encode())
    return digest.hexdigest()


def _ref_sort_key(ref: AudioRef) -> tuple[str, float, float]:
    path, start, end = ref
    return (path, start, -1.0 if end is None else end)


def unique_refs(items: Sequence[Item]) -> list[AudioRef]:
    return sorted({item.audio_ref for item in items}, key=_ref_sort_key)


@dataclass(frozen=True)
class Shard:
    index: int
    refs: tuple[AudioRef, ...]
    durations: tuple[float, ...]

    @property
    def seconds(self) -> float:
        return sum(self.durations)


def plan_shards(
    refs: Sequence[AudioRef], durations: Sequence[float], shard_seconds: float
) -> list[Shard]:
    """Shards of about ``shard_seconds`` of audio, items sorted by duration (cheap batching)."""
    order = sorted(range(len(refs)), key=lambda i: (durations[i], _ref_sort_key(refs[i])))
    shards: list[Shard] = []
    current: list[int] = []
    seconds = 0.0
    for i in order:
        current.append(i)
        seconds += durations[i]
        if seconds >= shard_seconds:
            shards.append(_make_shard(len(shards), current, refs, durations))
            current, seconds = [], 0.0
    if current:
        shards.append(_make_shard(len(shards), current, refs, durations))
    return shards


def _make_shard(
    index: int, members: list[int], refs: Sequence[AudioRef], durations: Sequence[float]
) -> Shard:
    return Shard(index, tuple(refs[i] for i in members), tuple(durations[i] for i in members))


class FeatureCache:
    """One cache directory: its plan, its shards, and their commit records."""

    def __init__(self, directory: Path, key: CacheKey, shards: list[Shard]):
        self.directory = directory
        self.key = key
        self.shards = shards
        self.plan_digest = plan_digest(shards)

    @classmethod
    def open(
        cls,
        root: Path,
        key_fields: dict[str, Any],
        items: Sequence[Item],
        shard_seconds: float,
        durations: Mapping[AudioRef, float] | None = None,
    ) -> FeatureCache:
        """The cache for ``items``; plans it (reading audio headers) the first time only.
        ``durations``: the seconds each ref lasts as the encoder gets it, where that is not
        the file's (a sox chain that removes silence); it must cover every ref."""
        refs = unique_refs(items)
        if not refs:
            raise CacheError("no audio to extract (the task has no items)")
        key = CacheKey(data_fingerprint=data_fingerprint(refs), **key_fields)
        directory = Path(root) / safe_name(key.upstream) / f"{key.kind}-{key.digest()[:16]}"
        remove_stale_temporaries(directory)
        plan_file = directory / "plan.json"
        shards = _read_plan(plan_file, refs)
        if shards is None:
            seconds = _durations(refs) if durations is None else [durations[r] for r in refs]
            if key.clip_seconds is not None:
                seconds = [key.clip_seconds] * len(refs)
            shards = plan_shards(refs, seconds, shard_seconds)
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_text(directory / "key.json", json.dumps(asdict(key), indent=1))
            atomic_write_text(plan_file, json.dumps(_plan_content(shards)))
        return cls(directory, key, shards)

    @classmethod
    def at(cls, directory: Path) -> FeatureCache:
        """The cache planned in ``directory`` (by ``open``, perhaps on another machine),
        from its key.json and plan.json: how a worker finds the shards it is to fill."""
        directory = Path(directory)
        try:
            fields = json.loads((directory / "key.json").read_text())
            fields["hidden_sizes"] = tuple(fields["hidden_sizes"])
            if fields.get("layers") is not None:
                fields["layers"] = tuple(fields["layers"])
            if fields.get("effects") is not None:
                fields["effects"] = tuple(tuple(effect) for effect in fields["effects"])
            key = CacheKey(**fields)
            shards = _shards_of(json.loads((directory / "plan.json").read_text()))
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise CacheError(f"{directory}: not a planned cache ({error})") from None
        if not directory.name.endswith(key.digest()[:16]):
            raise CacheError(f"{directory}: key.json does not match the directory's key")
        return cls(directory, key, shards)

    def for_layers(self, layers: Sequence[int]) -> FeatureCache:
        """The cache of the same audio and plan that holds only ``layers`` (its own key and
        directory, beside this one)."""
        key = dataclasses.replace(self.key, layers=tuple(layers))
        directory = self.directory.parent / f"{key.kind}-{key.digest()[:16]}"
        remove_stale_temporaries(directory)
        refs = sorted({ref for shard in self.shards for ref in shard.refs}, key=_ref_sort_key)
        if _read_plan(directory / "plan.json", refs) != self.shards:
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_text(directory / "key.json", json.dumps(asdict(key), indent=1))
            atomic_write_text(directory / "plan.json", json.dumps(_plan_content(self.shards)))
        return FeatureCache(directory, key, self.shards)

    @property
    def total_seconds(self) -> float:
        return sum(shard.seconds for shard in self.shards)

    def _files(self, shard: Shard) -> tuple[Path, Path]:
        stem = self.directory / f"shard-{shard.index:05d}"
        return stem.with_suffix(".npy"), stem.with_suffix(".json")

    def missing_shards(self, shards: Sequence[Shard] | None = None) -> list[Shard]:
        """Shards (of ``shards``, default all) without a valid commit record; corrupt ones
        are removed (and logged)."""
        chosen = self.shards if shards is None else shards
        return [shard for shard in chosen if not self._is_complete(shard)]

    def _is_complete(self, shard: Shard) -> bool:
        data_file, record_file = self._files(shard)
        if not record_file.is_file():
            return False
        problem = self._verify(shard)
        if problem is None:
            return True
        log.warning("cache shard %s is corrupt (%s); extracting it again", data_file, problem)
        data_file.unlink(missing_ok=True)
        record_file.unlink(missing_ok=True)
        return False

    def _verify(self, shard: Shard) -> str | None:
        data_file, _ = self._files(shard)
        record, problem = self._record(shard)
        if problem is not None:
            return problem
        if not data_file.is_file():
            return "data file missing"
        if data_file.stat().st_size != record.get("bytes"):
            return "size mismatch"
        if sha256_file(data_file) != record.get("sha256"):
            return "checksum mismatch"
        return _shape_problem(data_file, record, self.key.kind)

    def _record(self, shard: Shard) -> tuple[dict[str, Any], str | None]:
        """The shard's commit record and, when it does not belong to the shard's place in
        this plan, why not."""
        _, record_file = self._files(shard)
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            return {}, "unreadable commit record"
        if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
            return {}, "commit record of another format"
        if record.get("shard") != shard.index:
            return record, f"commit record of shard {record.get('shard')}, not {shard.index}"
        if record.get("plan") != self.plan_digest:
            return record, "commit record of another plan"
        if record.get("refs") != [list(ref) for ref in shard.refs]:
            return record, "commit record lists other items"
        return record, None

    def write_shard(
        self, shard: Shard, data: np.ndarray, lengths: Sequence[int] | None = None
    ) -> None:
        """Store a shard's array, then its commit record (which marks it complete).

        pooled, scene: ``[n, 2, L, D]`` float32 (raw means, layer-normed means);
        sequence: ``[sum of T, L, D]`` float16 with each item's frame count in ``lengths``.
        """
        data_file, record_file = self._files(shard)
        atomic_write(data_file, lambda handle: np.save(handle, data, allow_pickle=False))
        record = {
            "format": RECORD_FORMAT,
            "shard": shard.index,
            "plan": self.plan_digest,
            "refs": [list(ref) for ref in shard.refs],
            "sha256": sha256_file(data_file),
            "bytes": data_file.stat().st_size,
            "items": len(shard.refs),
            "lengths": None if lengths is None else [int(n) for n in lengths],
        }
        problem = _shape_problem(data_file, record, self.key.kind)
        if problem is not None:
            data_file.unlink(missing_ok=True)
            raise CacheError(f"{data_file}: not written ({problem})")
        atomic_write_text(record_file, json.dumps(record))

    def load(self) -> CachedFeatures:
        missing = self.missing_shards()
        if missing:
            raise CacheError(f"{self.directory}: {len(missing)} shard(s) not extracted yet")
        return CachedFeatures(self)

    def read_shard(self, shard: Shard) -> tuple[np.ndarray, list[int] | None]:
        """The shard's array (memory-mapped) and its lengths."""
        data_file, record_file = self._files(shard)
        record, problem = self._record(shard)
        if problem is not None:
            raise CacheError(f"{record_file}: {problem}")
        return np.load(data_file, mmap_mode="r", allow_pickle=False), record["lengths"]


def _shape_problem(data_file: Path, record: dict[str, Any], kind: str) -> str | None:
    """Rows must match the items: one per item (pooled kinds) or the sum of frame counts."""
    try:
        rows = np.load(data_file, mmap_mode="r", allow_pickle=False).shape[0]
    except (OSError, ValueError):
        return "unreadable array"
    lengths = record.get("lengths")
    if kind in POOLED_KINDS:
        expected = record["items"]
    elif isinstance(lengths, list) and len(lengths) == record["items"]:
        expected = sum(lengths)
    else:
        return "frame counts do not match the items"
    return None if rows == expected else f"{rows} rows for {expected} expected"


def plan_digest(shards: Sequence[Shard]) -> str:
    return hashlib.sha256(json.dumps(_plan_content(shards)).encode()).hexdigest()


def _plan_content(shards: Sequence[Shard]) -> list[dict[str, Any]]:
    """plan.json's content; numbers as floats, so a plan read back has the same digest."""
    return [
        {
            "refs": [[str(p), float(s), None if e is None else float(e)] for p, s, e in shard.refs],
            "durations": [float(d) for d in shard.durations],
        }
        for shard in shards
    ]


def _durations(refs: Sequence[AudioRef]) -> list[float]:
    infos: dict[str, Any] = {}
    durations = []
    for path, start, end in refs:
        if path not in infos:
            infos[path] = audio_info(path)
        durations.append(segment_duration(infos[path], start, end))
    return durations


def _shards_of(plan: list[dict[str, Any]]) -> list[Shard]:
    """plan.json's content as shards (the inverse of ``_plan_content``)."""
    return [
        Shard(
            i,
            tuple((str(p), float(s), None if e is None else float(e)) for p, s, e in entry["refs"]),
            tuple(float(d) for d in entry["durations"]),
        )
        for i, entry in enumerate(plan)
    ]


def _read_plan(plan_file: Path, refs: Sequence[AudioRef]) -> list[Shard] | None:
    """The stored plan, or None when there is none or it cannot be used (empty or
    truncated by a full disk or a kill, or not covering exactly ``refs``): plan again."""
    try:
        shards = _shards_of(json.loads(plan_file.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("cache plan %s is unreadable (%s); planning again", plan_file, error)
        return None
    planned = [ref for shard in shards for ref in shard.refs]
    if sorted(planned, key=_ref_sort_key) != list(refs) or any(
        len(shard.refs) != len(shard.durations) for shard in shards
    ):
        log.warning("cache plan %s does not cover this task's audio; planning again", plan_file)
        return None
    return shards


class CachedFeatures:
    """A complete cache, read for probing; implements ``bench.protocols.base.FeatureStore``."""

    def __init__(self, cache: FeatureCache):
        self.kind = cache.key.kind
        #: audio ref -> (shard position, first row, frame count)
        self._index: dict[AudioRef, tuple[int, int, int]] = {}
        shards = [cache.read_shard(shard) for shard in cache.shards]
        if self.kind in POOLED_KINDS:
            # Small (L x D per item): hold it in memory, raw and layer-normed means apart.
            pooled = np.concatenate([np.asarray(data) for data, _ in shards])
            self._means, self._ln_means = pooled[:, 0], pooled[:, 1]
            refs = [ref for shard in cache.shards for ref in shard.refs]
            self._index = {ref: (0, row, 1) for row, ref in enumerate(refs)}
        else:
            self._frames = [data for data, _ in shards]
            for position, (shard, (_, lengths)) in enumerate(
                zip(cache.shards, shards, strict=True)
            ):
                offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
                for ref, offset, length in zip(shard.refs, offsets, lengths, strict=False):
                    self._index[ref] = (position, int(offset), int(length))

    def _locate(self, item: Item) -> tuple[int, int, int]:
        try:
            return self._index[item.audio_ref]
        except KeyError:
            raise CacheError(f"{item.path}: item '{item.key}' is not in this cache") from None

    def pooled(self, items: Sequence[Item], layer_norm: bool = False) -> np.ndarray:
        if self.kind not in POOLED_KINDS:
            raise CacheError("this cache holds sequences, not pooled features")
        rows = np.array([self._locate(item)[1] for item in items], dtype=np.int64)
        return (self._ln_means if layer_norm else self._means)[rows]

    def sequences(self, items: Sequence[Item]) -> list[np.ndarray]:
        if self.kind != "sequence":
            raise CacheError(f"this cache holds {self.kind} features, not sequences")
        views = []
        for item in items:
            position, offset, length = self._locate(item)
            views.append(self._frames[position][offset : offset + length])
        return views
