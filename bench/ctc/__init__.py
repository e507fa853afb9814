"""Connectionist temporal classification for SUPERB's content tasks (PR, ASR).

``recipe`` (what a task file declares: head, SpecAugment, batching), ``text``
(vocabularies, lexicon, transcripts to units), ``heads`` (s3prl's CTC heads), ``augment``
(SpecAugment on features), ``decode`` (greedy CTC decoding). The error rates are in
``bench.metrics.ctc``; ``bench.protocols.ctc`` trains and scores with all of them.
"""
