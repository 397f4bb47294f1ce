"""Negotiated supply deals (abm.negotiation, issue "Negotiated supply deals"): the
solution concept on a toy case, and the behaviour that must hold in the model."""

import dataclasses

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from abm import RareEarthModel, run_scenario
from abm.data import load_calibration
from abm.negotiation import (
    Exposure, Negotiation, bargaining_power, importer_cost, nash_terms, rubinstein_share, values,
)
from abm.policy import export_rules, party_fill, with_deal
from abm.scenario import ScenarioError, scenario_from_dict
from abm import load_scenario
from tests.conftest import EXPERIMENTS, finished_model, mass_balance_error

BLOC = ["US", "JP", "EU"]
# Licences on Dy and Tb from month 0 granting 40 % of applications at once; a party that
# renegotiates every month, so the terms follow the state month by month.
CONTROLS = [dict(kind="licence", nation="CN", start=0, months=24, approval_share=0.4, delay_months=0,
                 elements=["Dy", "Tb"])]


def _table(horizon: int = 24, events=CONTROLS, **talks) -> dict:
    return {"horizon_months": horizon, "events": events, "negotiation": {
        "enabled": True, "importers": BLOC, "concession_usd_per_year": 2e8, "round_months": 1, "duration_months": 1,
        **talks}}


def _toy(**changes) -> Exposure:
    """One element: 100 t/month needed, 50 t/month of imports withheld (fill 0.5), no stock."""
    base = dict(need=np.array([100.0]), gap=np.array([50.0]), stock=np.array([0.0]), imports=np.array([100.0]),
                fill=np.array([0.5]), price=np.array([1e4]), ceiling=np.array([2e5]), unmet_cost=np.array([2e5]),
                elasticity=-0.15, tension=0.3)
    return Exposure(**{**base, **changes})


# ----------------------------------------------------------------- solution concept
def test_the_nash_split_holds_on_a_two_party_toy_case():
    exposure, leverage_value, horizon = _toy(), 5e7, 12
    for power in (0.5, 0.3, 0.8):
        terms = nash_terms(exposure, leverage_value, horizon, power, 1.0)
        deal = values(exposure, terms.share, terms.transfer, leverage_value, horizon)
        importer_gain = deal.importer_deal - deal.importer_no_deal
        exporter_gain = deal.exporter_deal - deal.exporter_no_deal
        # each side's gain over its outside option is its share of the surplus
        assert importer_gain == pytest.approx(power * terms.surplus, rel=1e-9)
        assert exporter_gain == pytest.approx((1 - power) * terms.surplus, rel=1e-9)
        # and that transfer maximises the Nash product (u_I - d_I)^power (u_X - d_X)^(1 - power)
        def minus_log_product(transfer: float, terms=terms, power=power) -> float:
            v = values(exposure, terms.share, transfer, leverage_value, horizon)
            gains = (v.importer_deal - v.importer_no_deal, v.exporter_deal - v.exporter_no_deal)
            return np.inf if min(gains) <= 0 else -(power * np.log(gains[0]) + (1 - power) * np.log(gains[1]))
        best = minimize_scalar(minus_log_product, bounds=(0.0, terms.transfer + terms.surplus), method="bounded",
                               options={"xatol": 1.0})
        assert best.x == pytest.approx(terms.transfer, rel=1e-4)
    # the share maximises the joint surplus: the toy's gap closes at share 1
    assert nash_terms(exposure, leverage_value, horizon, 0.5, 1.0).share == pytest.approx(1.0)


def test_the_alternating_offers_game_converges_to_the_power_of_its_discount_rates():
    """Rubinstein (1982): the proposer's share (1 - d_X) / (1 - d_I d_X) tends to
    r_X / (r_I + r_X) (Binmore, Rubinstein and Wolinsky 1986) as offers come faster."""
    assert bargaining_power(0.1, 0.1) == 0.5
    assert bargaining_power(0.05, 0.2) == pytest.approx(0.8)  # the patient side gets more
    for rates in [(0.1, 0.1), (0.05, 0.2), (0.3, 0.1)]:
        coarse, fine = (abs(rubinstein_share(*rates, p) - bargaining_power(*rates)) for p in (1.0, 1e-4))
        assert fine < 1e-4 < coarse
    with pytest.raises(ValueError):
        bargaining_power(0.0, 0.1)


def test_no_deal_forms_without_leverage_on_either_side():
    assert nash_terms(_toy(fill=np.array([1.0])), 5e7, 12, 0.5, 1.0) is None  # nothing withheld
    # in the model: no controls and a calm tension, so nothing is withheld and nobody depends
    model = finished_model(rng=3, scenario=scenario_from_dict(_table(events=[])))
    recorded = model.datacollector.model_vars
    assert np.asarray(recorded["deal_in_force"]).sum() == 0
    assert model.talks.breaks == 0


def test_stock_cover_lowers_the_cost_of_no_deal_and_the_price_of_a_deal():
    bare, covered = _toy(), _toy(stock=np.array([300.0]))
    assert importer_cost(covered, 0.0, 12) < importer_cost(bare, 0.0, 12)
    assert nash_terms(covered, 5e7, 12, 0.5, 1.0).transfer < nash_terms(bare, 5e7, 12, 0.5, 1.0).transfer


# -------------------------------------------------------------------- in the model
def _deal_months(table: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model = finished_model(rng=seed, scenario=scenario_from_dict(table))
    recorded = model.datacollector.model_vars
    value = np.asarray(recorded["deal_value"])[1:]
    return np.asarray(recorded["deal_in_force"])[1:, 0], value[:, -1], np.asarray(recorded["deal_share"])[1:, :, 0]


@pytest.mark.parametrize("levers", [
    {"stockpile": {"months": 3.0}},
    {"stockpile": {"months": 3.0}, "partnership": {"share": 0.3}, "recycling": {"rate": 0.15, "subsidy_usd_per_kg": 5.0}},
], ids=["stockpile", "stockpile+partnership+recycling"])
def test_diversification_buys_better_terms_under_the_same_controls_and_seeds(levers):
    """The bargaining channel: with the levers in place the party pays less for the deals
    both arms hold in the same months, seed by seed (the stockpile's cover lowers its cost
    of no deal; partnership and recycling alone move its terms by less than a seed does)."""
    for seed in (1, 2):
        in_force, transfer, share = _deal_months(_table(), seed)
        with_levers = _deal_months({**_table(), **levers}, seed)
        both = (in_force > 0) & (with_levers[0] > 0)
        assert both.sum() >= 12, "deals should form in both arms in most months"
        assert with_levers[1][both].mean() < transfer[both].mean(), (seed, with_levers[1][both].mean(),
                                                                     transfer[both].mean())


def test_a_tension_shock_breaks_the_deal_within_a_month_and_the_controls_return():
    # leverage valued at 1 bn USD a year: a deal pays at the party's tension of about 0.3, not at 1
    model = RareEarthModel(rng=1, scenario=scenario_from_dict(_table(duration_months=12, concession_usd_per_year=1e9)))
    while not model.deal_in_force[0]:
        model.step()
        assert model.running, "no deal formed"
    party = [i for i, (a, x) in enumerate(model.spec.tension.parsed_pairs) if x == "CN" and a in BLOC]
    dealt = model._rules
    model.tension[party] = 1.0  # a shock: the exporter's leverage is worth about three times more
    model.step()
    assert model.deal_in_force[0] == 0 and model.talks.breaks == 1
    assert model.deal_share.sum() == 0 and model.deal_price.sum() == 0
    no_deal = model._product_rules(model.month - 1, model._drawn_tension)[1]
    assert len(model._rules.licences) == len(no_deal.licences) < len(dealt.licences)
    for now, before in zip(model._rules.licences, no_deal.licences, strict=True):
        assert now[1] == before[1]  # approval shares back to the controls' own


def test_a_deal_lets_the_guaranteed_share_through_to_the_party_only():
    scenario = scenario_from_dict(_table())
    calibration = load_calibration()
    regions = calibration.regions
    rules = export_rules(scenario, 1, np.full(len(scenario.tension.pairs), 0.3), regions, calibration.elements,
                         calibration.deposits)
    exporter, party = regions.index("CN"), np.isin(regions, BLOC)
    elements = np.ones(len(calibration.elements), dtype=bool)
    dealt = with_deal(rules, exporter, party, elements, 0.9)
    dy = calibration.elements.index("Dy")
    assert party_fill(rules, exporter, party)[:, dy] == pytest.approx(0.4)
    assert party_fill(dealt, exporter, party)[:, dy] == pytest.approx(0.9)
    others = ~party & (np.arange(len(regions)) != exporter)
    assert party_fill(dealt, exporter, others)[:, dy] == pytest.approx(0.4)
    assert with_deal(rules, exporter, party, elements, 0.0) is rules


def test_deals_keep_the_books_balanced_and_repeat_with_the_seed():
    """Mass balance closes every month while deals split the licences per destination,
    and the same seed gives the same deals."""
    first, second = (run_scenario(scenario_from_dict(_table()), seed=2) for _ in range(2))
    assert first.metrics["deal_months"] >= 12
    assert np.nanmax(mass_balance_error(first.series)) <= 1e-9
    assert first.series.equals(second.series)


def test_the_truce_as_events_keeps_the_books_balanced():
    """General licences for one destination ship per link (the case deals create)."""
    result = run_scenario(load_scenario(EXPERIMENTS / "truce_2025.toml"), seed=1)
    assert np.nanmax(mass_balance_error(result.series)) <= 1e-9


def test_only_the_elements_a_deal_restores_get_a_share_and_a_price():
    model = finished_model(rng=2, scenario=scenario_from_dict(_table(horizon=6)))
    controlled = np.isin(model.elements, ["Dy", "Tb"])
    assert model.deal_in_force[0] == 1
    assert (model.deal_share[~controlled] == 0).all() and (model.deal_price[~controlled] == 0).all()
    assert (model.deal_share[controlled] > 0).all() and (model.deal_share[controlled] <= 1).all()


def test_negotiation_off_changes_nothing():
    """Off, whatever the section says, a run is the run without the section, and it
    records no deal rows."""
    table = _table(horizon=12)
    off = {**table, "negotiation": {**table["negotiation"], "enabled": False, "round_months": 5}}
    plain = {k: v for k, v in table.items() if k != "negotiation"}
    a, b = run_scenario(scenario_from_dict(off), seed=4), run_scenario(scenario_from_dict(plain), seed=4)
    assert a.series.equals(b.series) and a.metrics == b.metrics
    assert not a.series["variable"].isin(["deal_share", "deal_price", "deal_in_force", "deal_value"]).any()
    assert a.metrics["deal_months"] == 0 and a.metrics["deal_transfer_usd"] == 0


def test_the_model_keyword_switches_negotiation():
    scenario = scenario_from_dict(_table(horizon=6))
    assert RareEarthModel(rng=1, scenario=scenario, negotiation=False).talks is None
    assert RareEarthModel(rng=1, scenario=scenario).talks is not None


@pytest.mark.parametrize("change, key", [
    ({"negotiation": {"enabled": True, "importers": ["CN", "US"]}}, "negotiation.importers"),
    ({"negotiation": {"enabled": True, "importers": ["US", "US"]}}, "negotiation.importers"),
    ({"negotiation": {"enabled": True, "importers": ["AU"]}}, "negotiation.importers"),  # no end users
    ({"negotiation": {"enabled": True}, "market": {"short_run_elasticity": float("nan")}}, "market.short_run_elasticity"),
    ({"negotiation": {"enabled": True, "importers": []}}, "negotiation.importers"),
    ({"negotiation": {"enabled": True, "elements": []}}, "negotiation.elements"),
    ({"negotiation": {"enabled": True}, "agreement": {"enabled": True}}, "agreement.enabled"),
    ({"negotiation": {"enabled": True}, "tension": {"mean": 0.0}}, "tension.mean"),
    ({"negotiation": {"enabled": True, "concession_usd_per_year": float("inf")}}, "negotiation.concession_usd_per_year"),
    ({"negotiation": {"enabled": True, "round_months": 0}}, "negotiation.round_months"),
])
def test_bad_negotiations_are_refused_with_the_key(change, key):
    with pytest.raises(ScenarioError) as error:
        scenario_from_dict(change)
    assert error.value.key == key


def test_every_field_has_a_source_row():
    rows = load_calibration().parameter_defaults("negotiation")
    assert set(rows) == {f.name for f in dataclasses.fields(Negotiation)} - {"enabled", "importers", "elements"}
