"""SUPERB's utterance and speaker tasks on the real corpora: KS, IC, SID, ER, ASV.

One module per task, mostly metadata (``ks``, ``ic``, ``sid``, ``er``, ``asv``); the
corpus readers and their checks live in ``bench.tasks.corpora``. Each task's
docstring says what ``--data-root`` must hold, how the corpus is split and labelled, and
where each protocol fact comes from in s3prl.
"""

from bench.task import Suite, register_suite
from bench.tasks.superb import asv, er, ic, ks, qbe, sid  # noqa: F401

register_suite(
    Suite(
        name="superb-utterance",
        description="SUPERB utterance and speaker tasks on the real corpora: KS, IC, SID, ER, ASV",
        tasks=("superb.ks", "superb.ic", "superb.sid", "superb.er", "superb.asv"),
        default_upstream=None,
    )
)
