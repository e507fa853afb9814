"""bench: benchmark speech and audio self-supervised encoders on SUPERB and HEAR.

The engine lives here; task definitions live in ``bench.tasks`` (the repository's
``tasks/`` folder) and encoders in ``bench.upstreams`` (``upstreams/``).
"""

import os

__version__ = "0.1.0"

# OpenMP threads that finish early spin-wait for their siblings by default. When other
# processes share the cores (a CI runner, parallel tests) the spinning steals their time:
# probe training steps measured 16-40x slower with 2 threads on 2 busy cores, and faster
# than one thread once waiting threads sleep instead. Must be set before torch loads
# OpenMP; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
