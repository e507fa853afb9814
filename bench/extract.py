"""Extraction: one frozen forward pass per utterance, batched by length, into the cache.

Audio of the next batch is read in a background thread while the encoder runs. Each
cache shard is written when all of its items are done, so an interrupted run loses at
most the shard in progress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.audio import AudioLoader
from bench.audio_effects import EffectsLoader, audio_loader
from bench.cache import AudioRef, FeatureCache, Shard
from bench.progress import progress_bar
from bench.upstreams.base import Upstream, UpstreamOutput

log = logging.getLogger(__name__)


class UpstreamOutputError(RuntimeError):
    """The upstream returned something unusable (NaN/Inf, no frames, bad shapes)."""


@dataclass
class ExtractionStats:
    seconds_of_audio: float = 0.0
    forward_seconds: float = 0.0
    wall_seconds: float = 0.0
    shards_done: int = 0
    shards_cached: int = 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_batches(
    durations: Sequence[float],
    batch_seconds: float,
    equal_lengths_only: bool = False,
    max_padding: float | None = None,
) -> list[list[int]]:
    """Groups of indices whose padded size (count x longest) stays within ``batch_seconds``.

    ``durations`` should be sorted (shards are). For encoders whose output depends on
    padding: with ``equal_lengths_only`` a batch never mixes lengths; with ``max_padding``
    no item is padded by more than that fraction of the batch's longest.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0.0
    for i, duration in enumerate(durations):
        new_longest = max(longest, duration)
        too_big = current and new_longest * (len(current) + 1) > batch_seconds
        length_changes = equal_lengths_only and current and duration != durations[current[0]]
        too_padded = (
            max_padding is not None
            and current
            and new_longest - min(durations[current[0]], duration) > max_padding * new_longest
        )
        if too_big or length_changes or too_padded:
            batches.append(current)
            current, new_longest = [], duration
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    return batches


def stored_feature_kind(requested: str, upstream: Upstream) -> str:
    """The cache kind that serves a protocol's request: ``scene`` is the upstream's own
    clip embedding where it has one, otherwise the per-layer time means (``pooled``)."""
    if requested == "scene" and upstream.scene_embedding_size is None:
        return "pooled"
    return requested


def pad_or_trim(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Zeros appended, or samples cut, at the end (hear-preprocess's ffmpeg apad + atrim)."""
    if len(wave) >= num_samples:
        return wave[:num_samples]
    return np.concatenate([wave, np.zeros(num_samples - len(wave), dtype=wave.dtype)])


def pad_batch(waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    padded = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for row, wave in enumerate(waves):
        padded[row, : len(wave)] = torch.from_numpy(wave)
    return padded, lengths


def _check_output(output: UpstreamOutput, refs: Sequence[AudioRef], upstream_name: str) -> None:
    lengths = output.lengths.cpu()
    for ref, length in zip(refs, lengths.tolist(), strict=True):
        if length <= 0:
            raise UpstreamOutputError(
                f"{ref[0]}: upstream '{upstream_name}' returned no frames (audio too short?)"
            )
    for layer, states in enumerate(output.hidden_states):
        if states.shape[0] != len(refs) or states.shape[1] < int(lengths.max()):
            raise UpstreamOutputError(
                f"upstream '{upstream_name}' layer {layer}: shape {tuple(states.shape)} does not "
                f"cover {len(refs)} items of up to {int(lengths.max())} frames"
            )
        valid = _valid_mask(lengths, states.shape[1]).to(states.device)
        finite = torch.isfinite(states).all(dim=-1) | ~valid
        if not bool(finite.all()):
            bad = [refs[i][0] for i in torch.nonzero(~finite.all(dim=1)).flatten().tolist()]
            raise UpstreamOutputError(
                f"upstream '{upstream_name}' produced NaN/Inf at layer {layer} for: {', '.join(bad[:5])}"
            )


def _valid_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    return torch.arange(num_frames)[None, :] < lengths[:, None]


def _check_scene(
    embeddings: torch.Tensor, refs: Sequence[AudioRef], upstream_name: str, size: int
) -> None:
    if tuple(embeddings.shape) != (len(refs), size):
        raise UpstreamOutputError(
            f"upstream '{upstream_name}': scene embeddings of shape {tuple(embeddings.shape)} "
            f"for {len(refs)} items of size {size}"
        )
    finite = torch.isfinite(embeddings).all(dim=-1)
    if not bool(finite.all()):
        bad = [refs[i][0] for i in torch.nonzero(~finite).flatten().tolist()]
        raise UpstreamOutputError(
            f"upstream '{upstream_name}' produced NaN/Inf scene embeddings for: {', '.join(bad[:5])}"
        )


def scene_rows(embeddings: torch.Tensor) -> np.ndarray:
    """``[B, 2, 1, D]``: each clip embedding as one layer, raw and layer-normed."""
    embeddings = embeddings.float()
    normed = F.layer_norm(embeddings, embeddings.shape[-1:])
    return torch.stack([embeddings, normed], dim=1)[:, :, None].cpu().numpy()


def pooled_means(output: UpstreamOutput) -> np.ndarray:
    """``[B, 2, L, D]``: each layer's mean over valid frames, raw and per-frame layer-normed."""
    lengths = output.lengths
    raw, normed = [], []
    for states in output.hidden_states:
        states = states.float()
        mask = _valid_mask(lengths.cpu(), states.shape[1]).to(states.device)[..., None]
        count = lengths.to(states.device).view(-1, 1).float()
        raw.append((states * mask).sum(dim=1) / count)
        layer_normed = F.layer_norm(states, states.shape[-1:])
        normed.append((layer_normed * mask).sum(dim=1) / count)
    return torch.stack([torch.stack(raw, 1), torch.stack(normed, 1)], dim=1).cpu().numpy()


def frame_sequences(
    output: UpstreamOutput, layers: Sequence[int] | None = None
) -> list[np.ndarray]:
    """One float16 ``[T_i, L, D]`` array per item, valid frames only; ``layers`` (default:
    all) are the hidden states kept, in that order."""
    states = output.hidden_states
    chosen = states if layers is None else [states[layer] for layer in layers]
    stacked = torch.stack([s.to(torch.float16) for s in chosen], dim=2).cpu()
    return [stacked[i, :length].numpy() for i, length in enumerate(output.lengths.tolist())]


class Extractor:
    """Runs an upstream over a cache's missing shards."""

    def __init__(
        self,
        upstream: Upstream,
        upstream_name: str,
        device: torch.device,
        batch_seconds: float,
        equal_lengths_only: bool = False,
        show_progress: bool = True,
        gain_db: float = 0.0,
        clip_seconds: float | None = None,
        layers: Sequence[int] | None = None,
        max_padding: float | None = None,
    ):
        self.upstream = upstream.to(device).eval()
        #: the layers a sequence cache keeps (None: all); see ``bench.frames.plan``
        self.layers = layers
        self.max_padding = max_padding
        self.name = upstream_name
        self.device = device
        self.batch_seconds = batch_seconds
        self.equal_lengths_only = equal_lengths_only
        self.show_progress = show_progress
        self.gain = 10.0 ** (gain_db / 20.0)
        self.clip_samples = (
            None if clip_seconds is None else round(clip_seconds * upstream.sample_rate)
        )

    def fill(
        self, cache: FeatureCache, label: str = "", only: Collection[int] | None = None
    ) -> ExtractionStats:
        """Extract the cache's missing shards (of those numbered in ``only``, when given:
        a worker's share of a cache that others fill beside it)."""
        stats = ExtractionStats()
        started = time.perf_counter()
        wanted = cache.shards if only is None else [s for s in cache.shards if s.index in only]
        missing = cache.missing_shards(wanted)
        stats.shards_cached = len(wanted) - len(missing)
        if not missing:
            log.info("features of %s are cached (%s)", label or self.name, cache.directory)
            return stats
        # a sox chain in the key (bench.audio_effects) is applied as the audio is read
        loader = audio_loader(self.upstream.sample_rate, cache.key.effects)
        total = sum(shard.seconds for shard in missing)
        with (
            progress_bar(
                total=total, desc=f"extract {label}".strip(), unit="s", enabled=self.show_progress
            ) as bar,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-audio") as reader,
        ):
            for shard in missing:
                self._extract_shard(cache, shard, loader, reader, bar, stats)
        stats.wall_seconds = time.perf_counter() - started
        if (summary := loader.summary()) is not None:
            log.info("audio: %s", summary)
        return stats

    def _extract_shard(
        self, cache, shard: Shard, loader, reader, bar, stats: ExtractionStats
    ) -> None:
        kind = cache.key.kind
        pooled, sequences = [], []
        for refs, waves in self._batches_with_audio(shard, loader, reader):
            wavs, lengths = pad_batch(waves)
            wavs, lengths = wavs.to(self.device), lengths.to(self.device)
            began = time.perf_counter()
            rows = self._encode(wavs, lengths, refs, kind)
            if kind == "sequence":
                sequences.extend(rows)
            else:
                pooled.append(rows)
            stats.forward_seconds += time.perf_counter() - began
            seconds = sum(len(w) for w in waves) / self.upstream.sample_rate
            stats.seconds_of_audio += seconds
            # the total is from the files' headers; resampled lengths round up a little
            bar.update(min(seconds, max(bar.total - bar.n, 0.0)))
        if kind != "sequence":
            cache.write_shard(shard, np.concatenate(pooled))
        else:
            cache.write_shard(shard, np.concatenate(sequences), lengths=[len(s) for s in sequences])
        stats.shards_done += 1

    def _encode(self, wavs, lengths, refs: list[AudioRef], kind: str) -> Any:
        """One batch's rows (pooled, scene) or frame arrays (sequence). On CUDA out of
        memory the batch is split in two and each half retried, down to one utterance."""
        try:
            return self._encode_once(wavs, lengths, refs, kind)
        except torch.cuda.OutOfMemoryError:
            if len(refs) == 1:
                raise UpstreamOutputError(
                    f"{refs[0][0]}: upstream '{self.name}' ran out of GPU memory on this one "
                    "utterance; use a GPU with more memory or extract.device=cpu"
                ) from None
        torch.cuda.empty_cache()
        log.warning("out of GPU memory on a batch of %d; retrying it in halves", len(refs))
        half = len(refs) // 2
        parts = [
            self._encode(wavs[part, : int(lengths[part].max())], lengths[part], refs[part], kind)
            for part in (slice(0, half), slice(half, None))
        ]
        return parts[0] + parts[1] if kind == "sequence" else np.concatenate(parts)

    def _encode_once(self, wavs, lengths, refs: list[AudioRef], kind: str) -> Any:
        if kind == "scene":
            with torch.inference_mode():
                embeddings = self.upstream.scene_embeddings(wavs, lengths)
            _check_scene(embeddings, refs, self.name, self.upstream.scene_embedding_size)
            return scene_rows(embeddings)
        with torch.inference_mode():
            output = self.upstream(wavs, lengths)
        _check_output(output, refs, self.name)
        return pooled_means(output) if kind == "pooled" else frame_sequences(output, self.layers)

    def _batches_with_audio(
        self, shard: Shard, loader: AudioLoader | EffectsLoader, reader: ThreadPoolExecutor
    ) -> Iterator[tuple[list[AudioRef], list[np.ndarray]]]:
        """Batches of the shard in order, each batch's audio read while the previous one runs."""
        batches = make_batches(
            shard.durations, self.batch_seconds, self.equal_lengths_only, self.max_padding
        )

        def read(batch: list[int]) -> list[np.ndarray]:
            waves = [loader.load(*shard.refs[i]) for i in batch]
            if self.clip_samples is not None:
                waves = [pad_or_trim(wave, self.clip_samples) for wave in waves]
            return waves if self.gain == 1.0 else [wave * np.float32(self.gain) for wave in waves]

        pending: Future | None = reader.submit(read, batches[0]) if batches else None
        for position, batch in enumerate(batches):
            assert pending is not None
            waves = pending.result()
            following = batches[position + 1] if position + 1 < len(batches) else None
            pending = reader.submit(read, following) if following is not None else None
            yield [shard.refs[i] for i in batch], waves
