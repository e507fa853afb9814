"""What does a whole learning-rate x seed sweep cost, stacked (``bench.stacking``) and not?

For each task, from an already filled feature cache (extraction is not timed), this runs
the task's default sweep three ways and prints wall and CPU seconds of the probe phase:

1. stacked: the default (``probe.stack=true``), the sweep's stacks (``bench.stacking._deal``)
   ``probe.workers`` at a time;
2. threads: ``probe.stack=false``, each probe its own module and optimizer, ``probe.workers``
   threads (the per-probe training bench did before stacking);
3. one probe: a single (lr, seed) of the grid trained alone, the yardstick of the target
   "a sweep costs at most 2x one probe's time". Its lr is the grid's selected one and, as a
   second yardstick, the one whose probes ran longest.

Tasks: ``superb.ks`` on a fake Speech Commands tree (one-second tones, a few hundred clips,
``tests/superb_fakes.py``), ``demo.keywords`` (the SUPERB KS protocol on the demo's speech)
and ``demo.instruments`` (the HEAR 8-point grid). Upstream: ``fbank_no_cmvn`` or a
HuBERT-Base-size model with random weights (``--upstream hubert``, features of 13 x 768).

    python benchmarks/stacked_sweep.py [--upstream hubert] [--tasks superb.ks,demo.keywords]
        [--speakers 24] [--threads N] [--device cuda]

On a GPU (``--device cuda``), where a probe-sized step is bound by kernel launches, the
stacked rows' probe-steps/s is the figure to watch.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench sets it, before torch loads

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.config import load_config
from bench.progress import setup_logging
from bench.runner import Runner
from bench.runtime import configure_threads
from bench.task import TaskRun

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def save_random_hubert(folder: Path) -> str:
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig()).save_pretrained(folder)
    return str(folder)


def fake_speech_commands(root: Path, speakers: int) -> Path:
    from superb_fakes import build_speech_commands

    return build_speech_commands(root / "speech_commands", speakers=speakers, seconds=1.0)


def run_probes(
    workspace: Path, upstream: str, task: TaskRun, overrides: list[str]
) -> tuple[float, float, dict]:
    """Wall seconds of the probe phase, CPU seconds of the whole run (the cache is full, so
    little else), and the record."""
    config = load_config(
        overrides=[
            f"paths.workspace={workspace}",
            "tracking.enabled=false",
            "runtime.progress=false",
            "data.generate=true",  # the demo tasks' data under the scratch data root
            *overrides,
        ]
    )
    # every configuration trains: probe.stack and probe.workers are not part of the run's
    # identity, so the default ("reuse") would hand back the first configuration's record
    runner = Runner(config, existing="rerun")
    runner.load_upstream(upstream)
    cpu = time.process_time()
    outcome = runner.run(task, upstream)
    cpu = time.process_time() - cpu
    if outcome.error:
        raise SystemExit(f"{task.task}: {outcome.error}")
    record = outcome.record
    return record.timings["probe_s"], cpu, {"record": record}


def measure(workspace: Path, upstream: str, task: TaskRun, device: list[str]) -> None:
    """``device``: the overrides that put extraction and probes on the chosen device."""
    warm = ["probe.seeds=[0]", "probe.max_steps=1"]
    run_probes(workspace, upstream, task, [*device, *warm])  # fills the cache
    stacked_wall, stacked_cpu, stacked = run_probes(workspace, upstream, task, device)
    threads = [*device, "probe.stack=false"]
    threads_wall, threads_cpu, _ = run_probes(workspace, upstream, task, threads)
    record = stacked["record"]
    selected = record.selected["lr"]
    trials = record.trials
    longest = max(trials, key=lambda t: t.get("steps", t.get("epochs", 0)))
    steps = sum(t.get("steps", 0) for t in trials)
    print(
        f"{task.task}: {len(trials)} probes, {steps} steps; "
        f"{record.main_metric} {record.score['mean']:.4g} at lr {selected:g}"
    )
    rate = f"  ({steps / stacked_wall:,.0f} probe-steps/s)" if steps else ""
    print(f"  stacked  wall {stacked_wall:8.1f} s  cpu {stacked_cpu:8.1f} s{rate}")
    print(
        f"  threads  wall {threads_wall:8.1f} s  cpu {threads_cpu:8.1f} s  "
        f"(stacked / threads: wall {stacked_wall / threads_wall:.2f}, "
        f"cpu {stacked_cpu / threads_cpu:.2f})"
    )
    if "seed" not in longest or "steps" not in longest:
        return  # HEAR: the grid is the protocol; no single-probe yardstick
    yardsticks = {"selected lr": selected}
    if longest["lr"] != selected:
        yardsticks["longest lr"] = longest["lr"]
    for name, lr in yardsticks.items():
        one = [*device, f"probe.lr_grid=[{lr}]", "probe.seeds=[0]"]
        wall, cpu, _ = run_probes(workspace, upstream, task, one)
        print(
            f"  one probe ({name} {lr:g}) wall {wall:8.1f} s  cpu {cpu:8.1f} s  "
            f"(sweep / one probe: wall {stacked_wall / wall:.2f}, cpu {stacked_cpu / cpu:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", default="fbank_no_cmvn")
    parser.add_argument("--tasks", default="superb.ks,demo.keywords,demo.instruments")
    parser.add_argument("--speakers", type=int, default=24, help="fake Speech Commands size")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N: extraction and probes run there"
    )
    args = parser.parse_args()
    device = [f"probe.device={args.device}", f"extract.device={args.device}"]
    setup_logging("WARNING")
    threads = configure_threads(args.threads)
    print(
        f"torch {torch.__version__}, {threads} threads, upstream {args.upstream} on "
        f"{args.device}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-stacked-") as folder:
        scratch = Path(folder)
        upstream = args.upstream
        if upstream == "hubert":
            upstream = save_random_hubert(scratch / "hubert-base")
        for name in args.tasks.split(","):
            data_root = None
            if name == "superb.ks":
                data_root = fake_speech_commands(scratch / "data", args.speakers)
            elif name.startswith("demo."):
                data_root = scratch / "data" / "demo"
            measure(scratch / "workspace", upstream, TaskRun(name, data_root), device)
            print(f"  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
