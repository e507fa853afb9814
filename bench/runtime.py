"""Process-wide runtime settings: how many CPU threads torch may use.

torch sizes its thread pool from the host's core count, which in a container or under
a CPU quota can be far more than the process may use; the oversubscribed threads then
contend and small operations get >10x slower. bench sizes it from what is available.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(count, quota) if quota else count)


def _cgroup_cpu_quota() -> int | None:
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(1, math.ceil(int(limit) / int(period)))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (default: the available CPUs) and one inter-op thread."""
    import torch

    count = threads or available_cpus()
    torch.set_num_threads(count)
    with contextlib.suppress(RuntimeError):  # settable only before the first parallel work
        torch.set_num_interop_threads(1)
    return count


def check_device(key: str, name: str) -> None:
    """Refuse a device this machine does not have, saying what to use instead."""
    import torch

    from bench.config import ConfigError

    if name.startswith("cuda"):
        if torch.version.cuda is None:
            reason = f"this torch build has no CUDA support (torch {torch.__version__})"
        elif not torch.cuda.is_available():
            reason = "no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        elif ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            reason = f"only {torch.cuda.device_count()} CUDA device(s) are visible"
        else:
            return
        raise ConfigError(f"{key}={name}, but {reason}; use {key}=cpu (or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}=mps, but MPS is not available here; use {key}=cpu (or auto)")
