"""``executor=ray``: units as Ray tasks (``pip install bench-ssl[ray]``).

Each unit is a Ray task asking for ``work.cpus`` CPUs and, when it uses one,
``work.gpus`` GPUs; Ray runs it again when its worker process dies (``max_retries =
work.retries``), never for an error of the work itself (those are results, see
bench.work_units). Workers stay up between units and keep their built upstream.

``ray.address`` null: bench starts a Ray of its own for the run and stops it afterwards.
It listens on 127.0.0.1 only and has no dashboard unless ``ray.dashboard=true`` (then on
127.0.0.1 too). Left to itself, a Ray on Linux listens on every interface, and it turns
even an explicit ``_node_ip_address="127.0.0.1"`` into the machine's network address;
bench sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before importing Ray (Ray's switch
for a Ray confined to one machine: its node address is 127.0.0.1 and every server binds
there) and checks the address Ray reports (tests/test_executor_ray.py checks the sockets).
``ray.address`` set: bench connects to that cluster (``auto`` finds one started on this
machine by ``ray start``); every node must see the workspace at the same path. A Ray
already initialised in this process (``ray.init`` by the caller) is used as it is.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from bench.executors.distributed import DistributedExecutor, Resources
from bench.work_units import UnitResult

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: Ray's switch for a Ray confined to this machine (read when Ray is imported)
SINGLE_MACHINE_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayNotAvailableError(RuntimeError):
    """Ray is not installed, or would not listen where bench asks it to."""


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise RayNotAvailableError("executor=ray needs Ray: pip install 'bench-ssl[ray]'") from None
    return ray


def start_local_ray(num_cpus: int | None = None, dashboard: bool = False) -> Any:
    """Start a Ray confined to this machine: every server on 127.0.0.1, the dashboard
    (only if asked for) too. Returns Ray's context."""
    if "ray" not in sys.modules:
        os.environ.setdefault(SINGLE_MACHINE_SWITCH, "0")
    ray = import_ray()
    context = ray.init(
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        dashboard_host=LOOPBACK,
        _node_ip_address=LOOPBACK,
        logging_level=logging.WARNING,
        log_to_driver=True,
    )
    address = context.address_info.get("node_ip_address")
    if address != LOOPBACK:
        ray.shutdown()
        raise RayNotAvailableError(
            f"the local Ray would listen on {address}, not {LOOPBACK} only: Ray was imported "
            f"before bench could set {SINGLE_MACHINE_SWITCH}=0; set it in the environment"
        )
    log.info(
        "started a local Ray (%s CPUs) on %s%s",
        num_cpus or "all",
        LOOPBACK,
        f", dashboard {context.dashboard_url}" if dashboard else "",
    )
    return context


class RayExecutor(DistributedExecutor):
    engine = "ray"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        ray = import_ray()
        options = self.config.ray
        self._connected_here = not ray.is_initialized()
        if not self._connected_here:
            log.info("using the Ray this process has already initialised")
        elif options.address:
            ray.init(address=str(options.address), logging_level=logging.WARNING)
            log.info("connected to the Ray cluster at %s", options.address)
        else:
            start_local_ray(options.num_cpus, bool(options.dashboard))
        self._refs: dict[Future, Any] = {}

    def submit(
        self, function: Callable[[Any], UnitResult], units: Sequence[Any], resources: Resources
    ) -> list[Future]:
        ray = import_ray()
        remote = ray.remote(function)
        options = {
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus,
            "max_retries": int(self.config.work.retries),
            "retry_exceptions": False,
        }
        futures = []
        for unit in units:
            ref = remote.options(**options, name=unit.describe()).remote(unit)
            future = ref.future()
            self._refs[future] = ref
            futures.append(future)
        return futures

    def cancel(self, futures: Sequence[Future]) -> None:
        ray = import_ray()
        for future in futures:
            ref = self._refs.pop(future, None)
            if ref is not None:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._connected_here:
            import_ray().shutdown()
