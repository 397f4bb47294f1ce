"""Separation by element and start month (abm/data/separation_scope.csv): outside China no
separated Dy or Tb before Lynas Malaysia's heavy rare earth circuit (May 2025), the
content a plant cannot yet separate leaves as tailings, and the mass balance closes."""

import numpy as np
import pytest

from abm import Scenario
from abm.agents.converter import SEPARATION, Converters, Plant
from abm.chain import build_chain
from abm.data import BASE_YEARS, load_calibration, month_index
from abm.data.chain import load_supply_chain
from abm.model import RareEarthModel
from abm.run import tidy_series
from tests.conftest import finished_model, mass_balance_error

HEAVY = ("Dy", "Tb")
FIRST_HEAVY_OUTSIDE_CHINA = "2025-05"  # Lynas Malaysia's first separated Dy oxide (Lynas, 16 May 2025)


@pytest.mark.parametrize("base_year", BASE_YEARS)
def test_outside_china_no_nation_separates_dy_or_tb_before_may_2025(base_year):
    calibration, data = load_calibration(base_year), load_supply_chain(base_year)
    assert set(data.separation_from) == set(calibration.separators)
    for nation, months in data.separation_from.items():
        for element, month in zip(calibration.elements, months, strict=True):
            if nation != "CN" and element in HEAVY and month is not None:
                assert month >= FIRST_HEAVY_OUTSIDE_CHINA, (nation, element, month)
    assert data.separation_from["MY"][calibration.elements.index("Dy")] == FIRST_HEAVY_OUTSIDE_CHINA


@pytest.fixture(scope="module")
def baseline_2025():
    """The 2024 world run from January 2025 (month 0) through 2025, calm, recording every month."""
    model = RareEarthModel(rng=0, horizon_months=12, tension_volatility=0.0)
    assert model.spec.start_year == 2025 and model.spec.base_year == 2024
    outside = model.converters.separating & (model.regions.index("CN") != model.converters.region)
    heavy = [model.products.index(f"{e}_oxide") for e in HEAVY]
    start = {e: month_index(model.chain.data.separation_from["MY"][model.elements.index(e)], 2025) for e in HEAVY}
    produced, sold, held = [], [], []
    plants = model.converters
    held.append(plants.outputs[np.ix_(outside, heavy)].sum())  # after the spin-up, before month 0
    while model.running:
        model.step()
        produced.append(plants.produced[np.ix_(outside, heavy)].sum(axis=0))  # [2] t this month
        sold.append(plants.sold[np.ix_(outside, heavy)].sum(axis=0))
        held.append(plants.outputs[np.ix_(outside, heavy)].sum())
    return model, start, np.array(produced), np.array(sold), np.array(held)


def test_no_separated_dy_or_tb_outside_china_before_its_start_month(baseline_2025):
    model, start, produced, sold, held = baseline_2025
    assert start["Dy"] == 4  # May 2025
    assert held[0] == 0.0  # the spin-up (at month 0 conditions) made none either
    for j, element in enumerate(HEAVY):
        before = slice(0, start[element])
        assert (produced[before, j] == 0).all() and (sold[before, j] == 0).all(), element
    production = np.asarray(model.datacollector.model_vars["production"])  # [T, P, R]
    dy = model.products.index("Dy_oxide")
    cn = model.regions.index("CN")
    outside = [r for r in range(len(model.regions)) if r != cn]
    # step t of the record is the month before it: steps 1-4 are January-April 2025
    assert (production[1:start["Dy"] + 1, dy][:, outside] == 0).all()
    assert (production[1:start["Dy"] + 1, dy, cn] > 0).all()


def test_malaysia_sells_dy_oxide_from_may_2025(baseline_2025):
    model, start, produced, sold, _ = baseline_2025
    production = np.asarray(model.datacollector.model_vars["production"])
    dy, my = model.products.index("Dy_oxide"), model.regions.index("MY")
    assert (production[start["Dy"] + 1:, dy, my] > 0).all()
    assert (produced[start["Dy"]:, 0] > 0).all() and (produced[start["Tb"]:, 1] > 0).all()
    assert sold[start["Dy"] + 1:, 0].sum() > 0


def test_mass_balance_closes_across_the_start_months(baseline_2025):
    assert np.nanmax(mass_balance_error(tidy_series(baseline_2025[0]))) <= 1e-9


def test_a_2009_world_runs_with_its_own_scope():
    model = finished_model(rng=1, scenario=Scenario(base_year=2009, start_year=2010, horizon_months=6))
    outside = model.converters.separating & (model.converters.region != model.regions.index("CN"))
    dy = model.products.index("Dy_oxide")
    assert (model.converters.produced[outside, dy] == 0).all()
    assert np.nanmax(mass_balance_error(tidy_series(model))) <= 1e-9


def test_an_oxide_not_yet_separated_goes_with_the_tailings():
    """One separation plant yielding Dy from month 2: before it, the Dy of its feed is a
    conversion loss and no Dy oxide is made; from month 2 it is made, the other oxides
    throughout; content in = content out + loss every month."""
    calibration = load_calibration()
    chain = build_chain(load_supply_chain(), calibration)
    data, elements = chain.data, calibration.elements
    tailings = 1.0 - calibration.parameter_defaults("market")["separation_yield"]
    oxides = chain.stage_index("oxide")
    feed = np.zeros(len(chain.products))
    feed[chain.products.index("conc_mount_weld")] = 1.0
    yields_from = np.zeros(len(chain.products))
    dy = elements.index("Dy")
    yields_from[oxides[dy]] = 2
    plants = Converters([Plant(SEPARATION, 0, 100.0, feed, yields_from=yields_from)], len(chain.products),
                        {SEPARATION: oxides})
    for month in range(4):
        plants.inputs[0] = 100.0 * feed
        lost = plants.convert(data.recipe, data.separation, data.content, 2.0, 6.0)[0]  # [E]
        made = plants.produced[0] @ data.content
        np.testing.assert_allclose(plants.used[0] @ data.content, made + lost, rtol=1e-12)
        dy_in = (plants.used[0] @ data.content)[dy]
        assert dy_in > 0
        if month < 2:
            assert plants.produced[0, oxides[dy]] == 0 and lost[dy] == pytest.approx(dy_in)
        else:
            assert plants.produced[0, oxides[dy]] > 0 and lost[dy] == pytest.approx(tailings * dy_in)
        assert plants.produced[0, oxides[elements.index("Nd")]] > 0
        plants.grow(1.0, month + 1)
