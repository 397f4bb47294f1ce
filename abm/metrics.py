"""Figures of merit computed from time series: pure numpy functions, no Mesa.

Every function takes monthly series (first axis = month) and returns plain floats or
arrays, so they apply equally to one run and to a stack of replications.
"""

import numpy as np

MONTHS_PER_YEAR = 12


def annualised_volatility(price: np.ndarray) -> float:
    """Standard deviation of monthly log returns x sqrt(12) (a fraction, 0.3 = 30 %/yr)."""
    returns = np.diff(np.log(np.asarray(price, dtype=float)))
    if returns.size < 2:
        return 0.0
    return float(returns.std(ddof=1) * np.sqrt(MONTHS_PER_YEAR))


def peak_to_base_ratio(price: np.ndarray, base: float) -> float:
    """Highest price over ``base`` (the pre-shock or initial price)."""
    return float(np.max(price) / base)


def shortfall_fraction(shortfall: np.ndarray, demand: np.ndarray) -> float:
    """Share of demand left unserved over the whole series (0 when there was no demand)."""
    total = float(np.sum(demand))
    return float(np.sum(shortfall)) / total if total > 0 else 0.0
