"""Extraction throughput on this machine, in seconds of audio per second of wall time.

Compares, on the same random audio (8 utterances of 4-8 s by default):

(a) bench's SPEAR encoder at the Large size (327M parameters, random weights), on the
    padded batch and one utterance at a time (how the harness runs it, since SPEAR's
    output depends on batch padding);
(b) a WavLM-Base-size model with random weights (transformers ``WavLMModel(WavLMConfig())``,
    all hidden states), on the padded batch;
(c) bench's batched Kaldi fbank upstream (``upstreams.classical.fbank``) on the batch
    versus a loop over the utterances.

Every measurement is preceded by a warm-up call; each figure is the best of ``--repeats``
timed calls. Ratios are between figures of this one run. The load average is printed at
start and end: other processes on the machine distort every figure. Not a test: run it
by hand, ``python benchmarks/upstream_throughput.py`` (about 2.5 minutes on 2 idle CPU
cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench sets it, before torch loads

import argparse
import time
from collections.abc import Callable

import torch
from torch import Tensor

from bench.upstreams.classical import fbank
from bench.upstreams.spear import SpearConfig, SpearModel, SpearUpstream

SAMPLE_RATE = 16_000

#: SPEAR Large (marcoyang/spear-large-speech config.json).
SPEAR_LARGE = SpearConfig(
    downsampling_factor=(1, 2, 4, 8, 4, 2, 1),
    num_encoder_layers=(1, 2, 2, 3, 1, 1, 1),
    encoder_dim=(1024,) * 7,
    feedforward_dim=(3072,) * 7,
    num_heads=(8,) * 7,
    cnn_module_kernel=(31, 31, 15, 15, 15, 31, 31),
)


def random_batch(num_utts: int, min_s: float, max_s: float, seed: int) -> tuple[Tensor, Tensor]:
    """Zero-padded noise-like waveforms in [-1, 1] with uniformly drawn durations."""
    generator = torch.Generator().manual_seed(seed)
    seconds = min_s + (max_s - min_s) * torch.rand(num_utts, generator=generator)
    lengths = (seconds * SAMPLE_RATE).long()
    wavs = 0.1 * torch.randn(num_utts, int(lengths.max()), generator=generator)
    frames = torch.arange(wavs.shape[1])
    return wavs.masked_fill(frames[None, :] >= lengths[:, None], 0.0), lengths


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up call."""
    run()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def per_utterance(forward: Callable[[Tensor, Tensor], object], wavs: Tensor, lens: Tensor):
    """A callable running ``forward`` on each utterance alone, unpadded."""

    def run() -> None:
        for wav, n in zip(wavs, lens, strict=True):
            forward(wav[None, : int(n)], n[None])

    return run


def spear_large() -> SpearUpstream:
    torch.manual_seed(0)
    return SpearUpstream(SpearModel(SPEAR_LARGE))


def wavlm_base() -> Callable[[Tensor, Tensor], object]:
    from transformers import WavLMConfig, WavLMModel

    torch.manual_seed(0)
    model = WavLMModel(WavLMConfig()).eval().requires_grad_(False)

    def forward(wavs: Tensor, lens: Tensor) -> object:
        # WavLM Base (group-norm feature extractor) is run without an attention mask,
        # on zero padding, as its model card recommends.
        with torch.no_grad():
            return model(wavs, output_hidden_states=True).hidden_states

    return forward


class Reporter:
    """Prints timings as throughput over a fixed amount of audio."""

    def __init__(self, audio_seconds: float):
        self.audio_seconds = audio_seconds

    def __call__(self, label: str, seconds: float) -> float:
        speed = self.audio_seconds / seconds
        print(f"  {label:<44} {seconds:8.3f} s   {speed:9.1f} s audio / s")
        return speed


def measure_spear(
    wavs: Tensor, lens: Tensor, repeats: int, report: Reporter
) -> tuple[float, float]:
    """(batched, one-at-a-time) throughput of SPEAR Large."""
    print("(a) SPEAR Large, random weights")
    spear = spear_large()
    params = sum(p.numel() for p in spear.parameters())
    print(f"  {params / 1e6:.1f}M parameters (without the 11k checkpoint-only tensors)")
    batched = report("batched", best_time(lambda: spear(wavs, lens), repeats))
    single = report("one utterance at a time", best_time(per_utterance(spear, wavs, lens), repeats))
    return batched, single


def measure_wavlm(wavs: Tensor, lens: Tensor, repeats: int, report: Reporter) -> float:
    print("(b) WavLM Base size (transformers), random weights")
    wavlm = wavlm_base()
    return report("batched", best_time(lambda: wavlm(wavs, lens), repeats))


def measure_fbank(
    wavs: Tensor, lens: Tensor, repeats: int, report: Reporter
) -> tuple[float, float]:
    """(batched, per-utterance loop) throughput of the classical fbank upstream."""
    print("(c) bench fbank upstream (80 mel + deltas + CMVN)")
    features = fbank()
    batched = report("batched", best_time(lambda: features(wavs, lens), repeats))
    loop = report("per-utterance loop", best_time(per_utterance(features, wavs, lens), repeats))
    return batched, loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--min-seconds", type=float, default=4.0)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per model")
    parser.add_argument("--fbank-repeats", type=int, default=20)
    args = parser.parse_args()

    wavs, lens = random_batch(args.utterances, args.min_seconds, args.max_seconds, seed=0)
    audio_s = float(lens.sum()) / SAMPLE_RATE
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(lens)} utterances, "
        f"{audio_s:.1f} s of audio (padded batch: {wavs.shape[1] / SAMPLE_RATE:.1f} s each)"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    report = Reporter(audio_s)
    spear_batch, spear_single = measure_spear(wavs, lens, args.repeats, report)
    wavlm_batch = measure_wavlm(wavs, lens, args.repeats, report)
    fbank_batch, fbank_loop = measure_fbank(wavs, lens, args.fbank_repeats, report)

    print("ratios (same run)")
    print(f"  SPEAR Large batched / WavLM Base batched     {spear_batch / wavlm_batch:6.2f}x")
    print(f"  SPEAR Large one-at-a-time / batched          {spear_single / spear_batch:6.2f}x")
    print(f"  SPEAR Large one-at-a-time / WavLM batched    {spear_single / wavlm_batch:6.2f}x")
    print(f"  fbank batched / per-utterance loop           {fbank_batch / fbank_loop:6.2f}x")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
