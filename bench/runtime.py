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
