"""How far from exact are SPEAR's frames when batches mix lengths?

SPEAR's output depends on the padding of its batch (its attention and convolutions see the
padded frames), so ``extract.padding_variant=exact`` runs it on equal-length groups only
(on real corpora: one utterance at a time). ``bucketed`` groups lengths within
``extract.max_padding`` of the longest; ``batch`` groups anything. On the tiny SPEAR
fixture (``tests/fixtures/spear/tiny``, random weights) and utterances of 1-12 s, this
prints for each variant the number of forwards, the forward time, and the deviation of
every frame from the exact one: the largest and the mean absolute difference relative to
the layer's RMS, over all layers.

    python benchmarks/spear_padding.py [--utterances 60] [--paddings 0.02,0.05,0.1,0.2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.extract import make_batches, pad_batch
from bench.upstreams.spear import SpearUpstream

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "spear" / "tiny"
SAMPLE_RATE = 16_000


def utterances(count: int, seed: int = 0) -> list[np.ndarray]:
    """Tones and noise of random lengths (sorted, as extraction plans them)."""
    rng = np.random.default_rng(seed)
    waves = []
    for seconds in sorted(rng.uniform(1.0, 12.0, count)):
        t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, 3))
        waves.append((tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32))
    return waves


def frames_of(
    model: SpearUpstream, waves: list[np.ndarray], batches: list[list[int]]
) -> tuple[list[list[torch.Tensor]], float]:
    """Each utterance's valid frames per layer, and the forward time."""
    out: list[list[torch.Tensor]] = [[] for _ in waves]
    elapsed = 0.0
    for batch in batches:
        wavs, lengths = pad_batch([waves[i] for i in batch])
        began = time.perf_counter()
        with torch.inference_mode():
            output = model(wavs, lengths)
        elapsed += time.perf_counter() - began
        for row, (i, length) in enumerate(zip(batch, output.lengths.tolist(), strict=True)):
            out[i] = [states[row, :length] for states in output.hidden_states]
    return out, elapsed


def deviation(
    frames: list[list[torch.Tensor]], exact: list[list[torch.Tensor]]
) -> tuple[float, float]:
    worst, total, count = 0.0, 0.0, 0
    for got, want in zip(frames, exact, strict=True):
        for a, b in zip(got, want, strict=True):
            rms = float(b.pow(2).mean().sqrt()) + 1e-12
            diff = (a - b).abs() / rms
            worst = max(worst, float(diff.max()))
            total += float(diff.sum())
            count += diff.numel()
    return worst, total / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=60)
    parser.add_argument("--paddings", default="0.02,0.05,0.1,0.2")
    parser.add_argument("--batch-seconds", type=float, default=160.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread, as the fixture's reference outputs were made
    model = SpearUpstream.from_pretrained(FIXTURE).eval()
    waves = utterances(args.utterances)
    seconds = [len(w) / SAMPLE_RATE for w in waves]
    exact, exact_time = frames_of(model, waves, [[i] for i in range(len(waves))])
    print(
        f"tiny SPEAR fixture, {len(waves)} utterances of {min(seconds):.1f}-{max(seconds):.1f} s; "
        "deviation = |frame - exact| / RMS of the exact layer"
    )
    print(f"{'variant':>22} | forwards | forward s | max deviation | mean deviation")
    print(
        f"{'exact (one at a time)':>22} | {len(waves):8d} | {exact_time:9.2f} | {0:13.2e} | {0:14.2e}"
    )
    paddings = [float(p) for p in args.paddings.split(",")]
    variants = [(f"bucketed {p:.0%}", p) for p in paddings]
    for label, padding in [*variants, ("batch (any padding)", None)]:
        batches = make_batches(seconds, args.batch_seconds, max_padding=padding)
        frames, elapsed = frames_of(model, waves, batches)
        worst, mean = deviation(frames, exact)
        print(f"{label:>22} | {len(batches):8d} | {elapsed:9.2f} | {worst:13.2e} | {mean:14.2e}")


if __name__ == "__main__":
    main()
