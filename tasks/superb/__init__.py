"""SUPERB's tasks on the real corpora: the paper's ten (PR, ASR, KS, QbE, SF, IC, SID, ASV, SD, ER),
and SUPERB-SG's OOD-ASR, SE, SS and ST.

One module per task, mostly metadata (``pr``, ``asr``, ``ks``, ``qbe``, ``sf``, ``ic``, ``sid``,
``asv``, ``sd``, ``er``, ``ood_asr``, ``se``, ``ss``, ``st``); the corpus readers and their checks live
in ``bench.tasks.corpora``. Each task's docstring says what ``--data-root`` must hold, how the
corpus is split and labelled, and where each protocol fact comes from in s3prl.
"""

from bench.task import Suite, register_suite
from bench.tasks.superb import (  # noqa: F401
    asr,
    asv,
    er,
    ic,
    ks,
    ood_asr,
    pr,
    qbe,
    sd,
    se,
    sf,
    sid,
    ss,
    st,
    vc,
)

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
        description="The SUPERB paper's ten tasks, those of its score: "
        "PR, ASR, KS, QbE, SF, IC, SID, ASV, SD, ER",
        # the paper's order; the same tuple as bench.report.scores.SUPERB_SCORE_TASKS
        tasks=(
            "superb.pr",
            "superb.asr",
            "superb.ks",
            "superb.qbe",
            "superb.sf",
            "superb.ic",
            "superb.sid",
            "superb.asv",
            "superb.sd",
            "superb.er",
        ),
        default_upstream=None,
    )
)
register_suite(
    Suite(
        name="superb-sg",
        description="SUPERB-SG tasks: OOD-ASR (Common Voice es, zh-CN, ar; SBCSAE), SE, SS, ST; "
        "VC is listed but skipped (it needs a pretrained vocoder and evaluators)",
        tasks=(
            "superb.ood_asr.es",
            "superb.ood_asr.zh",
            "superb.ood_asr.ar",
            "superb.ood_asr.sbcsae",
            "superb.se",
            "superb.ss",
            "superb.st",
            "superb.vc",
        ),
        default_upstream=None,
    )
)
