"""How many training seeds and test examples a fine-tuning change needs, from a measured seed SD.

The expected gain of a recipe is estimated by the mean of K per-seed gains, each measured against
the same baseline on the same n test examples. Its variance is seed_sd**2 / K (seeds differ) plus
test_var / n (which test examples were drawn), where test_var is the per-example variance of the
paired difference: psi - delta**2 for one seed at discordance psi (averaging seeds only lowers it,
so using it is conservative). Detection is a two-sided one-sample t-test on the per-seed gains with
K - 1 degrees of freedom; its power comes from the noncentral t with noncentrality
delta / sqrt(seed_sd**2 / K + test_var / n). With test_var = 0 this is the textbook one-sample t
power (Cohen 1988; R's `pwr.t.test(type = "one.sample")`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from harness.errors import UserError

ALPHA = 0.05
POWER = 0.80
MOST_SEEDS = 1000  # beyond this we say "not reachable" rather than search further
BIG_NCP = 50.0  # power is 1 to machine precision here for any df >= 1; scipy's nct gives NaN far beyond
METHOD = ("two-sided one-sample t-test over per-seed gains (df = K - 1), noncentral t power with variance "
          "seed_sd^2/K + (psi - delta^2)/n")


def t_power(*, seeds: int | np.ndarray, ncp_scale: float | np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Power of a two-sided one-sample t-test on `seeds` values whose mean over its SE is `ncp_scale`."""
    df = np.asarray(seeds, dtype=float) - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    # The far tail is negligible for a positive noncentrality, and scipy returns NaN for it at large values.
    far = np.nan_to_num(stats.nct.cdf(-crit, df, ncp_scale), nan=0.0)
    return np.asarray(stats.nct.sf(crit, df, ncp_scale) + far)


def seeds_needed(*, seed_sd: float, change: float, test_se: float = 0.0, alpha: float = ALPHA,
                 power: float = POWER) -> int | None:
    """Fewest seeds (at least 2) whose mean gain detects `change`; None when test noise alone forbids it.

    Effect size change / seed_sd = 1 needs 10 seeds, 0.5 needs 34 (R: pwr.t.test gives 9.94 and 33.37).

    >>> seeds_needed(seed_sd=0.02, change=0.02), seeds_needed(seed_sd=0.02, change=0.01)
    (10, 34)
    """
    delta = abs(change)
    if delta == 0:
        return None
    k = np.arange(2, MOST_SEEDS + 1)
    se = np.sqrt(seed_sd**2 / k + test_se**2)
    scale = np.minimum(np.divide(delta, se, out=np.full(len(k), BIG_NCP), where=se > 0), BIG_NCP)
    ok = np.flatnonzero(t_power(seeds=k, ncp_scale=scale, alpha=alpha) >= power)
    return int(k[ok[0]]) if len(ok) else None


def examples_needed(*, seeds: int, seed_sd: float, change: float, discordance: float, alpha: float = ALPHA,
                    power: float = POWER) -> int | None:
    """Fewest test examples for `seeds` seeds to detect `change`; None when seed noise alone forbids it.

    >>> examples_needed(seeds=20, seed_sd=0.02, change=0.02, discordance=0.15)
    5787
    >>> examples_needed(seeds=5, seed_sd=0.02, change=0.02, discordance=0.15) is None  # needs 10 seeds
    True
    """
    delta = abs(change)
    if seeds < 2 or delta == 0 or delta > discordance:
        return None
    if t_power(seeds=seeds, ncp_scale=BIG_NCP, alpha=alpha) < power:
        return None
    # The noncentrality at which the test just reaches the target power, then the n that gives it.
    ncp = optimize.brentq(lambda s: float(t_power(seeds=seeds, ncp_scale=s, alpha=alpha)) - power, 0.0, BIG_NCP)
    room = (delta / ncp) ** 2 - seed_sd**2 / seeds  # variance left for test sampling
    if room <= 0:
        return None
    return max(2, math.ceil((discordance - delta**2) / room))


def seed_plan_lines(*, seed_sd: float, change: float | None, n: int | None, discordance: float,
                    alpha: float = ALPHA, power: float = POWER) -> list[str]:
    """What `tenser plan --seed-sd` adds: seeds needed, with a large test set and with n, and examples per seed count."""
    if not 0 < seed_sd < 1:
        raise UserError(f"{{seed_sd}} {seed_sd}: give the seed-to-seed SD of accuracy as a fraction in (0, 1), e.g. 0.02", param="seed_sd")
    if change is None:
        raise UserError("{seed_sd} needs {change} X: the accuracy change (gain) the seeds should detect, e.g. 0.03", param="seed_sd",
                        mentions=("change",))
    lines = [f"Seeds: {METHOD}. Settings: seed SD = {seed_sd:g}, change {change:g}, alpha = {alpha:g}, power = {power:g}."]
    best = seeds_needed(seed_sd=seed_sd, change=change, alpha=alpha, power=power)
    lines.append(f"seed SD {seed_sd:g}, change {change:g}: " + (
        f"more than {MOST_SEEDS:,} seeds needed." if best is None else
        f"{best} seeds needed even with a very large test set."))
    if n is not None:
        test_se = math.sqrt(max(discordance - change**2, 0.0) / n)
        k = seeds_needed(seed_sd=seed_sd, change=change, test_se=test_se, alpha=alpha, power=power)
        lines.append(f"with n = {n:,} test examples (test-sampling SE {test_se:.4f}): " + (
            "no number of seeds is enough; add test examples." if k is None else f"{k} seeds needed."))
    if best is not None:
        counts = sorted({best, best + 1, 2 * best, 4 * best})
        cells = [f"{k} seeds: {_count(examples_needed(seeds=k, seed_sd=seed_sd, change=change, discordance=discordance, alpha=alpha, power=power))}"
                 for k in counts]
        lines.append(f"test examples needed at discordance {discordance:g}: " + "; ".join(cells) + ".")
    return lines


def _count(n: int | None) -> str:
    return "not reachable" if n is None else f"{n:,}"
