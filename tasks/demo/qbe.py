"""demo.qbe: query by example on a synthetic QUESST 2014 database (SUPERB QbE protocol).

The corpus (``bench.tasks.demo.quesst``) is generated on first use under
``<paths.data>/demo/qbe/quesst14Database/``, read by the real QUESST 2014 reader and scored
exactly as superb.qbe is.
"""

from __future__ import annotations

from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.task import TaskMetadata, register_task
from bench.tasks.corpora.quesst14 import CORPUS_DIR, verify_quesst14
from bench.tasks.demo.tasks import GENERATED, DemoData
from bench.tasks.superb.qbe import QueryByExampleTask


@register_task
class DemoQueryByExample(DemoData, QueryByExampleTask):
    """Spoken-word queries in spoken sentences, QUESST 2014 layout (SUPERB QbE protocol)."""

    metadata = TaskMetadata(
        name="demo.qbe",
        description="Query by example on synthetic QUESST 2014 (SUPERB QbE protocol)",
        corpus="espeak-ng speech in the QUESST 2014 layout",
        data_layout=f"qbe/{CORPUS_DIR}/",
        main_metric="mtwv",
        license=GENERATED,
    )

    def root(self) -> Path:
        return DemoData.root(self) / "qbe" / CORPUS_DIR

    def verify(self) -> CorpusReport:
        return verify_quesst14(self.root(), self.language(), full_counts=None)

    def prepare(self) -> None:
        from bench.tasks.demo.generate import build_once
        from bench.tasks.demo.quesst import build_qbe_demo_in_fresh_process

        build_once(self.root().parent, build_qbe_demo_in_fresh_process)
        super().prepare()
