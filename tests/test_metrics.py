"""Metrics on hand-computed series."""

import numpy as np
import pytest

from abm.metrics import annualised_volatility, peak_to_base_ratio, shortfall_fraction


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
