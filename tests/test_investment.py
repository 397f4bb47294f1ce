"""Endogenous investment (issue "Export controls v2", item 6; abm/investment.py,
docs/ODD.md §7.26): a sustained export premium brings new capacity outside China after
its lead time, a price floor raises non-China output, a premium that collapses during
construction abandons projects, private projects cost the government nothing, and mass
still balances with new capacity running."""

import numpy as np
import pytest

from abm import RareEarthModel, load_scenario
from abm.run import tidy_series
from abm.investment import INVESTED_STAGES, capital_charge
from abm.scenario import ScenarioError, scenario_from_dict
from tests.conftest import EXPERIMENTS, mass_balance_error

SEED = 1
# China withholds 60 % of its exports of every product from month 0 (a quota on every
# element): the price outside China is three or more times the price inside. Its domestic
# supply policy (docs/ODD.md §7.27), which cuts its quotas and buys for its reserve until
# its own price is back in its band, is off, so the premium is the one the issue states.
CUT = 0.6
NO_DOMESTIC_POLICY = {"domestic_policy": {"enabled": False}}


def _quota(months: int, horizon: int) -> dict:
    return {"name": "premium", "horizon_months": horizon, **NO_DOMESTIC_POLICY,
            "events": [dict(kind="quota", nation="CN", start=0, months=months, cut=CUT)]}


def _run(table: dict, **settings) -> RareEarthModel:
    scenario = scenario_from_dict(table).with_settings(settings) if settings else scenario_from_dict(table)
    model = RareEarthModel(rng=SEED, scenario=scenario)
    while model.running:
        model.step()
    return model


def _record(model: RareEarthModel, name: str) -> np.ndarray:
    """[T, labels] t/yr of new capacity (``Investors.labels``), steps 0 to the horizon."""
    return np.array(list(model.datacollector.get_model_vars_dataframe()[name]))


def _outside_china(model: RareEarthModel, stage: str) -> np.ndarray:
    labels = model.investors.labels
    return np.array([not label.startswith("CN:") and label.endswith(f":{stage}") for label in labels])


@pytest.fixture(scope="module")
def premium_runs():
    """Three years of the premium and the same months without it, ten years run."""
    return _run(_quota(36, 120)), _run({"name": "calm", "horizon_months": 120, **NO_DOMESTIC_POLICY})


def test_a_sustained_premium_brings_capacity_outside_china_only_after_its_lead_time(premium_runs):
    shock, calm = premium_runs
    world, cn = shock.price_zones.index("world"), shock.price_zones.index("CN")
    nd = shock.elements.index("Nd")
    price = np.array(list(shock.datacollector.get_model_vars_dataframe()["price"]))[1:37]  # [36, E, Z]
    assert (price[:, nd, world] / price[:, nd, cn]).mean() >= 3.0  # the premium the test is about
    outside = _outside_china(shock, "oxide")
    committed = _record(shock, "capacity_committed")[:37, outside].sum()  # t/yr announced during the premium
    separation = shock.converters
    exchina = (separation.stage == "oxide") & (np.array(shock.regions)[separation.region] != "CN")
    assert _record(calm, "capacity_committed")[:37, outside].sum() == 0.0  # no premium: no new separation
    assert committed >= 0.05 * 12 * separation.built[exchina].sum()  # at least 5 % of its capacity
    lead = shock.chain.data.lead_months
    committed_at, running = _record(shock, "capacity_committed"), _record(shock, "capacity_online")
    for j, label in enumerate(shock.investors.labels):
        if committed_at[:, j].any():
            first = int(np.flatnonzero(committed_at[:, j])[0])
            stage = label.split(":")[1]
            assert not running[: first + lead[stage], j].any(), label  # nothing runs before its lead time
    # after it some runs (what was committed late in the premium is abandoned when it ends, as in
    # test_a_premium_that_collapses_during_construction_abandons_projects) and separates concentrate
    # beyond what the plants' own capacity allows
    assert running[-1, outside].sum() > 0.2 * committed
    beyond = separation.used.sum(axis=1) - separation.built  # t REO/month separated beyond own capacity
    assert beyond[exchina].max() > 0.05 * separation.built[exchina][np.argmax(beyond[exchina])]


def _us_output(model: RareEarthModel) -> np.ndarray:
    """[T] t REO a month mined in the US."""
    return np.array([m[:, model.exporters.index("US")].sum() for m in model.datacollector.get_model_vars_dataframe()["mined"]])


def test_a_price_floor_above_the_market_raises_us_output_through_investment():
    """The July 2025 floor (110 USD/kg NdPr in the US, 10 years): over the last three of
    ten years US mines produce more with it than without, by more when investors answer
    it than by utilisation alone (investment off: the mines' existing capacity only)."""
    baseline = load_scenario(EXPERIMENTS / "baseline.toml")
    gains, committed = {}, {}
    for invest in (True, False):
        runs = {}
        for floor in (0.0, 110.0):
            scenario = baseline.with_settings(
                {"horizon_months": 120, "investment.enabled": invest, "price_floor.usd_per_kg": floor})
            model = RareEarthModel(rng=SEED, scenario=scenario)
            while model.running:
                model.step()
            runs[floor] = model
        gains[invest] = _us_output(runs[110.0])[-36:].sum() / _us_output(runs[0.0])[-36:].sum() - 1.0
        us = np.array([label.startswith("US:") for label in runs[110.0].investors.labels])
        committed[invest] = (_record(runs[110.0], "capacity_committed")[:, us].sum(),
                             _record(runs[0.0], "capacity_committed")[:, us].sum())
    assert committed[True][0] > 0.0 and committed[True][1] == 0.0  # the floor is why US investors commit
    assert gains[True] >= gains[False] + 0.03  # at least 3 percentage points more US output


def test_a_premium_that_collapses_during_construction_abandons_projects():
    """A year of the premium: separation outside China is committed while it lasts; once
    it ends, prices no longer cover the capex still to spend and most is abandoned
    before it runs, and no abandoned project ever runs."""
    model = _run(_quota(12, 96))
    outside = _outside_china(model, "oxide")
    committed = _record(model, "capacity_committed")[:, outside]
    abandoned = _record(model, "capacity_abandoned")[:, outside]
    assert committed.sum() > 0
    assert abandoned.sum() >= 0.5 * committed.sum()
    assert np.flatnonzero(abandoned.sum(axis=1))[0] > 12  # after the premium ended
    investors = model.investors
    assert investors.abandoned.any()
    kept = np.bincount(investors.unit, np.where(investors.abandoned, 0.0, investors.capacity),
                       minlength=len(investors.stage))
    assert investors.online_capacity(10**6) == pytest.approx(kept)  # fully ramped, without the abandoned


def test_private_projects_add_nothing_to_policy_cost(premium_runs):
    shock, _ = premium_runs
    assert _record(shock, "capacity_committed").sum() > 0
    assert np.array(list(shock.datacollector.get_model_vars_dataframe()["policy_cost"])).sum() == 0.0


def test_mass_balances_with_new_capacity_running(premium_runs):
    shock, _ = premium_runs
    assert _record(shock, "capacity_online")[-1].sum() > 0
    assert np.nanmax(mass_balance_error(tidy_series(shock))) <= 1e-9


def test_investment_off_leaves_capacity_to_the_trend():
    model = _run(_quota(36, 60), **{"investment.enabled": False})
    assert _record(model, "capacity_committed").sum() == 0.0
    assert model.converters.invested.sum() == 0.0


def test_the_capital_charge_is_the_annuity_of_the_capex():
    # 40,000 USD per t/yr at 10 % over 20 years: 40 USD per kg/yr x 0.11746 = 4.70 USD/kg
    assert capital_charge(np.array([40000.0]), 0.10, 20)[0] == pytest.approx(4.698, abs=1e-3)
    assert INVESTED_STAGES == ("concentrate", "oxide", "metal", "magnet")


@pytest.mark.parametrize("key, value", [
    ("hurdle_rate", 0.0), ("hurdle_rate", float("nan")), ("life_years", 0.5), ("expectation_months", 0.5),
    ("response", -1.0), ("max_share_per_year", 1.5), ("abandon_months", 0), ("min_utilisation", 1.2),
    ("metal_capex_usd_per_t_per_year", -1.0), ("magnet_capex_usd_per_t_per_year", float("inf")),
    ("enabled", "yes"),
])
def test_bad_investment_values_are_refused(key, value):
    with pytest.raises(ScenarioError, match=rf"investment\.{key}"):
        scenario_from_dict({"investment": {key: value}})


def test_a_capital_grant_brings_more_private_capacity_in_its_region_and_pays_for_its_share():
    """Under the premium, a US grant of half the capex of projects committed in the first
    two years raises what US investors commit; the government pays half the capex of each
    granted project, over its lead months, and nothing for projects elsewhere."""
    grant = {"capital_grant": {"share": 0.5, "region": "US", "months": 24}}
    granted, plain = _run({**_quota(36, 96), **grant}), _run(_quota(36, 96))
    us = np.array([label.startswith("US:") for label in granted.investors.labels])
    assert _record(granted, "capacity_committed")[:, us].sum() > _record(plain, "capacity_committed")[:, us].sum()
    investors = granted.investors
    grant_cost = np.array(list(granted.datacollector.get_model_vars_dataframe()["policy_cost"]))[
        :, granted.programmes.names.index("capital_grant")]
    committed_in_window = investors.online - 1 - investors.lead[investors.unit] < 24
    in_us = np.array(granted.regions)[investors.region[investors.unit]] == "US"
    assert (investors.granted[in_us & committed_in_window] == 0.5).all() and (investors.granted[~in_us] == 0.0).all()
    full = 0.5 * investors.capex[investors.unit] * 12 * investors.capacity  # USD: half the capex of each project
    never_dropped = ~investors.abandoned & (investors.granted > 0)
    assert grant_cost.sum() > 0 and grant_cost.sum() >= full[never_dropped].sum() * (1 - 1e-9)
    assert grant_cost.sum() <= full[investors.granted > 0].sum() * (1 + 1e-9)
