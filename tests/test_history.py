"""The 2009 calibration and the mechanisms the 2010-2014 replay needs: tonnage quotas,
export taxes, unofficial exports and a ban that separates its destination."""

import dataclasses

import numpy as np
import pytest

from abm import RareEarthModel, load_scenario, run_scenario
from abm.data import BASE_YEARS, load_calibration
from abm.market import price_areas
from abm.scenario import Event, Scenario, ScenarioError, scenario_from_dict
from tests.conftest import EXPERIMENTS, finished_model, mass_balance_error

CRISIS = EXPERIMENTS / "crisis_2010.toml"


def _zone(run, variable, element, region):
    data = run.series[(run.series["variable"] == variable) & (run.series["element"] == element)]
    return data[data["region"] == region].set_index("step")["value"]


@pytest.fixture(scope="module")
def crisis_run():
    return run_scenario(load_scenario(CRISIS), seed=11)


def test_2009_calibration_matches_its_sources():
    assert 2009 in BASE_YEARS
    calibration = load_calibration(2009)
    mined = {n: 0.0 for n, _, _ in calibration.mines}
    for nation, _, capacity in calibration.mines:
        mined[nation] += capacity
    assert mined["CN"] == 129_000  # USGS MCS 2011
    assert sum(mined.values()) == pytest.approx(133_000, rel=0.01)  # world, USGS MCS 2011
    # US and Australian mines, and Lynas in Malaysia, are projects that start in 2012
    assert calibration.producers == ("CN", "US", "AU", "MY", "RW")
    assert {(p.kind, p.nation) for p in calibration.projects} == {
        ("mine", "US"), ("refinery", "US"), ("mine", "AU"), ("refinery", "MY"),
    }
    prices = dict(zip(calibration.elements, calibration.reference_price, strict=True))
    assert (prices["La"], prices["Ce"], prices["Dy"]) == (8.71, 4.56, 118.49)  # 2008, facts.md / Lynas
    # China uses about 58 % of the world's oxide (73,000 of ~125,000 t, USGS): the shares are built for it
    model = finished_model(scenario=Scenario(base_year=2009, start_year=2009), horizon_months=1)
    need = model.demand_by_region.sum(axis=0)
    assert need[model.regions.index("CN")] / need.sum() == pytest.approx(0.58, abs=0.02)


def test_mountain_pass_and_lynas_come_online_as_history_did(crisis_run):
    mined = crisis_run.series[crisis_run.series["variable"] == "mined"]
    by_year = mined.assign(year=2009 + (mined["step"] - 1) // 12)[mined["step"] >= 1]
    us = by_year[by_year["region"] == "US"].groupby("year")["value"].sum()
    australia = by_year[by_year["region"] == "AU"].groupby("year")["value"].sum()
    assert us[2009:2011].sum() == 0 and australia[2009:2011].sum() == 0
    assert us[2012] == pytest.approx(3_000, rel=0.1)  # USGS MCS 2016: 3,000 t in 2012
    assert us[2013] == pytest.approx(5_500, rel=0.1)  # and 5,500 t in 2013
    assert australia[2014] > 0.5 * 11_000  # Lynas ramping up to about 11 kt/yr
    supply = crisis_run.series[crisis_run.series["variable"] == "supply_by_origin"]
    malaysia = supply[supply["region"] == "MY"].groupby("step")["value"].sum()
    assert malaysia[:46].sum() == 0 and malaysia[60:72].sum() > 1_000  # separates Mount Weld ore from 2013


def test_crisis_replay_closes_mass_balance_every_step(crisis_run):
    assert np.nanmax(mass_balance_error(crisis_run.series)) < 1e-9


def test_tonnage_quota_caps_official_exports_and_ends_in_2015(crisis_run):
    quota = crisis_run.series[(crisis_run.series["variable"] == "quota") & (crisis_run.series["region"] == "CN")]
    quota = quota.groupby("step")["value"].sum(min_count=1)
    exports = crisis_run.series[(crisis_run.series["variable"] == "exports") & (crisis_run.series["region"] == "CN")]
    exports = exports.groupby("step")["value"].sum()
    model = finished_model(scenario=load_scenario(CRISIS), horizon_months=1)
    share = next(n for n in model.nations if n.code == "CN").modelled_share
    # month 18 (July 2010, step 19) runs under the second-half 2010 batch: 7,976 t a year
    assert quota[19] == pytest.approx(7_976 * 2 / 12 * share)
    assert quota[25] == pytest.approx(30_184 / 12 * share)  # 2011
    assert (exports[1:73] <= quota[1:73] + 1e-6).all()
    assert quota[73:].isna().all()  # abolished from 2015


def test_quota_cut_splits_export_and_domestic_prices(crisis_run):
    for element in ("La", "Nd", "Dy"):
        world, china = _zone(crisis_run, "price", element, "world"), _zone(crisis_run, "price", element, "CN")
        before, during = slice(0, 12), slice(24, 36)  # 2009 against 2011
        assert world[during].mean() > 3 * world[before].mean()
        assert china[during].mean() < world[during].mean() / 2


def test_every_tonnage_quota_caps_its_own_elements_and_none_becomes_a_ban():
    model = RareEarthModel(scenario=Scenario(base_year=2009, start_year=2009), rng=1)
    china, us = (next(n for n in model.nations if n.code == code) for code in ("CN", "US"))
    every = np.ones(len(model.elements), bool)
    heavy = np.isin(model.elements, ("Dy", "Tb"))
    no_cut, no_ban = np.zeros(len(model.elements)), np.zeros_like(china.banned)
    china.set_export_policy(no_cut, no_ban)
    assert np.isinf(china.export_cap).all()
    china.set_export_policy(no_cut, no_ban, ((30_000 / 12, every), (300 / 12, heavy)))
    light_only = china._split(30_000 / 12, every)
    assert np.isfinite(china.export_cap).all()  # the light elements keep the all-element quota
    assert china.export_cap[~heavy] == pytest.approx(light_only[~heavy])
    assert china.export_cap[heavy].sum() == pytest.approx(300 / 12)  # the heavy quota is tighter
    assert light_only.sum() == pytest.approx(30_000 / 12 * china.modelled_share)
    # the US has not exported yet (no mine before 2012): its quota is split, not a ban
    us.set_export_policy(no_cut, np.zeros_like(us.banned), ((1_200 / 12, every),))
    assert (us.export_cap > 0).all() and us.export_cap.sum() == pytest.approx(100.0)


def test_export_tax_lifts_the_export_price_by_the_tax_when_no_quota_binds():
    tax = Event(kind="export_tax", nation="CN", start=0, months=60, rate=0.25, elements=("Dy",))
    scenario = dataclasses.replace(Scenario(base_year=2009, start_year=2009, horizon_months=60), events=(tax,))
    quiet = {"market.demand_volatility": 0.0, "tension.quota_threshold": 1.0, "tension.ban_threshold": 1.0}
    run = run_scenario(scenario.with_settings(quiet), seed=3)
    world, china = _zone(run, "price", "Dy", "world"), _zone(run, "price", "Dy", "CN")
    assert world[0] == pytest.approx(118.49) and china[0] == pytest.approx(118.49 / 1.25)  # the 2008 FOB price nets the tax
    assert (world / china)[36:].mean() == pytest.approx(1.25, rel=0.02)
    untaxed = _zone(run, "price", "Nd", "world") / _zone(run, "price", "Nd", "CN")
    assert untaxed[36:].mean() == pytest.approx(1.0, abs=0.02)


def test_smuggling_moves_oxide_outside_the_quota_and_leaves_it_unfilled():
    scenario = load_scenario(CRISIS)
    off = run_scenario(scenario.with_settings({"market.smuggling_share": 0.0}), seed=5)
    on = run_scenario(scenario.with_settings({"market.smuggling_share": 0.5}), seed=5)

    def total(run, variable):
        data = run.series[(run.series["variable"] == variable) & (run.series["region"] == "CN")]
        return data[(data["step"] > 24) & (data["step"] <= 48)]["value"].sum()

    assert total(off, "unofficial_exports") == 0.0
    assert total(on, "unofficial_exports") > 0.05 * total(on, "exports")
    assert total(on, "exports") < total(off, "exports")  # customs see less: the quota goes unfilled
    assert _zone(on, "price", "Dy", "world")[25:49].mean() < _zone(off, "price", "Dy", "world")[25:49].mean()


def test_official_and_smuggled_exports_stay_within_quota_and_allowance_every_month():
    model = RareEarthModel(scenario=load_scenario(CRISIS).with_settings({"market.smuggling_share": 0.5}), rng=2)
    smuggled = 0.0
    for _ in range(72):  # the quota years 2009-2014
        model.step()
        for k, nation in enumerate(model.nations):
            official, unofficial = model.exports[:, k], model.unofficial_exports[:, k]
            assert (official <= nation.export_cap + 1e-6).all()
            assert (unofficial <= model._unofficial[:, k] + 1e-9).all()
            smuggled += unofficial.sum()
    assert smuggled > 0


def test_a_ban_separates_a_destination_no_seller_with_stock_can_reach():
    # regions: 0 the exporter (stock left), 1 a third region sold out, 2 the banned destination
    allowed = np.ones((1, 3, 3), bool)
    allowed[0, 0, 2] = False
    cap_left = np.full((1, 3), np.inf)
    trade = np.zeros((1, 3, 3))
    trade[0, 0, 1] = trade[0, 1, 2] = 5.0
    unmet = np.array([[0.0, 0.0, 8.0]])
    sold_out = price_areas(allowed, cap_left, trade, unmet, leftover=np.array([[10.0, 0.0, 0.0]]))[0]
    assert sold_out[0, 1] and not sold_out[0, 2] and not sold_out[1, 2]
    spare = price_areas(allowed, cap_left, trade, unmet, leftover=np.array([[10.0, 3.0, 0.0]]))[0]
    assert spare[0, 2]  # a third region with stock to spare ties the destination back in


def test_embargo_raises_the_price_in_the_banned_destination(crisis_run):
    model = RareEarthModel(scenario=load_scenario(CRISIS), rng=11)
    for _ in range(23):  # to the end of November 2010, the embargo's last month
        model.step()
    dy, japan, us = model.elements.index("Dy"), model.regions.index("JP"), model.regions.index("US")
    assert model.regional_price[dy, japan] > 1.2 * model.regional_price[dy, us]
    received = _zone(crisis_run, "supply", "Dy", "JP")
    assert received[21:24].mean() < 0.5 * received[13:19].mean()  # Japan's deliveries collapse


@pytest.mark.parametrize(
    "table, key, expected",
    [
        ({"base_year": 1999}, "base_year", "a base year with a calibration"),
        (
            {"base_year": 2009, "start_year": 2009, "events": [{"kind": "ban", "nation": "EU", "destination": "CN", "start": 0, "months": 1}]},
            "events[0].nation", "mines or separates in base year 2009",
        ),
        ({"events": [{"kind": "export_tax", "nation": "CN", "start": 0, "months": 1}]}, "events[0].rate", "> 0"),
        (
            {"events": [{"kind": "ban", "nation": "CN", "destination": "JP", "start": 0, "months": 1, "tonnes_per_year": 5.0}]},
            "events[0].tonnes_per_year", "no tonnage except on a quota",
        ),
    ],
)
def test_bad_history_input_names_key_and_expectation(table, key, expected):
    with pytest.raises(ScenarioError) as error:
        scenario_from_dict(table, "x.toml")
    assert error.value.key == key and expected in error.value.expected
