"""Statistics the report computes from recorded predictions: McNemar's paired test on
accuracy, a paired bootstrap interval for the macro-F1 difference (macro F1 and the
confusion matrix come from `harness.metrics.classification`), expected
calibration error with its reliability bins, and accuracy by review length. Inputs are
numpy arrays of label indices (gold, predicted), booleans (correct) or floats (confidence,
the probability of the predicted label); nothing here reads files or knows the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.metrics.catalog import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from harness.metrics.classification import confusion_matrix, macro_f1

EXACT_BELOW = 25  # discordant pairs under this: exact binomial; otherwise chi-square
LENGTH_EDGES = (128, 256, 512, 1024)  # token-count bucket edges, right-inclusive


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired correctness: b = only the first run right, c = only the second."""

    b: int
    c: int
    p_value: float
    method: Literal["exact", "chi2"]


@dataclass(frozen=True)
class Bootstrap:
    """Paired bootstrap of (second - first) macro F1: point estimate and percentile interval."""

    difference: float
    low: float
    high: float
    resamples: int


def mcnemar(first_correct: np.ndarray, second_correct: np.ndarray) -> McNemar:
    """McNemar's test: exact two-sided binomial when b + c < 25, else chi-square with continuity correction.

    >>> r = mcnemar(np.array([True] * 10 + [False] * 2), np.array([False] * 10 + [True] * 2))
    >>> (r.b, r.c, round(r.p_value, 4), r.method)
    (10, 2, 0.0386, 'exact')
    """
    b = int(np.sum(first_correct & ~second_correct))
    c = int(np.sum(~first_correct & second_correct))
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, "exact")
    if n < EXACT_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
        return McNemar(b, c, min(1.0, 2 * tail), "exact")
    statistic = (abs(b - c) - 1) ** 2 / n
    # Survival function of chi-square with one degree of freedom.
    return McNemar(b, c, math.erfc(math.sqrt(statistic / 2)), "chi2")


def paired_bootstrap_f1(
    gold: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    n_labels: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Bootstrap:
    """95% percentile interval of macro F1(second) - macro F1(first), resampling examples in pairs.

    Macro F1 depends only on the counts of (gold, first, second) triples, so a resample of
    n examples is one multinomial draw over those K**3 cells: exact and independent of n.

    >>> r = paired_bootstrap_f1(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), np.array([0, 1, 1, 1]), 2)
    >>> (r.difference, r.low, r.high)
    (0.0, 0.0, 0.0)
    """
    k = n_labels
    cells = np.bincount((gold * k + first) * k + second, minlength=k**3)
    draws = np.random.default_rng(seed).multinomial(len(gold), cells / cells.sum(), size=resamples)
    cube = draws.reshape(resamples, k, k, k)  # (resample, gold, first, second)
    diffs = macro_f1(cube.sum(axis=2)) - macro_f1(cube.sum(axis=3))
    observed = float(macro_f1(confusion_matrix(gold, second, k))) - float(macro_f1(confusion_matrix(gold, first, k)))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return Bootstrap(observed, float(low), float(high), resamples)


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin: its range, size, mean confidence and accuracy (None when empty)."""

    low: float
    high: float
    n: int
    confidence: float | None
    accuracy: float | None


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins on [0, 1]; each bin holds [low, high), the last also holds 1.0.

    >>> [b.n for b in reliability_bins(np.array([0.05, 0.95, 1.0]), np.array([1, 1, 0]), 2)]
    [1, 2]
    """
    index = np.minimum((np.asarray(confidence) * n_bins).astype(int), n_bins - 1)
    bins = []
    for i in range(n_bins):
        mask = index == i
        n = int(mask.sum())
        conf = float(confidence[mask].mean()) if n else None
        acc = float(np.mean(correct[mask])) if n else None
        bins.append(ReliabilityBin(i / n_bins, (i + 1) / n_bins, n, conf, acc))
    return bins


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """ECE: the size-weighted mean of |accuracy - mean confidence| over equal-width bins.

    >>> round(expected_calibration_error(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 0, 1, 1])), 6)
    0.4
    """
    total = len(confidence)
    if total == 0:
        return 0.0
    gaps = [
        b.n / total * abs(b.accuracy - b.confidence)
        for b in reliability_bins(confidence, correct, n_bins)
        if b.accuracy is not None and b.confidence is not None
    ]
    return float(sum(gaps))


def length_bucket_names(edges: tuple[int, ...] = LENGTH_EDGES) -> list[str]:
    """Readable names of the token-count buckets.

    >>> length_bucket_names((128, 256))
    ['≤ 128', '129–256', '> 256']
    """
    names = [f"≤ {edges[0]}"]
    names += [f"{lo + 1}–{hi}" for lo, hi in zip(edges, edges[1:])]
    return names + [f"> {edges[-1]}"]


def accuracy_by_length(
    n_tokens: np.ndarray, correct: np.ndarray, edges: tuple[int, ...] = LENGTH_EDGES
) -> list[tuple[int, float | None]]:
    """(count, accuracy) per token-count bucket; accuracy is None for an empty bucket.

    >>> accuracy_by_length(np.array([10, 200, 300]), np.array([1, 0, 1]), (128, 256))
    [(1, 1.0), (1, 0.0), (1, 1.0)]
    """
    index = np.digitize(n_tokens, edges, right=True)
    out = []
    for i in range(len(edges) + 1):
        mask = index == i
        n = int(mask.sum())
        out.append((n, float(np.mean(correct[mask])) if n else None))
    return out
