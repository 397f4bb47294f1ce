"""Metrics on hand-computed series."""

import numpy as np
import pytest

from abm.metrics import (
    annualised_volatility, bootstrap_mean_ci, herfindahl, max_drawdown, paired_relative_gain, peak_to_base_ratio,
    recovery_months, resilience_loss, service_level, shortfall_depth, shortfall_fraction,
)


def test_constant_growth_has_no_volatility():
    assert annualised_volatility(100 * 1.01 ** np.arange(24)) == pytest.approx(0.0, abs=1e-12)


def test_alternating_returns_give_their_annualised_standard_deviation():
    returns = np.array([0.1, -0.1] * 6)
    price = 10 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    assert annualised_volatility(price) == pytest.approx(returns.std(ddof=1) * np.sqrt(12))


def test_peak_ratio_and_shortfall_fraction():
    assert peak_to_base_ratio(np.array([2.0, 5.0, 3.0]), 2.0) == 2.5
    assert shortfall_fraction(np.array([1.0, 0.0, 3.0]), np.array([10.0, 10.0, 20.0])) == pytest.approx(0.1)
    assert shortfall_fraction(np.zeros(3), np.zeros(3)) == 0.0


def test_max_drawdown_from_running_peak():
    assert max_drawdown(np.array([1.0, 4.0, 2.0, 3.0, 1.0, 5.0])) == pytest.approx(0.75)


def test_resilience_triangle_depth_area_and_recovery():
    service = np.array([1.0, 1.0, 0.8, 0.6, 0.9, 0.96, 1.0, 1.0])
    assert shortfall_depth(service) == pytest.approx(0.4)
    assert resilience_loss(service) == pytest.approx(0.2 + 0.4 + 0.1 + 0.04)
    assert recovery_months(service, start=1) == (3.0, False)  # below 95 % from month 2, back at month 5
    assert recovery_months(np.array([1.0, 0.5, 0.5]), start=0) == (2.0, True)  # censored at the end
    assert recovery_months(np.ones(4), start=0) == (0.0, False)
    assert service_level(np.array([1.0, 0.0]), np.array([4.0, 0.0])).tolist() == [0.75, 1.0]


def test_herfindahl_and_paired_gain():
    assert herfindahl(np.array([50.0, 50.0])) == pytest.approx(0.5)
    assert herfindahl(np.array([10.0, 0.0])) == 1.0 and herfindahl(np.zeros(2)) == 0.0
    rng = np.random.default_rng(0)
    base = np.array([10.0, 20.0, 30.0, 40.0])
    gain, low, high = paired_relative_gain(base, base * 0.5, rng)
    assert gain == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    gain, low, high = paired_relative_gain(base, base + np.array([-5.0, 5.0, -5.0, 5.0]), rng)
    assert gain == pytest.approx(0.0) and low < 0.0 < high
    low, high = bootstrap_mean_ci(np.array([1.0, 2.0, 3.0]), rng)
    assert 1.0 <= low < 2.0 < high <= 3.0
