"""Paired differences of per-example correctness and the power to detect them.

Two runs on the same examples: each example's difference d = second correct - first correct
is +1, 0 or -1, and the accuracy change is the mean of d. Its standard error is sd(d)/sqrt(n)
(Miller 2024, "Adding Error Bars to Evals", arXiv 2411.00640, section 4.2): because
Var(x - y) = Var(x) + Var(y) - 2 Cov(x, y), pairing removes the part both runs share, and the
unpaired SE sqrt(Var(x)/n + Var(y)/n) overstates the uncertainty when the runs' correctness is
positively correlated. Sample variances use n - 1. The 95% interval is mean ± 1.96 SE.

Power follows Connor (1987), "Sample size for testing differences in proportions for the
paired-sample design", Biometrics 43(1), 207-211: the normal approximation to McNemar's test.
With discordance psi (the share of examples on which exactly one run is right) and accuracy
change delta, a two-sided test at level alpha has power 1 - beta when

    n = (z(1 - alpha/2) * sqrt(psi) + z(1 - beta) * sqrt(psi - delta**2))**2 / delta**2

Assumptions: examples are independent draws from the population of interest, psi is known
(we plug in the observed one), and n is large enough for the normal approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from harness.metrics.seed_power import ALPHA, POWER
from harness.metrics.seed_stats import Z95, paired_se
from reports.formatting import signed


@dataclass(frozen=True)
class PairedDifference:
    """Mean of (second - first) per-example correctness, its paired and unpaired SEs and 95% CI."""

    n: int
    first: float  # accuracy of the first run
    second: float
    mean: float
    se: float
    low: float
    high: float
    correlation: float | None  # Pearson (phi) of the two correctness vectors; None if either is constant
    unpaired_se: float
    discordance: float  # share of examples on which exactly one run is right


def paired_difference(first: np.ndarray, second: np.ndarray) -> PairedDifference:
    """Paired SE of the accuracy change (Miller 2024, eq. 7 with sample variances).

    Four examples, b = c = 1 discordant: d = (0, 0, -1, +1), Var(d) = 2/3, SE = sqrt(2/3 / 4);
    each run is 3/4 right, Var = 1/4, unpaired SE = sqrt(1/4/4 + 1/4/4); phi = (2*0 - 1*1)/3.

    >>> r = paired_difference(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 1]))
    >>> (r.mean, round(r.se, 4), round(r.unpaired_se, 4), round(r.correlation, 4), r.discordance)
    (0.0, 0.4082, 0.3536, -0.3333, 0.5)
    """
    x, y = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    n = len(x)
    d = y - x
    ddof = 1 if n > 1 else 0
    var_x, var_y = float(x.var(ddof=ddof)), float(y.var(ddof=ddof))
    se = paired_se(d)
    unpaired = math.sqrt((var_x + var_y) / n) if n else 0.0
    corr = None
    if var_x > 0 and var_y > 0:
        corr = float(np.sum((x - x.mean()) * (y - y.mean())) / max(n - ddof, 1) / math.sqrt(var_x * var_y))
    mean = float(d.mean()) if n else 0.0
    return PairedDifference(n, float(x.mean()), float(y.mean()), mean, se, mean - Z95 * se, mean + Z95 * se,
                            corr, unpaired, float(np.mean(d != 0)) if n else 0.0)


def _z(alpha: float, power: float) -> tuple[float, float]:
    return NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)


def required_n(change: float, discordance: float, *, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Examples needed to detect an accuracy change (Connor 1987); None when the change exceeds the discordance.

    delta = 0.1, psi = 0.2: (1.95996 * sqrt(0.2) + 0.84162 * sqrt(0.19))**2 / 0.01 = 154.6, so 155.

    >>> required_n(0.1, 0.2)
    155
    >>> required_n(0.01, 0.15)  # the SmolLM2 before/after: +1 point, 30 of 200 discordant
    11771
    """
    delta, psi = abs(change), discordance
    if delta == 0 or psi <= 0 or delta > psi:
        return None
    za, zb = _z(alpha, power)
    return math.ceil((za * math.sqrt(psi) + zb * math.sqrt(psi - delta**2)) ** 2 / delta**2)


def minimum_detectable_effect(n: int, discordance: float, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest accuracy change n paired examples detect (Connor 1987 solved for delta); None if none can be.

    Squaring sqrt(n)*delta - za*sqrt(psi) = zb*sqrt(psi - delta**2) gives a quadratic in delta whose root is
    delta = sqrt(psi) * (sqrt(n)*za + zb*sqrt(n - za**2 + zb**2)) / (n + zb**2). For n = 200, psi = 0.15:
    0.3873 * (14.1421*1.95996 + 0.84162*sqrt(196.867)) / 200.708 = 0.0763.

    >>> round(minimum_detectable_effect(200, 0.15), 4)
    0.0763
    >>> minimum_detectable_effect(10, 0.05) is None  # a change can never exceed the discordance
    True
    """
    if n <= 0 or discordance <= 0:
        return None
    za, zb = _z(alpha, power)
    root = n - za**2 + zb**2
    if root <= 0:
        return None
    delta = math.sqrt(discordance) * (math.sqrt(n) * za + zb * math.sqrt(root)) / (n + zb**2)
    return delta if delta <= discordance else None


def mde_sentence(n: int, discordance: float, observed: float | None = None, *, significant: bool | None = None) -> str:
    """The plain-words power statement for a comparison of n paired examples.

    A change the test found significant is not called undetectable: the MDE is the size found with 80% power,
    and a smaller real change is still found, less often.
    """
    mde = minimum_detectable_effect(n, discordance)
    share = f"{discordance:.0%} of them changing outcome"
    if mde is None:
        return (f"With {n:,} examples and {share}, no accuracy change is detectable at 80% power and 5% "
                f"significance: too few examples changed outcome.")
    change = None if observed is None else f"{signed(100 * observed, 1)} points"
    if significant and observed is not None:
        text = (f"With {n:,} examples and {share}, 80% power needs a change of ~{100 * mde:.1f} points "
                f"(5% two-sided significance; Connor 1987).")
        if abs(observed) < mde:
            text += (f" The observed change of {change} is smaller yet significant: a real change of that size is "
                     f"found less than 80% of the time, so its size is uncertain (see its 95% interval).")
        return text
    text = (f"With {n:,} examples and {share}, changes under ~{100 * mde:.1f} points are not detectable "
            f"(80% power, 5% two-sided significance; Connor 1987).")
    if observed is not None and abs(observed) < mde:
        need = required_n(observed, discordance)
        text += (f" The observed change of {change} is below that"
                 + (f"; detecting it at this discordance would take about {need:,} examples." if need else "."))
    return text


FORMULA = ("Connor (1987) paired-sample size, the normal approximation to McNemar's test: "
           "n = (z(1-alpha/2)*sqrt(psi) + z(power)*sqrt(psi - delta^2))^2 / delta^2")
ASSUMPTIONS = ("Assumes independent examples, two runs scored on the same examples, a discordance psi (share of "
               "examples on which exactly one run is right) as given, and n large enough for the normal approximation.")


def plan_lines(*, n: int | None, change: float | None, discordance: float, alpha: float = ALPHA,
               power: float = POWER) -> list[str]:
    """What `tenser plan` prints: the formula, its assumptions, then the MDE for n and/or the n for a change."""
    _check_plan(n, change, discordance, alpha, power)
    lines = [FORMULA + ".", ASSUMPTIONS,
             f"Settings: discordance psi = {discordance:g}, alpha = {alpha:g} (two-sided), power = {power:g}."]
    if n is not None:
        mde = minimum_detectable_effect(n, discordance, alpha=alpha, power=power)
        lines.append(f"n = {n:,}: no change is detectable (too few discordant examples)." if mde is None else
                     f"n = {n:,}: the smallest detectable accuracy change is {mde:.4f} ({100 * mde:.1f} points).")
    if change is not None:
        need = required_n(change, discordance, alpha=alpha, power=power)
        lines.append(f"change {change:g}: impossible at discordance {discordance:g} (a change cannot exceed it)."
                     if need is None else
                     f"change {change:g} ({100 * change:.1f} points): {need:,} examples needed.")
    return lines


def _check_plan(n: int | None, change: float | None, discordance: float, alpha: float, power: float) -> None:
    from harness.errors import UserError

    if n is None and change is None:
        raise UserError("give --n N (planned examples) or --change X (accuracy change to detect, e.g. 0.02)")
    if n is not None and n < 1:
        raise UserError(f"--n {n}: give a positive number of examples")
    if change is not None and not 0 < change <= 1:
        raise UserError(f"--change {change}: give the accuracy change as a fraction in (0, 1], e.g. 0.02 for 2 points")
    for flag, value in (("--discordance", discordance), ("--alpha", alpha), ("--power", power)):
        if not 0 < value < 1 and not (flag == "--discordance" and value == 1):
            raise UserError(f"{flag} {value}: give a fraction between 0 and 1")
