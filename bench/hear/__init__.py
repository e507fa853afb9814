"""HEAR 2021 evaluation, as hear-eval-kit 2021.1.3 does it, without Lightning.

- ``taskdir``: read a hear-preprocess task directory into a ``TaskData``.
- ``grid``: the predictor grid and the reference's random 8 of 16.
- ``predictor``: the MLP predictor, the layer featurizer in front of it, training.
- ``events``: frame labels, and frame predictions -> sound events.
- ``metrics``: the HEAR metrics (parity with ``heareval.score``) and the HEAR score.
- ``options``: per-task switches, including the reference's known defects.

The protocols built on these live in ``bench.protocols.hear``.
"""
