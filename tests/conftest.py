"""Shared fixtures: scenario paths and finished runs, computed once per test session."""

from pathlib import Path

import pytest

from abm import RareEarthModel, load_scenario, run_scenario

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


def finished_model(**kwargs) -> RareEarthModel:
    model = RareEarthModel(**kwargs)
    while model.running:
        model.step()
    return model


@pytest.fixture(scope="session")
def baseline_run():
    return run_scenario(load_scenario(EXPERIMENTS / "baseline.toml"), seed=7)


@pytest.fixture(scope="session")
def shock_run():
    return run_scenario(load_scenario(EXPERIMENTS / "quota_shock.toml"), seed=7)
