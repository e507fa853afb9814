"""How close is a full bench run to the floor of one forward pass over the audio?

For each upstream, on the demo suite's utterance tasks (demo.keywords, demo.instruments)
and, separately, its frame tasks (demo.events, demo.digits), this prints:

1. the bare upstream forward time over the tasks' audio (audio preloaded in memory,
   batched by length exactly as extraction batches it; nothing else);
2. bench's full run time from an empty cache: data reading, extraction into the cache,
   the learning-rate sweep over every seed, test scoring and the result record (MLflow
   logging off, to time the benchmark and not the tracking store);
3. their ratio, and how the full run splits into extraction and probe training. The target
   is <= 1.15 for utterance tasks with a real-size encoder. Extraction scales with the audio;
   the probe sweep is a cost per task that does not, so on the demo's few minutes of audio it
   weighs more than on a real corpus.

Upstreams: ``fbank_no_cmvn`` (nearly free, so its ratio shows the probe cost alone) and a
HuBERT-Base-size model with random weights (transformers ``HubertConfig()`` defaults,
saved to a temporary folder and loaded through bench's local-checkpoint path).

    python benchmarks/demo_overhead.py [--upstreams fbank_no_cmvn,hubert] [--groups utterance,frame]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench sets it, before torch loads

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.audio import AudioLoader
from bench.config import load_config
from bench.extract import make_batches, pad_batch
from bench.progress import setup_logging
from bench.runner import Runner
from bench.runtime import configure_threads
from bench.task import TASKS, TaskRun

UTTERANCE_TASKS = ("demo.keywords", "demo.instruments")
FRAME_TASKS = ("demo.events", "demo.digits")


def save_random_hubert(folder: Path) -> str:
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig()).save_pretrained(folder)
    return str(folder)


def task_audio(
    task_names: tuple[str, ...], data_root: Path
) -> list[tuple[str, float, float | None]]:
    refs = set()
    for name in task_names:
        task = TASKS.get(name)(data_root)
        task.prepare()
        refs |= {item.audio_ref for item in task.load().all_items()}
    return sorted(refs, key=lambda r: (r[0], r[1], -1.0 if r[2] is None else r[2]))


def bare_forward_seconds(
    upstream: torch.nn.Module, refs: list, batch_seconds: float
) -> tuple[float, float]:
    """Forward time over the audio, batched by length as extraction does; and the audio length."""
    loader = AudioLoader(upstream.sample_rate)
    waves = [loader.load(*ref) for ref in refs]
    order = np.argsort([len(w) for w in waves], kind="stable")
    waves = [waves[i] for i in order]
    durations = [len(w) / upstream.sample_rate for w in waves]
    upstream.eval()
    elapsed = 0.0
    for batch in make_batches(
        durations, batch_seconds, equal_lengths_only=not upstream.padding_invariant
    ):
        wavs, lengths = pad_batch([waves[i] for i in batch])
        started = time.perf_counter()
        with torch.inference_mode():
            upstream(wavs, lengths)
        elapsed += time.perf_counter() - started
    return elapsed, sum(durations)


def full_run_seconds(
    upstream_name: str, task_names: tuple[str, ...], data_root: Path, workspace: Path
) -> tuple[float, dict, dict]:
    """Wall time of the runs, each task's main score, and the records' timings summed."""
    config = load_config(
        overrides=[
            f"paths.workspace={workspace}",
            "tracking.enabled=false",
            "runtime.progress=false",
        ]
    )
    runner = Runner(config)
    runner.load_upstream(upstream_name)  # building the model is not part of either figure
    scores, timings = {}, {"extract_s": 0.0, "probe_s": 0.0}
    started = time.perf_counter()
    for name in task_names:
        outcome = runner.run(TaskRun(name, data_root), upstream_name)
        if outcome.error:
            raise SystemExit(f"{name}: {outcome.error}")
        scores[name] = f"{outcome.record.main_metric} {outcome.record.score['mean']:.3g}"
        for key in timings:
            timings[key] += outcome.record.timings[key]
    return time.perf_counter() - started, scores, timings


def measure(
    label: str, upstream_name: str, data_root: Path, scratch: Path, groups: list[str]
) -> None:
    config = load_config(overrides=["runtime.progress=false"])
    runner = Runner(config)
    upstream = runner.load_upstream(upstream_name).model
    for group, task_names in (("utterance", UTTERANCE_TASKS), ("frame", FRAME_TASKS)):
        if group not in groups:
            continue
        refs = task_audio(task_names, data_root)
        bare, audio_seconds = bare_forward_seconds(upstream, refs, config.extract.batch_seconds)
        full, scores, timings = full_run_seconds(
            upstream_name, task_names, data_root, scratch / f"{label}-{group}"
        )
        print(
            f"{label:>10} {group:>9} tasks: audio {audio_seconds:7.0f} s | bare forward {bare:7.1f} s "
            f"| full run {full:7.1f} s | ratio {full / bare:6.2f} "
            f"(of which extraction {timings['extract_s']:.1f} s, probes {timings['probe_s']:.1f} s) "
            f"| {scores} | load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstreams", default="fbank_no_cmvn,hubert")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--groups", default="utterance,frame", help="task groups to measure")
    args = parser.parse_args()
    setup_logging("WARNING")
    threads = configure_threads(args.threads)
    print(
        f"torch {torch.__version__}, {threads} threads; demo data generated once, not timed; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder:
        scratch = Path(folder)
        data_root = scratch / "demo-data"
        for name in args.upstreams.split(","):
            upstream_name = (
                save_random_hubert(scratch / "hubert-base") if name == "hubert" else name
            )
            measure(name, upstream_name, data_root, scratch, args.groups.split(","))


if __name__ == "__main__":
    main()
