"""Metrics of speech enhancement and separation, per utterance, as s3prl reports them
(asteroid's ``get_metrics``): the scores of the estimate against the clean reference.

- ``si_sdr``: scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019):
  the estimate's projection on the reference over the residual, no mean removal (what
  asteroid's metric, pb_bss_eval's ``si_sdr``, computes); ``zero_mean=True`` removes
  both means first (asteroid's SI-SDR *loss*).
- ``si_sdr_improvement``: mean over sources of SI-SDR(estimate) - SI-SDR(mixture), for
  the assignment of estimates to references that gives the best mean (PIT; one source:
  the identity).
- ``pesq_wb``: wide-band PESQ (ITU-T P.862.2) of the ``pesq`` package at 16 kHz.
- ``stoi``: short-time objective intelligibility (``pystoi``, not the extended one).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

_EPS = np.finfo(np.float64).tiny


def si_sdr(reference: np.ndarray, estimate: np.ndarray, zero_mean: bool = False) -> float:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ValueError(f"reference {reference.shape} and estimate {estimate.shape} differ")
    if zero_mean:
        reference, estimate = reference - reference.mean(), estimate - estimate.mean()
    scale = np.dot(reference, estimate) / max(np.dot(reference, reference), _EPS)
    target = scale * reference
    residual = estimate - target
    distortion = np.dot(residual, residual)
    if distortion == 0:
        return math.inf  # the estimate is a scaled reference
    return float(10 * np.log10(max(np.dot(target, target), _EPS) / distortion))


def si_sdr_improvement(mixture: np.ndarray, references: np.ndarray, estimates: np.ndarray) -> float:
    """mixture ``[N]``, references and estimates ``[S, N]``."""
    if references.shape != estimates.shape:
        raise ValueError(f"references {references.shape} and estimates {estimates.shape} differ")
    baseline = np.mean([si_sdr(reference, mixture) for reference in references])
    best = max(
        np.mean([si_sdr(references[s], estimates[e]) for s, e in enumerate(order)])
        for order in itertools.permutations(range(len(references)))
    )
    return float(best - baseline)


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16_000) -> float:
    from pesq import pesq

    return float(pesq(sample_rate, np.asarray(reference), np.asarray(estimate), "wb"))


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16_000) -> float:
    from pystoi import stoi as pystoi

    return float(pystoi(np.asarray(reference), np.asarray(estimate), sample_rate, extended=False))
