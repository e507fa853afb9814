"""What a frame-level task costs: bench from the cache, bench from the encoder stream, and an
s3prl-style loop, on the same data and the same learning-rate sweep.

The task is SUPERB PR's protocol (linear CTC head, s3prl's phone set and batching, two
batches per optimizer step) on the demo digits corpus (espeak-ng speech in the LibriSpeech
layout, read through superb.pr with the corpus's own lexicon), with a HuBERT-Base-size
encoder with random weights (transformers ``HubertConfig()`` defaults). Every configuration
trains the same probes: ``--lrs`` learning rates x one seed, ``--steps`` optimizer steps, dev
scored once at the end.

1. bench, cache (``extract.sequence_source=cache``): one forward per utterance into the
   float16 cache, then the sweep from the cache;
2. bench, stream (``extract.sequence_source=stream``): the encoder runs on each training
   batch inside the sweep, no disk;
3. s3prl-style: what s3prl's runner does per learning rate, one run after another: every
   step runs the encoder on the step's batches, then the weighted sum and the head; dev
   runs the encoder once per utterance (batch size 1).

It prints each wall time, its ratio to the s3prl-style loop and to one learning rate's worth
of encoder time, and the PER each reached (the same probes, so nearly the same PER).

    python benchmarks/frames_cost.py [--lrs 5] [--steps 10] [--batch 8] [--threads N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench sets it, before torch loads

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from demo_overhead import save_random_hubert

from bench.audio import AudioLoader
from bench.config import load_config
from bench.ctc.decode import greedy_decode
from bench.extract import pad_batch
from bench.progress import setup_logging
from bench.protocols.ctc import ctc_loss
from bench.quick import limit_items
from bench.runner import Runner
from bench.runtime import configure_threads
from bench.task import TASKS, TaskRun
from bench.tasks.demo.tasks import DIGITS_DIR, DIGITS_LEXICON

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def digits_corpus(root: Path) -> Path:
    """The demo digits corpus, generated once (not timed)."""
    task = TASKS.get("demo.digits")(root)
    task.prepare()
    return root / DIGITS_DIR


def pr_options(corpus: Path) -> str:
    """superb.pr read from the digits corpus, with the corpus's own lexicon."""
    options = {
        "librispeech_dir": str(corpus / "LibriSpeech"),
        "lexicon": [str(corpus / DIGITS_LEXICON)],
    }
    return f"task_options={json.dumps({'superb.pr': options})}"


def overrides(
    workspace: Path, lrs: tuple[float, ...], steps: int, batch: int, items: int
) -> list[str]:
    return [
        "quick.enabled=true",  # the same item subset as the s3prl-style loop (evenly_spaced)
        f"quick.items_per_split={items}",
        f"quick.max_steps={steps}",
        f"paths.workspace={workspace}",
        "tracking.enabled=false",
        "runtime.progress=false",
        "probe.seeds=[0]",
        f"probe.lr_grid=[{','.join(map(str, lrs))}]",
        f"probe.max_steps={steps}",
        f"probe.eval_every={steps}",
        f"probe.batch_size={batch}",
    ]


def bench_run(corpus: Path, upstream: str, source: str, settings: list[str]) -> tuple[float, float]:
    config = load_config(
        overrides=[*settings, f"extract.sequence_source={source}", pr_options(corpus)]
    )
    runner = Runner(config)
    runner.load_upstream(upstream)  # building the model is not part of any figure
    started = time.perf_counter()
    outcome = runner.run(TaskRun("superb.pr", corpus), upstream)
    if outcome.error:
        raise SystemExit(f"bench ({source}): {outcome.error}")
    return time.perf_counter() - started, outcome.record.score["mean"]


def s3prl_style(
    corpus: Path, upstream: str, lrs, steps: int, batch: int, items: int
) -> tuple[float, float, float]:
    """Wall time of the s3prl-style sweep, its best test PER, and the encoder's share for
    one learning rate."""
    from bench.protocols.ctc import build_split

    config = load_config(overrides=["runtime.progress=false", pr_options(corpus)])
    runner = Runner(config)
    loaded = runner.load_upstream(upstream)
    model = loaded.model.eval()
    task = TASKS.get("superb.pr")(corpus, dict(config.task_options["superb.pr"]))
    data = limit_items(task.load(), items, "superb.pr")
    transcription = task.transcription()
    recipe = task.ctc_recipe
    loader = AudioLoader(model.sample_rate)
    waves = {item.key: loader.load(*item.audio_ref) for item in data.all_items()}
    durations = {key: len(w) / model.sample_rate for key, w in waves.items()}

    class Durations:  # what build_split needs to know of the audio
        def frame_counts(self, items):
            return [model.num_frames(len(waves[i.key])) for i in items]

    train = build_split(data.splits["train"], Durations(), transcription)
    test = build_split(data.splits["test"], Durations(), transcription)
    schedule = recipe.batching.schedule(
        [len(t) for t in train.targets], [durations[i.key] for i in train.items], batch, seed=0
    )
    layers = model.num_layers

    def encode(keys):
        wavs, lengths = pad_batch([waves[k] for k in keys])
        began = time.perf_counter()
        with torch.no_grad():
            output = model(wavs, lengths)
        frames = torch.stack(output.hidden_states, dim=2)
        return frames, output.lengths, time.perf_counter() - began

    started = time.perf_counter()
    best, encoder_seconds = float("inf"), []
    for lr in lrs:
        head = recipe.head.build(layers, model.hidden_sizes[0], len(transcription.tokens))
        optimizer = torch.optim.Adam(head.parameters(), lr=lr)
        spent = 0.0
        for step in range(steps):
            optimizer.zero_grad()
            for k in range(recipe.accumulate):
                index = schedule.batch(step * recipe.accumulate + k)
                frames, lengths, seconds = encode([train.items[i].key for i in index])
                spent += seconds
                targets = torch.tensor([t for i in index for t in train.targets[i]])
                target_lengths = torch.tensor([len(train.targets[i]) for i in index])
                loss = ctc_loss(head(frames, lengths), lengths, targets, target_lengths, 0)
                (loss / recipe.accumulate).backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), recipe.grad_clip)
            optimizer.step()
        head.eval()
        hypotheses = []
        for item in test.items:  # s3prl evaluates one utterance at a time
            frames, lengths, seconds = encode([item.key])
            spent += seconds
            with torch.no_grad():
                hypotheses += greedy_decode(head(frames, lengths), lengths, transcription.tokens)
        best = min(best, transcription.scores(hypotheses, test.references)["per"])
        encoder_seconds.append(spent)
    return time.perf_counter() - started, best, sum(encoder_seconds) / len(encoder_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lrs", type=int, default=5, help="learning rates in the sweep")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per probe")
    parser.add_argument("--batch", type=int, default=4, help="utterances per batch")
    parser.add_argument("--items", type=int, default=24, help="utterances per split")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    setup_logging("WARNING")
    threads = configure_threads(args.threads)
    lrs = LRS[: args.lrs]
    print(
        f"torch {torch.__version__}, {threads} threads; {len(lrs)} learning rates x 1 seed, "
        f"{args.steps} steps of 2 x {args.batch} utterances, {args.items} utterances per split; "
        f"HuBERT-Base-size random encoder; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as folder:
        scratch = Path(folder)
        corpus = digits_corpus(scratch / "demo")
        upstream = save_random_hubert(scratch / "hubert-base")
        s3prl_s, s3prl_per, one_lr_encoder = s3prl_style(
            corpus, upstream, lrs, args.steps, args.batch, args.items
        )
        rows = [("s3prl-style loop", s3prl_s, s3prl_per)]
        for source in ("cache", "stream"):
            settings = overrides(scratch / f"ws-{source}", lrs, args.steps, args.batch, args.items)
            seconds, per = bench_run(corpus, upstream, source, settings)
            rows.append((f"bench, {source}", seconds, per))
        print(f"encoder time of one learning rate in the s3prl-style loop: {one_lr_encoder:.1f} s")
        for label, seconds, per in rows:
            print(
                f"{label:>18}: {seconds:7.1f} s | {seconds / s3prl_s:5.2f} x s3prl-style | "
                f"{seconds / one_lr_encoder:5.2f} x one rate's encoder time | test PER {per:.1f}"
            )


if __name__ == "__main__":
    main()
