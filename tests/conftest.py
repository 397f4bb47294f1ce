"""Shared fixtures: scenario paths and finished runs, computed once per test session."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abm import RareEarthModel, load_scenario, run_scenario

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


def finished_model(**kwargs) -> RareEarthModel:
    model = RareEarthModel(**kwargs)
    while model.running:
        model.step()
    return model


def mass_balance_error(series: pd.DataFrame) -> np.ndarray:
    """|mined + recycled - consumed - losses - change in stocks| / (mined + recycled), per step and element."""
    def by_element(variable):
        return series[series["variable"] == variable].groupby(["step", "element"], observed=True)["value"].sum().unstack()

    inflow = by_element("mined") + by_element("recycled")
    stocks = by_element("stocks")
    residual = inflow - by_element("consumed") - by_element("losses") - stocks.diff()
    return (residual.abs() / inflow).iloc[1:].to_numpy()


@pytest.fixture(scope="session")
def baseline_run():
    return run_scenario(load_scenario(EXPERIMENTS / "baseline.toml"), seed=7)


@pytest.fixture(scope="session")
def shock_run():
    return run_scenario(load_scenario(EXPERIMENTS / "quota_shock.toml"), seed=7)
