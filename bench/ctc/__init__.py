"""Connectionist temporal classification for SUPERB's content tasks (PR, ASR).

``text`` (vocabularies, lexicon, transcripts to units), ``heads`` (s3prl's CTC heads),
``augment`` (SpecAugment on features), ``decode`` (greedy CTC decoding), ``metrics`` (PER,
WER, UER as s3prl computes them). ``bench.protocols.ctc`` trains and scores with them.
"""
