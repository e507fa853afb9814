"""The price of bench's `fast` protocol: `fast` and `reference` side by side (issue 13).

For each task, both profiles run from an empty cache with the same seeds; the script prints
each profile's main test metric (mean and sample std over seeds), their difference in seed
standard deviations (fast - reference, over the pooled std), and the cost ratio reference /
fast: optimizer steps over all probes (independent of machine load), process CPU time and
wall time of the whole run (extraction, probes, test).

Tasks: the demo suite (generated offline) and small fake SUPERB corpora in the real layouts
(built with the test suite's builders, tests/superb_fakes.py: run from a checkout).

`reference` is ``protocol.profile=reference`` (bench.profiles): s3prl's fixed number of
updates, evaluation cadence, learning rate and dev-best selection (ASV: the best of its 10
test evaluations), the speaker-hash KS split and the 37,720-trial ASV list; on HEAR,
hear-eval-kit's switches and the last layer. Both profiles run the benchmark's seeds
(``--seeds``), so each line's label says ``modified: seeds`` (and, on fake corpora,
``max_steps, eval_every``); tasks whose reference data handling is not reproduced yet say
``approximate`` (docs/protocols.md).

Fake corpora are tiny; their schedules are scaled by ``--steps-scale`` (default 0.01: 2,000
of SUPERB's 200,000 steps; ASV a tenth of that, its x-vector step is slow on a CPU) for both
profiles alike. Their tones are buried in white noise (``--noise``: noise RMS over tone RMS)
so that the tasks are not solved perfectly, which would leave no spread to compare.

    python benchmarks/protocol_price.py [--suites demo,superb] [--seeds 0,1,2]
        [--steps-scale 0.01] [--noise 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench sets it, before torch loads

import argparse
import math
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import load_config
from bench.profiles import REFERENCE
from bench.progress import setup_logging
from bench.runner import Runner
from bench.runtime import configure_threads
from bench.task import TASKS, TaskRun

DEMO_TASKS = ("demo.keywords", "demo.instruments", "demo.events")
SUPERB_TASKS = ("superb.ks", "superb.ic", "superb.sid", "superb.er", "superb.asv")
HEAR_PROTOCOLS = ("hear.scene", "hear.timestamp")
#: options the fake corpora need (their utterances are shorter than real ones)
FAKE_OPTIONS: dict[str, dict[str, Any]] = {"superb.asv": {"min_seconds": 0.3}}
#: the meta data s3prl ships for ER's reference split, written for the fake corpus
ER_META_DATA = "s3prl_emotion_meta_data"
#: schedule scale relative to ``--steps-scale``
STEPS_FACTOR = {"superb.asv": 0.1}


@dataclass
class Measured:
    values: list[float]
    wall_s: float
    cpu_s: float
    probe_s: float
    #: optimizer steps (HEAR: epochs) over every trained probe (a load-independent cost)
    steps: int
    #: the record's protocol label
    label: str = ""

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def reference_overrides(task_name: str, steps_scale: float) -> list[str]:
    """``protocol.profile=reference`` (HEAR: on the last layer), with the benchmark's seeds
    to measure the spread of both profiles; fake corpora scale s3prl's schedule (keeping
    its number of evaluations). The record's label says what was changed."""
    overrides = ["protocol.profile=reference", "protocol.hear_embedding=last"]
    reference = REFERENCE.get(task_name)
    if reference is not None and reference.max_steps and reference.eval_every:
        evaluations = reference.max_steps // reference.eval_every
        steps = scaled_steps(task_name, reference.max_steps, steps_scale)
        overrides += [
            f"probe.max_steps={steps}",
            f"probe.eval_every={max(1, steps // evaluations)}",
        ]
    return overrides


def reference_options(task_name: str, data_root: Path) -> dict[str, Any]:
    if task_name == "superb.er":
        return {"s3prl_meta_data": str(data_root / ER_META_DATA)}
    return {}


def scaled_steps(task_name: str, max_steps: int, steps_scale: float) -> int:
    """Real-corpus schedules shrink with ``steps_scale``; the demo's are already small."""
    if task_name.startswith("superb."):
        return max(100, round(max_steps * steps_scale * STEPS_FACTOR.get(task_name, 1.0)))
    return max_steps


def fast_overrides(task_name: str, steps_scale: float) -> list[str]:
    task_cls = TASKS.get(task_name)
    if task_cls.protocol in HEAR_PROTOCOLS or not task_name.startswith("superb."):
        return []
    steps = scaled_steps(task_name, task_cls.schedule.max_steps, steps_scale)
    every = max(1, min(task_cls.schedule.eval_every, steps // 20))
    return [f"probe.max_steps={steps}", f"probe.eval_every={every}"]


def prepared(task_name: str, data_root: Path) -> None:
    """Generate (demo) or verify the data before anything is timed."""
    TASKS.get(task_name)(data_root).prepare()


def run_profile(
    task_name: str,
    data_root: Path,
    workspace: Path,
    upstream: str,
    overrides: list[str],
    options: dict[str, Any],
) -> Measured:
    config = load_config(
        overrides=[
            f"paths.workspace={workspace}",
            "tracking.enabled=false",
            "runtime.progress=false",
            *overrides,
        ]
    )
    runner = Runner(config)
    runner.load_upstream(upstream)  # building the model is not part of either figure
    started, cpu_started = time.perf_counter(), time.process_time()
    outcome = runner.run(TaskRun(task_name, data_root, options), upstream)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if outcome.error:
        raise SystemExit(f"{task_name}: {outcome.error}")
    record = outcome.record
    # SUPERB-style trials count optimizer steps, HEAR trials epochs
    steps = sum(int(trial.get("steps", trial.get("epochs", 0))) for trial in record.trials)
    return Measured(
        list(record.score["values"]),
        wall,
        cpu,
        record.timings["probe_s"],
        steps,
        record.protocol_label,
    )


def difference_in_stds(fast: Measured, reference: Measured) -> str:
    pooled = math.sqrt((fast.std**2 + reference.std**2) / 2)
    if pooled == 0:
        return "n/a (no spread)" if fast.mean != reference.mean else "0"
    return f"{(fast.mean - reference.mean) / pooled:+.2f}"


def add_noise(root: Path, ratio: float) -> None:
    """White noise of ``ratio`` times each file's RMS, the same for every build."""
    import zlib

    import numpy as np
    import soundfile

    for path in sorted(root.rglob("*.wav")):
        wave, rate = soundfile.read(path, dtype="float64")
        rng = np.random.default_rng(zlib.crc32(str(path.relative_to(root)).encode()))
        rms = float(np.sqrt(np.mean(wave**2))) or 1e-3
        noisy = wave + rng.normal(0.0, ratio * rms, wave.shape)
        soundfile.write(path, np.clip(noisy / max(1.0, np.abs(noisy).max()), -1, 1), rate)


def ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def build_fake_superb(root: Path, noise: float) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from superb_fakes import (
        build_fluent_commands,
        build_iemocap,
        build_speech_commands,
        build_voxceleb1,
        write_s3prl_emotion_meta_data,
    )

    build_speech_commands(root)
    build_fluent_commands(root)
    build_voxceleb1(root, seconds=0.4)
    build_iemocap(root, per_label=2)
    write_s3prl_emotion_meta_data(root, root / ER_META_DATA)
    if noise > 0:
        add_noise(root, noise)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suites", default="demo,superb", help="demo, superb or both")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (overrides)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps-scale", type=float, default=0.01)
    parser.add_argument("--noise", type=float, default=5.0)
    parser.add_argument("--upstream", default="fbank_no_cmvn")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    setup_logging("WARNING")
    # tiny dev/test sets lack some classes; sklearn warns on every such evaluation
    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
    threads = configure_threads(args.threads)
    seeds = f"probe.seeds=[{args.seeds}]"
    print(
        f"{threads} threads, upstream {args.upstream}, seeds [{args.seeds}] for both "
        "profiles (the reference itself runs one: 1337 SUPERB, 42 HEAR)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-protocol-price-") as folder:
        scratch = Path(folder)
        groups = {
            "demo": (DEMO_TASKS, lambda: scratch / "demo-data"),
            "superb": (
                SUPERB_TASKS,
                lambda: build_fake_superb(scratch / "superb-data", args.noise),
            ),
        }
        for suite in args.suites.split(","):
            task_names, build = groups[suite]
            if args.tasks:
                task_names = tuple(t for t in args.tasks.split(",") if t in task_names)
            data_root = build()
            for name in task_names:
                prepared(name, data_root)
                reference = reference_overrides(name, args.steps_scale)
                fast = run_profile(
                    name,
                    data_root,
                    scratch / f"{name}-fast",
                    args.upstream,
                    [seeds, *fast_overrides(name, args.steps_scale)],
                    FAKE_OPTIONS.get(name, {}),
                )
                ref = run_profile(
                    name,
                    data_root,
                    scratch / f"{name}-ref",
                    args.upstream,
                    [seeds, *reference],
                    {**FAKE_OPTIONS.get(name, {}), **reference_options(name, data_root)},
                )
                print(
                    f"{name:>17}: fast {fast.mean:7.2f} ± {fast.std:5.2f} | reference "
                    f"{ref.mean:7.2f} ± {ref.std:5.2f} | difference {difference_in_stds(fast, ref)} "
                    f"seed std | reference/fast: steps {ratio(ref.steps, fast.steps)}, "
                    f"CPU {ref.cpu_s / fast.cpu_s:.2f}, wall {ref.wall_s / fast.wall_s:.2f} "
                    f"({ref.wall_s:.0f} s / {fast.wall_s:.0f} s) | {ref.label}"
                )


if __name__ == "__main__":
    main()
