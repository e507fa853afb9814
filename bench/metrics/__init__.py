"""Task metrics, one module per family.

- ``verification``: speaker verification (EER, minDCF) from trial scores.
- ``units``: discrete units against phone labels (PNMI, purities) and their bitrate.
- ``ctc``: error rates of recognised sequences (PER, WER, CER) as s3prl computes them.

HEAR's metrics live with the HEAR protocol (``bench.hear.metrics``). New families
(diarization, slot filling, enhancement, translation, term-weighted value...) get a module
of their own here.
"""
