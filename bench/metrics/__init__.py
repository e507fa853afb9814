"""Task metrics, one module per family.

- ``verification``: speaker verification (EER, minDCF) from trial scores.
- ``units``: discrete units against phone labels (PNMI, purities) and their bitrate.

HEAR's metrics live with the HEAR protocol (``bench.hear.metrics``). New families (CTC error
rates, diarization, slot filling, enhancement, translation, term-weighted value...) get a
module of their own here.
"""
