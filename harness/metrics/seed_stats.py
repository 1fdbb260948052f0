"""Is a fine-tuning gain real? Statistics over K fine-tunes that differ only in the training seed,
each scored on the same n test examples as one baseline. Inputs are per-example correctness:
baseline (n,) and fine-tuned (K, n) booleans. Two sources of noise move the gain: which seed
trained the model, and which test examples were drawn. The per-seed gain is the seed's accuracy
minus the baseline's. The seed SD is the SD (n - 1 weights, here K - 1) of per-seed accuracy; the
test-sampling SE is the paired SE of the gain with the K seeds' correctness averaged per example
(sd(d) / sqrt(n), Miller 2024 section 4.2, exactly the report's single-pair SE when K = 1). The
expected gain of the recipe gets SE**2 = seed_sd**2 / K + test_se**2. That counts the
seed-by-example interaction in both terms, so it errs wide. Seed-level variation follows Dodge et
al. 2020 and Bouthillier et al. 2021; Holm 1979 adjusts p-values for many comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from harness.errors import UserError
from harness.metrics.catalog import BOOTSTRAP_RESAMPLES
from harness.metrics.seed_power import ALPHA, POWER, seeds_needed

Z95 = 1.959963984540054  # the normal 97.5% quantile: the one 95% z of harness and reports
RESAMPLES = BOOTSTRAP_RESAMPLES  # two-level bootstrap draws: the catalog's one resample count
BOOTSTRAP_FROM = 20  # fewer seeds: the t-interval; the bootstrap covered 93% with 10 seeds, 86% with 3

Method = Literal["auto", "t", "bootstrap"]
METHODS = {
    "paired-z": ("one seed: the paired normal interval over test examples (mean ± 1.96 SE), as for one pair of "
                 "runs; seed-to-seed variation is not measured."),
    "t": ("t-interval over seeds plus the paired interval over test examples: mean gain ± "
          "sqrt((t(0.975, K-1) × seed_sd/√K)² + (1.96 × test_se)²); assumes per-seed gains roughly normal around "
          "the recipe's expected gain and independent test examples; errs wide rather than narrow."),
    "bootstrap": ("two-level percentile bootstrap: resample seeds, then test examples, with replacement "
                  f"({RESAMPLES:,} draws); assumes seeds and examples are independent draws."),
}


@dataclass(frozen=True)
class SeedGains:
    """Per-seed and pooled accuracy gains over one baseline, with a 95% interval for the recipe's expected gain."""

    n: int  # test examples
    baseline: float  # baseline accuracy
    accuracies: tuple[float, ...]  # per-seed fine-tuned accuracy
    gains: tuple[float, ...]  # per-seed accuracy minus baseline accuracy
    mean: float  # mean gain over seeds
    seed_sd: float | None  # SD of per-seed accuracy (ddof 1); None for one seed
    test_se: float  # paired test-sampling SE of the mean gain
    se: float  # both sources: sqrt(seed_sd**2 / K + test_se**2)
    low: float
    high: float
    df: int | None  # K - 1 for the t-interval; None for the z and bootstrap intervals
    kind: Literal["paired-z", "t", "bootstrap"]
    method: str  # the interval's method and assumptions, in words

    @property
    def seeds(self) -> int:
        """K, the number of fine-tuned seeds."""
        return len(self.gains)


def seed_gains(*, baseline: np.ndarray, finetuned: np.ndarray, method: Method = "auto",
               resamples: int = RESAMPLES, seed: int = 0) -> SeedGains:
    """Per-seed gains, seed SD, test SE and a 95% interval for the recipe's expected gain.

    >>> g = seed_gains(baseline=np.array([1, 0, 0, 1] * 5), finetuned=np.array([[1, 1, 0, 1] * 5, [1, 0, 0, 1] * 5]))
    >>> (g.gains, g.mean, round(g.seed_sd, 4), g.kind)
    ((0.25, 0.0), 0.125, 0.1768, 't')
    """
    if method not in ("auto", "t", "bootstrap"):
        raise UserError(f"method={method!r}: use 'auto', 't' or 'bootstrap'")
    base, tuned = _check(baseline, finetuned)
    k, n = tuned.shape
    d = tuned.astype(float) - base.astype(float)  # (K, n): +1 fixed, -1 broken, 0 unchanged
    gains = d.mean(axis=1)
    mean = float(gains.mean())
    test_se = paired_se(d.mean(axis=0))  # of the seeds' average change on each example
    accs = tuple(float(a) for a in tuned.mean(axis=1))
    head = {"n": n, "baseline": float(base.mean()), "accuracies": accs, "gains": tuple(float(g) for g in gains),
            "mean": mean, "test_se": test_se}
    if k == 1:
        return SeedGains(**head, seed_sd=None, se=test_se, low=mean - Z95 * test_se, high=mean + Z95 * test_se,
                         df=None, kind="paired-z", method=METHODS["paired-z"])
    seed_sd = float(np.std(accs, ddof=1))
    se = math.sqrt(seed_sd**2 / k + test_se**2)
    kind = ("t" if k < BOOTSTRAP_FROM else "bootstrap") if method == "auto" else method
    if kind == "bootstrap":
        low, high = _two_level_bootstrap(base, tuned, resamples, seed)
        return SeedGains(**head, seed_sd=seed_sd, se=se, low=low, high=high, df=None, kind="bootstrap",
                         method=METHODS["bootstrap"])
    # Each source's own 95% half-width, added in quadrature: t over K seeds for the seed part (few seeds, few
    # df), normal for the test part. Welch-Satterthwaite df instead covered only 88% with 2 seeds in simulation.
    half = math.hypot(float(stats.t.ppf(0.975, k - 1)) * seed_sd / math.sqrt(k), Z95 * test_se)
    return SeedGains(**head, seed_sd=seed_sd, se=se, low=mean - half, high=mean + half, df=k - 1, kind="t",
                     method=METHODS["t"])


def paired_se(d: np.ndarray) -> float:
    """Paired SE of a mean difference: sd(d) / sqrt(n), sample variance (n - 1), 0 for no examples.

    >>> round(paired_se(np.array([0.0, 0.0, -1.0, 1.0])), 4)
    0.4082
    """
    n = len(d)
    return math.sqrt(float(np.var(d, ddof=1 if n > 1 else 0)) / n) if n else 0.0


def _check(baseline: np.ndarray, finetuned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    base = np.asarray(baseline).astype(bool)
    tuned = np.atleast_2d(np.asarray(finetuned)).astype(bool)
    if base.ndim != 1 or len(base) == 0 or tuned.ndim != 2 or tuned.shape[1] != len(base):
        raise UserError(f"the fine-tuned runs have shape {tuned.shape} and the baseline {base.shape}: score every "
                        "seed on the same test examples as the baseline (one row per seed)")
    return base, tuned


def _two_level_bootstrap(base: np.ndarray, tuned: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean gain, resampling seeds and then examples.

    An example enters the statistic only through its column of (baseline, seed 1..K) outcomes, so a
    resample of examples is one multinomial draw over the distinct columns: exact, and fast for any n.
    """
    k, n = tuned.shape
    columns, counts = np.unique(np.vstack([base, tuned]).T, axis=0, return_counts=True)
    change = columns[:, 1:].astype(float) - columns[:, [0]].astype(float)  # (distinct columns, K)
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(k, np.full(k, 1 / k), size=resamples)  # (B, K)
    example_counts = rng.multinomial(n, counts / n, size=resamples)  # (B, distinct columns)
    means = np.einsum("bc,ck,bk->b", example_counts, change, seed_counts) / (n * k)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Verdict:
    """The plain answer to "is the gain real?" and the numbers behind it."""

    sentence: str
    disagree: bool  # some seeds gain and some lose, and the seed SD exceeds the mean gain
    above_seed_sd: bool | None  # |mean gain| > seed SD; None for one seed
    seeds_needed: int | None  # to detect the mean gain at 80% power on this test set; None if unreachable


def verdict(*, gains: SeedGains, alpha: float = ALPHA, power: float = POWER) -> Verdict:
    """Plain words: is the mean gain larger than the seed-to-seed variation, and how many seeds would detect it."""
    pts = 100 * gains.mean
    if gains.seed_sd is None:
        return Verdict(f"One seed: a gain of {pts:+.1f} points; the variation between seeds is not measured, so "
                       "train two or more seeds to tell the recipe's gain from a lucky or unlucky seed.",
                       False, None, None)
    sd = 100 * gains.seed_sd
    need = seeds_needed(seed_sd=gains.seed_sd, change=gains.mean, test_se=gains.test_se, alpha=alpha, power=power)
    lo, hi = 100 * min(gains.gains), 100 * max(gains.gains)
    disagree = lo < 0 < hi and gains.seed_sd >= abs(gains.mean)
    above = abs(gains.mean) > gains.seed_sd
    what = f"mean gain of {pts:+.1f} points" if pts >= 0 else f"mean loss of {-pts:.1f} points"
    if disagree:
        text = (f"The seeds disagree: per-seed gains run from {lo:+.1f} to {hi:+.1f} points, some seeds gain and some "
                f"lose, and the seed-to-seed SD ({sd:.1f} points) exceeds the {what}.")
    else:
        text = (f"The {what} is {'larger' if above else 'not larger'} than the variation between seeds "
                f"(SD {sd:.1f} points).")
    side = "excludes" if gains.low > 0 or gains.high < 0 else "includes"
    text += f" The 95% interval for the recipe, {100 * gains.low:+.1f} to {100 * gains.high:+.1f} points, {side} zero."
    return Verdict(text + _detect(gains, need, alpha, power, excluded=side == "excludes"), disagree, above, need)


def _detect(gains: SeedGains, need: int | None, alpha: float, power: float, *, excluded: bool) -> str:
    """The power half of the verdict. An interval that excludes zero while power is short is a hit
    that a repeat may miss; the sentence says so, so the two halves do not read as a contradiction."""
    if gains.mean == 0:
        return " There is no mean change to detect."
    if need is None:
        return (f" At {power:.0%} power no number of seeds detects {100 * gains.mean:+.1f} points on these "
                f"{gains.n:,} test examples (test-sampling SE {100 * gains.test_se:.1f} points)"
                f"{', so a repeat may not exclude zero again' if excluded else ''}: add test examples.")
    if gains.seeds >= need:
        enough = "enough"
    else:
        enough = "not enough for a repeat to exclude zero reliably" if excluded else "not enough"
    return (f" Detecting it at {power:.0%} power (two-sided t, alpha {alpha:g}) takes about {need} seeds; "
            f"{gains.seeds} were run, {enough}.")


@dataclass(frozen=True)
class SeedFlips:
    """Example indices by how the seeds changed them relative to the baseline."""

    fixed_by_all: tuple[int, ...]  # baseline wrong, every seed right
    broken_by_all: tuple[int, ...]  # baseline right, every seed wrong
    fixed_by_some: tuple[int, ...]  # baseline wrong, some seeds right and some wrong
    broken_by_some: tuple[int, ...]  # baseline right, some seeds wrong and some right


def seed_flips(*, baseline: np.ndarray, finetuned: np.ndarray) -> SeedFlips:
    """Which examples every seed fixed or broke, and which the seeds disagree on.

    >>> f = seed_flips(baseline=np.array([0, 0, 1, 1, 1]), finetuned=np.array([[1, 1, 0, 0, 1], [1, 0, 0, 1, 1]]))
    >>> (f.fixed_by_all, f.broken_by_all, f.fixed_by_some, f.broken_by_some)
    ((0,), (2,), (1,), (3,))
    """
    base, tuned = _check(baseline, finetuned)
    right = tuned.sum(axis=0)
    k = tuned.shape[0]

    def where(mask: np.ndarray) -> tuple[int, ...]:
        return tuple(int(i) for i in np.flatnonzero(mask))

    some = (right > 0) & (right < k)
    return SeedFlips(where(~base & (right == k)), where(base & (right == 0)), where(~base & some), where(base & some))


def holm(*, p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm (1979) step-down adjusted p-values, in the input order.

    >>> holm(p_values=[0.01, 0.04, 0.03, 0.005])
    (0.03, 0.06, 0.06, 0.02)
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return tuple(float(x) for x in out)
