"""bench: benchmark speech and audio self-supervised encoders on SUPERB and HEAR.

The engine lives here; task definitions live in ``bench.tasks`` (the repository's
``tasks/`` folder) and encoders in ``bench.upstreams`` (``upstreams/``).
"""

__version__ = "0.1.0"
