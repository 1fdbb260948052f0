"""Tests for `reports.power` and `reports.noise`: the paired-difference SE, the minimum
detectable effect and the sample size against hand-computed values, and `tenser plan`."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from harness.errors import UserError
from reports import noise, power
from reports.power import minimum_detectable_effect, paired_difference, plan_lines, required_n
from tenser.cli import main


@pytest.mark.parametrize("module", [power, noise])
def test_doctests_pass(module: object) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def _table(both_right: int, first_only: int, second_only: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    first = [1] * both_right + [1] * first_only + [0] * second_only + [0] * both_wrong
    second = [1] * both_right + [0] * first_only + [1] * second_only + [0] * both_wrong
    return np.array(first), np.array(second)


def test_paired_se_of_the_smollm2_table() -> None:
    # The README's SmolLM2 runs: 200 reviews, 14 only zero-shot right, 16 only fine-tuned right,
    # 172 and 174 right in all, so 158 both right and 12 both wrong.
    first, second = _table(158, 14, 16, 12)
    r = paired_difference(first, second)
    # d has 16 (+1), 14 (-1), 170 zeros: Var(d) = (30 - 200 * 0.01**2) / 199
    assert r.mean == pytest.approx(0.01)
    assert r.se == pytest.approx(math.sqrt((30 - 200 * 0.0001) / 199 / 200))
    # Var(x) = 200 * 0.86 * 0.14 / 199, Var(y) = 200 * 0.87 * 0.13 / 199
    assert r.unpaired_se == pytest.approx(math.sqrt((0.86 * 0.14 + 0.87 * 0.13) / 199))
    # phi = (158 * 12 - 14 * 16) / sqrt(172 * 28 * 174 * 26)
    assert r.correlation == pytest.approx((158 * 12 - 14 * 16) / math.sqrt(172 * 28 * 174 * 26))
    assert r.discordance == pytest.approx(0.15)
    assert (r.low, r.high) == pytest.approx((0.01 - 1.959964 * r.se, 0.01 + 1.959964 * r.se))
    assert r.se < r.unpaired_se  # positively correlated runs: pairing narrows the interval


def test_paired_se_identity_var_x_plus_var_y_minus_2cov() -> None:
    rng = np.random.default_rng(3)
    first = rng.random(500) < 0.7
    second = np.where(rng.random(500) < 0.8, first, ~first)
    r = paired_difference(first, second)
    cov = np.cov(first.astype(float), second.astype(float), ddof=1)
    assert r.se**2 * 500 == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert r.correlation == pytest.approx(np.corrcoef(first, second)[0, 1])


def test_constant_runs_have_no_correlation_and_zero_se() -> None:
    r = paired_difference(np.ones(10), np.ones(10))
    assert (r.mean, r.se, r.correlation, r.discordance) == (0.0, 0.0, None, 0.0)


def test_mde_and_required_n_are_inverse() -> None:
    for n, psi in ((200, 0.15), (1000, 0.3), (5000, 0.05)):
        mde = minimum_detectable_effect(n, psi)
        assert mde is not None
        assert required_n(mde, psi) == n  # ceil of the exact n at the MDE
        assert required_n(mde * 1.05, psi) < n


def test_mde_hand_case() -> None:
    # Connor (1987) with psi = 0.15, n = 200: sqrt(n) delta = 1.95996 sqrt(0.15) + 0.84162 sqrt(0.15 - delta^2)
    delta = minimum_detectable_effect(200, 0.15)
    assert delta is not None
    za, zb = 1.959964, 0.841621
    assert math.sqrt(200) * delta == pytest.approx(za * math.sqrt(0.15) + zb * math.sqrt(0.15 - delta**2), rel=1e-5)
    assert round(100 * delta, 1) == 7.6


def test_mde_is_smaller_with_more_examples_and_less_discordance() -> None:
    assert minimum_detectable_effect(800, 0.15) < minimum_detectable_effect(200, 0.15)  # type: ignore[operator]
    assert minimum_detectable_effect(200, 0.05) < minimum_detectable_effect(200, 0.15)  # type: ignore[operator]
    assert minimum_detectable_effect(200, 0.0) is None


def test_plan_prints_formula_assumptions_and_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--n", "200", "--change", "0.01", "--discordance", "0.15"]) == 0
    out = capsys.readouterr().out
    assert "Connor (1987)" in out and "Assumes independent examples" in out
    assert "n = 200: the smallest detectable accuracy change is 0.0763 (7.6 points)" in out
    assert "change 0.01 (1.0 points): 11,771 examples needed" in out


@pytest.mark.parametrize("argv, named", [
    (["plan"], "--n N"), (["plan", "--n", "0"], "--n 0"), (["plan", "--change", "1.5"], "--change 1.5"),
    (["plan", "--n", "10", "--discordance", "0"], "--discordance 0"),
])
def test_plan_bad_input_is_exit_2(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1


def test_plan_lines_reject_missing_question() -> None:
    with pytest.raises(UserError, match="--n N"):
        plan_lines(n=None, change=None, discordance=0.1)


def test_a_significant_change_is_not_called_undetectable() -> None:
    """b = 2, c = 12 of 200: McNemar p = 0.013, yet +5.0 points is under the MDE of ~5.2 points."""
    mde = minimum_detectable_effect(200, 0.07)
    assert mde is not None and mde > 0.05
    found = power.mde_sentence(200, 0.07, 0.05, significant=True)
    assert "not detectable" not in found and "significant" in found and "+5.0 points" in found
    assert f"~{100 * mde:.1f} points" in found
    assert "not detectable" in power.mde_sentence(200, 0.07, 0.03, significant=False)


def test_the_observed_change_carries_a_real_minus_sign() -> None:
    text = power.mde_sentence(200, 0.15, -0.01)
    assert "−1.0 points" in text and "-1.0" not in text
