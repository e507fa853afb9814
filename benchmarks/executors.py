"""What the executors cost and gain, as ratios measured within one run.

1. Scheduling overhead per unit of each engine: ``N`` empty units submitted together
   through the executor's own ``submit`` (Ray tasks; a Slurm job array through
   submitit), wall time from submission to the last result, divided by ``N``; and one
   empty unit alone (the latency a task's probe unit waits when it becomes ready).
2. The demo suite from an empty workspace through ``executor=ray`` with a local Ray of
   1 and of 2 CPUs (``work.cpus=1``: one unit per CPU), and through ``executor=local``
   (one process, its probes in two threads): wall times and their ratios. Ray's start
   (about 10 s) is timed apart. Each configuration runs ``--repeats`` times, alternating,
   and the median is reported (the machine is shared, so single runs are noisy).

    python benchmarks/executors.py [--units 32] [--repeats 1] [--engines ray,slurm]
        [--skip-suite] [overrides for the suite, e.g. probe.seeds=[0]]

Slurm is measured only where ``scontrol ping`` answers (.ci/slurm/setup.sh starts a
single-node one here). Results in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config import load_config
from bench.work_units import UnitResult


@dataclass(frozen=True)
class EmptyUnit:
    index: int

    def describe(self) -> str:
        return f"empty unit {self.index}"


def empty_unit(unit: EmptyUnit) -> UnitResult:
    return UnitResult(stats=unit.index)


def overhead(engine: str, units: int, workspace: Path) -> tuple[float, float]:
    """Seconds per unit of ``units`` empty units together, and of one alone."""
    from concurrent.futures import wait

    from bench.executors import make_executor
    from bench.executors.distributed import Resources

    config = load_config(
        overrides=[f"paths.workspace={workspace}", f"executor={engine}", "slurm.poll_s=0.5"]
    )
    executor = make_executor(config)
    try:
        warm = executor.submit(empty_unit, [EmptyUnit(-1)], Resources(cpus=1))
        wait(warm)  # workers started, modules imported
        started = time.perf_counter()
        futures = executor.submit(empty_unit, [EmptyUnit(i) for i in range(units)], Resources(1))
        assert [f.result().stats for f in futures] == list(range(units))
        per_unit = (time.perf_counter() - started) / units
        started = time.perf_counter()
        executor.submit(empty_unit, [EmptyUnit(0)], Resources(cpus=1))[0].result()
        alone = time.perf_counter() - started
    finally:
        executor.close()
    return per_unit, alone


def suite_wall_time(workspace: Path, overrides: list[str]) -> float:
    from bench.cli import main

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "run",
                "--suite",
                "demo",
                "-q",
                f"paths.workspace={workspace}",
                "tracking.enabled=false",
                *overrides,
            ]
        )
    if code != 0:
        raise SystemExit(f"bench run failed ({code}) in {workspace}")
    return time.perf_counter() - started


def suite(root: Path, repeats: int, extra: list[str]) -> None:
    from bench.executors.ray import import_ray, start_local_ray

    data = root / "demo-data"
    suite_wall_time(root / "warm-up", [f"paths.data={data}", *extra, "probe.max_steps=1"])
    times: dict[str, list[float]] = {"local": [], "ray, 1 CPU": [], "ray, 2 CPUs": []}
    ray_start: list[float] = []
    for repeat in range(repeats):
        for label in times:
            workspace = root / f"{label.replace(' ', '').replace(',', '-')}-{repeat}"
            overrides = [f"paths.data={data}", *extra]
            if label != "local":
                started = time.perf_counter()
                start_local_ray(num_cpus=1 if "1 CPU" in label else 2)
                ray_start.append(time.perf_counter() - started)
                overrides += ["executor=ray", "work.cpus=1"]
            try:
                times[label].append(suite_wall_time(workspace, overrides))
            finally:
                if label != "local":
                    import_ray().shutdown()
            print(f"  {label:12s} run {repeat + 1}: {times[label][-1]:7.1f} s", flush=True)
    median = {label: statistics.median(values) for label, values in times.items()}
    print(f"\ndemo suite from an empty workspace (median of {repeats}; {' '.join(extra)}):")
    for label, value in median.items():
        print(f"  {label:12s} {value:7.1f} s")
    print(f"  Ray start     {statistics.median(ray_start):7.1f} s (not included above)")
    one, two = median["ray, 1 CPU"], median["ray, 2 CPUs"]
    print(
        f"  ray 1 CPU / ray 2 CPUs = {one / two:.2f}; ray 2 CPUs / local = {two / median['local']:.2f}"
    )


def slurm_is_up() -> bool:
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return "UP" in ping.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--engines", default="ray,slurm")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("overrides", nargs="*", help="key=value for the suite runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-executors-") as folder:
        root = Path(folder)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"scheduling overhead ({args.units} empty units together, then one alone):")
        for engine in args.engines.split(","):
            if engine == "slurm" and not slurm_is_up():
                print("  slurm: no controller answers (.ci/slurm/setup.sh); skipped")
                continue
            if engine == "ray":
                from bench.executors.ray import import_ray, start_local_ray

                start_local_ray(num_cpus=2)
            try:
                per_unit, alone = overhead(engine, args.units, root / engine)
            finally:
                if engine == "ray":
                    import_ray().shutdown()
            print(f"  {engine:6s} {per_unit * 1000:9.1f} ms per unit, {alone * 1000:9.1f} ms alone")
        sys.stdout.flush()
        if not args.skip_suite:
            suite(root, args.repeats, args.overrides)


if __name__ == "__main__":
    main()
