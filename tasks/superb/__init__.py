"""SUPERB's tasks on the real corpora: PR, ASR (content), KS, IC, SID, ER, ASV.

One module per task, mostly metadata (``pr``, ``asr``, ``ks``, ``ic``, ``sid``, ``er``, ``asv``); the
corpus readers and their checks live in ``bench.tasks.corpora``. Each task's
docstring says what ``--data-root`` must hold, how the corpus is split and labelled, and
where each protocol fact comes from in s3prl.
"""

from bench.task import Suite, register_suite
from bench.tasks.superb import asr, asv, er, ic, ks, pr, qbe, sid  # noqa: F401

register_suite(
    Suite(
        name="superb-utterance",
        description="SUPERB utterance and speaker tasks on the real corpora: KS, IC, SID, ER, ASV",
        tasks=("superb.ks", "superb.ic", "superb.sid", "superb.er", "superb.asv"),
        default_upstream=None,
    )
)
register_suite(
    Suite(
        name="superb-content",
        description="SUPERB content tasks on LibriSpeech: PR, ASR",
        tasks=("superb.pr", "superb.asr"),
        default_upstream=None,
    )
)
register_suite(
    Suite(
        name="superb",
        description="The SUPERB tasks bench runs: PR, ASR, KS, QbE, IC, SID, ER, ASV",
        tasks=(
            "superb.pr",
            "superb.asr",
            "superb.ks",
            "superb.qbe",
            "superb.ic",
            "superb.sid",
            "superb.er",
            "superb.asv",
        ),
        default_upstream=None,
    )
)
