"""Every key an event, the shock or the [investment] section accepts changes the run, or
is refused (issue "Export controls v2", items 3 and 6): one table, every kind x key,
checked for completeness.
The table's events start at month 0, where a restriction is standing policy and
announces nothing, so an announcement's tension cannot hide a key that does nothing."""

import dataclasses
import re

import numpy as np
import pytest

from abm import RareEarthModel
from abm.batch.experiment import experiment_from_dict
from abm.batch.plan import plan_runs
from abm.domestic_policy import DomesticPolicy
from abm.levers import CapitalGrant
from abm.scenario import (
    EVENT_COMMON_KEYS, EVENT_KEYS, Event, InvestmentParameters, ScenarioError, Shock, scenario_from_dict, setting_type, setting_value,
)
from tests.conftest import EXPERIMENTS

HORIZON = 10

# A valid event of each kind, and for each of its keys a different valid value.
BASE_EVENTS = {
    "quota": dict(kind="quota", nation="CN", start=0, months=4, cut=0.5, elements=["Dy", "Tb"]),
    "ban": dict(kind="ban", nation="CN", destination="US", start=0, months=4, elements=["Dy", "Tb"]),
    "outage": dict(kind="outage", nation="CN", deposit="ionic_clay", start=0, months=4, cut=0.5),
    "export_tax": dict(kind="export_tax", nation="CN", start=0, months=4, rate=0.25, elements=["Dy", "Tb"]),
    "licence": dict(kind="licence", nation="CN", start=0, months=4, approval_share=0.3, delay_months=2,
                    elements=["Dy", "Tb"]),
}
VARIANTS = {
    "quota": dict(nation="MY", start=2, months=6, cut=0.2, elements=["Nd"], destination="US", notice_months=2,
                  tonnes_per_year=20000.0, restrict_re_export=True),
    "ban": dict(nation="MY", destination="JP", start=2, months=6, elements=["Nd"], notice_months=2,
                restrict_re_export=True),
    "outage": dict(nation="MM", deposit="bayan_obo", start=2, months=6, cut=0.2),
    "export_tax": dict(nation="MY", start=2, months=6, rate=0.5, elements=["Nd"], notice_months=2),
    "licence": dict(nation="MY", start=2, months=6, approval_share=0.6, delay_months=1, elements=["Dy"],
                    stages=["magnet"], destination="US", general_licence=["JP"], notice_months=2,
                    restrict_re_export=True, denied_end_uses=["defence"]),
}
# Keys that replace another when varied (a quota in tonnes states no cut).
REPLACES = {("quota", "tonnes_per_year"): "cut", ("outage", "nation"): "deposit"}
PAIRED = {("outage", "nation"): dict(deposit="ionic_clay"), ("licence", "nation"): dict(stages=["oxide"])} | {
    (kind, "notice_months"): dict(start=3) for kind in BASE_EVENTS} | {
    (kind, "restrict_re_export"): dict(destination="US") for kind in ("quota", "licence")}
SHOCK_BASE = dict(exporter="CN", quota_cut=0.4, start=3, months=4, elements=["Dy", "Tb"])
SHOCK_VARIANTS = dict(exporter="MY", quota_cut=0.2, start=2, months=6, elements=["Nd"], notice_months=2)


def _fingerprint(table: dict) -> np.ndarray:
    scenario = scenario_from_dict({"horizon_months": HORIZON, **table})
    model = RareEarthModel(rng=5, scenario=scenario)
    prices = []
    while model.running:
        model.step()
        prices.append(model.product_price.copy())
    return np.array(prices)


def _cases():
    for kind, variants in VARIANTS.items():
        for key, value in variants.items():
            yield pytest.param(kind, key, value, id=f"{kind}.{key}")


def test_the_table_covers_every_key_of_every_kind():
    for kind in EVENT_KEYS:
        assert set(VARIANTS[kind]) == set(EVENT_COMMON_KEYS[1:]) | set(EVENT_KEYS[kind]), kind
    shock_keys = {f.name for f in dataclasses.fields(Shock)}
    assert set(SHOCK_VARIANTS) | {"exporter"} >= shock_keys - {"exporter"} and "exporter" in SHOCK_VARIANTS


@pytest.fixture(scope="module")
def base_runs():
    return {kind: _fingerprint({"events": [event]}) for kind, event in BASE_EVENTS.items()}


@pytest.mark.parametrize("kind, key, value", list(_cases()))
def test_every_event_key_changes_the_run_or_is_refused(base_runs, kind, key, value):
    event = dict(BASE_EVENTS[kind])
    event.pop(REPLACES.get((kind, key), "-"), None)
    event.update(PAIRED.get((kind, key), {}))
    event[key] = value
    try:
        varied = _fingerprint({"events": [event]})
    except ScenarioError as refused:
        pytest.fail(f"the table's value should be valid: {refused}")
    assert not np.array_equal(varied, base_runs[kind]), f"{kind}.{key} = {value!r} changed nothing"
    if PAIRED.get((kind, key)):  # what changed it is the key, not the value it is paired with
        paired = {k: v for k, v in event.items() if k != key} | {k: v for k, v in BASE_EVENTS[kind].items() if k == key}
        assert not np.array_equal(varied, _fingerprint({"events": [paired]})), f"{kind}.{key} changed nothing"


@pytest.mark.parametrize("key, value", list(SHOCK_VARIANTS.items()), ids=list(SHOCK_VARIANTS))
def test_every_shock_key_changes_the_run(key, value):
    assert not np.array_equal(_fingerprint({"shock": {**SHOCK_BASE, key: value}}), _fingerprint({"shock": SHOCK_BASE}))


@pytest.mark.parametrize("kind", list(EVENT_KEYS))
def test_every_key_a_kind_does_not_use_is_refused(kind):
    used = set(EVENT_COMMON_KEYS) | set(EVENT_KEYS[kind])
    defaults = Event(kind=kind, nation="CN", start=0, months=1)
    for field in dataclasses.fields(Event):
        if field.name in used:
            continue
        value = getattr(defaults, field.name)
        value = list(value) if isinstance(value, tuple) else value
        with pytest.raises(ScenarioError, match=rf"events\[0\]\.{field.name}"):
            scenario_from_dict({"events": [{**BASE_EVENTS[kind], field.name: value}]})


def test_an_event_key_is_a_setting_experiments_can_sweep():
    """``events[i].key`` names an event's key as a factor or policy setting, checked as in a file."""
    base = scenario_from_dict({"events": [BASE_EVENTS["licence"]]})
    varied = base.with_settings({"events[0].approval_share": 0.6})
    assert setting_value(varied, "events[0].approval_share") == 0.6 and setting_type("events[0].delay_months") is int
    assert not np.array_equal(_fingerprint({"events": [{**BASE_EVENTS["licence"], "approval_share": 0.6}]}),
                              _fingerprint({"events": [BASE_EVENTS["licence"]]}))
    for name, value in [("events[1].approval_share", 0.5), ("events[0].cut", 0.5), ("events[0].approval_share", 1.5)]:
        with pytest.raises(ScenarioError, match=re.escape(name)):
            base.with_settings({name: value}, "exp.toml")
    experiment = experiment_from_dict({"name": "sweep", "scenario": str(EXPERIMENTS / "licensing_2025.toml"),
                                       "factors": {"events[1].approval_share": [0.25, 0.75]}})
    assert len(plan_runs(experiment)) == 2 * experiment.replications


@pytest.mark.parametrize("table, key", [
    ({"events": [dict(kind="licence", nation="CN", start=0, months=6, elements=["La"], stages=["magnet"])]},
     "events[0].elements"),
    ({"events": [dict(kind="licence", nation="US", start=0, months=6, elements=["Dy", "Tb"], stages=["concentrate"])]},
     "events[0].elements"),
    ({"events": [dict(kind="licence", nation="CN", start=0, months=2, delay_months=2, approval_share=0.4)]},
     "events[0].delay_months"),
    ({"shock": dict(quota_cut=0.4, start=6, months=0, notice_months=2)}, "shock.notice_months"),
    ({"events": [dict(kind="ban", nation="CN", destination="RW", start=6, months=3, notice_months=2)]},
     "events[0].notice_months"),
    ({"events": [dict(kind="licence", nation="CN", start=6, months=3, general_licence=["US", "JP", "EU", "AU"],
                      notice_months=2)]}, "events[0].notice_months"),
], ids=["licence-covering-no-product", "licence-on-a-concentrate-without-them", "licence-shorter-than-its-delay",
        "notice-on-a-zero-month-shock", "notice-to-a-partner-without-a-pair", "notice-sparing-every-pair"])
def test_keys_that_would_change_nothing_are_refused(table, key):
    with pytest.raises(ScenarioError) as raised:
        scenario_from_dict({"horizon_months": 24, **table})
    assert raised.value.key == key


# [investment] (abm/investment.py): China licences its metal and magnet exports for two
# years, so makers outside China see margins (at a lower utilisation gate than the
# default, which their short inputs keep them under) and mines and separators invest;
# the fingerprint holds the capacity records too (an abandoned project changes no price).
INVESTMENT_EVENTS = [dict(kind="licence", nation="CN", start=0, months=24, approval_share=0.2, delay_months=1,
                          stages=["metal", "magnet"])]
INVESTMENT_BASE = dict(min_utilisation=0.4)
INVESTMENT_VARIANTS = dict(
    enabled=False, hurdle_rate=0.15, life_years=30.0, expectation_months=12.0, response=1.0, max_share_per_year=0.2,
    abandon_months=6, min_utilisation=0.7, metal_capex_usd_per_t_per_year=20000.0,
    magnet_capex_usd_per_t_per_year=40000.0,
)
INVESTMENT_RECORDS = ("capacity_committed", "capacity_building", "capacity_abandoned", "capacity_online")


def _investment_fingerprint(investment: dict, grant: dict | None = None) -> np.ndarray:
    table = {"horizon_months": 60, "events": INVESTMENT_EVENTS, "investment": investment}
    scenario = scenario_from_dict(table | ({"capital_grant": grant} if grant else {}))
    model = RareEarthModel(rng=5, scenario=scenario)
    rows = []
    while model.running:
        model.step()
        rows.append(np.concatenate([model.product_price.ravel(), *(getattr(model, name) for name in INVESTMENT_RECORDS)]))
    return np.array(rows)


def test_the_investment_table_covers_every_key():
    assert set(INVESTMENT_VARIANTS) == {f.name for f in dataclasses.fields(InvestmentParameters)}


@pytest.fixture(scope="module")
def investment_base():
    return _investment_fingerprint(INVESTMENT_BASE)


@pytest.mark.parametrize("key, value", list(INVESTMENT_VARIANTS.items()), ids=list(INVESTMENT_VARIANTS))
def test_every_investment_key_changes_the_run(investment_base, key, value):
    varied = _investment_fingerprint({**INVESTMENT_BASE, key: value})
    assert not np.array_equal(varied, investment_base), f"investment.{key} = {value!r} changed nothing"


# [capital_grant] (abm.levers.CapitalGrant): a grant to the makers outside China that the
# licence above brings to invest.
GRANT_BASE = dict(share=0.5, region="JP", months=24)
GRANT_VARIANTS = dict(share=0.2, region="EU", stages=["magnet"], start=12, months=6)


@pytest.mark.parametrize("key, value", list(GRANT_VARIANTS.items()), ids=list(GRANT_VARIANTS))
def test_every_capital_grant_key_changes_the_run(key, value):
    assert set(GRANT_VARIANTS) == {f.name for f in dataclasses.fields(CapitalGrant)}
    base = _investment_fingerprint(INVESTMENT_BASE, GRANT_BASE)
    assert not np.array_equal(base, _investment_fingerprint(INVESTMENT_BASE)), "the grant changed nothing"
    varied = _investment_fingerprint(INVESTMENT_BASE, {**GRANT_BASE, key: value})
    assert not np.array_equal(varied, base), f"capital_grant.{key} = {value!r} changed nothing"
# The exporter's domestic supply policy (abm.domestic_policy): a Dy/Tb cut from month 0
# gives it a glut to answer; smugglers give enforcement something to stop.
POLICY_BASE = {
    "events": [dict(kind="quota", nation="CN", start=0, months=HORIZON, cut=0.5, elements=["Dy", "Tb"])],
    "market": {"smuggling_share": 0.2},
    "domestic_policy": dict(review_months=2, band_low=0.95, band_high=1.2),
}
POLICY_VARIANTS = dict(
    enabled=False, nation="US", elements=["Dy"], start=3, band_low=0.9, band_high=1.0, review_months=3,
    quota_step=0.2, min_quota_share=0.95, reserve_response=3.0, reserve_usd_per_year=1e6, reserve_capacity_t=20.0,
    enforcement=0.5,
    enforcement_start=4,
)


def test_the_policy_table_covers_every_key():
    assert set(POLICY_VARIANTS) == {f.name for f in dataclasses.fields(DomesticPolicy)}


@pytest.mark.parametrize("key, value", list(POLICY_VARIANTS.items()), ids=list(POLICY_VARIANTS))
def test_every_domestic_policy_key_changes_the_run(key, value):
    varied = {**POLICY_BASE, "domestic_policy": {**POLICY_BASE["domestic_policy"], key: value}}
    assert not np.array_equal(_fingerprint(varied), _fingerprint(POLICY_BASE)), f"domestic_policy.{key} changed nothing"


# Negotiated deals (abm.negotiation): Dy/Tb licences from month 0 give the party a gap to
# bargain over; a modest leverage lets deals form. Every key moves the prices or the
# deal's values (a discount rate only splits the surplus: the transfer).
NEGOTIATION_BASE = {
    "events": [dict(kind="licence", nation="CN", start=0, months=HORIZON, approval_share=0.4, delay_months=0,
                    elements=["Dy", "Tb"])],
    "negotiation": dict(enabled=True, importers=["US", "JP", "EU"], concession_usd_per_year=2e8, round_months=2,
                        duration_months=3),
}
NEGOTIATION_VARIANTS = dict(
    enabled=False, importers=["US"], elements=["Dy"], round_months=1, duration_months=1, horizon_months=6,
    unmet_cost_ratio=200.0, concession_usd_per_year=2e9, importer_discount_rate=0.3, exporter_discount_rate=0.3,
    max_guaranteed_share=0.6,
)


def _deal_fingerprint(table: dict) -> np.ndarray:
    model = RareEarthModel(rng=5, scenario=scenario_from_dict({"horizon_months": HORIZON, **table}))
    records = []
    while model.running:
        model.step()
        records.append(np.concatenate([model.product_price.ravel(), model.deal_value, model.deal_share.ravel()]))
    return np.array([np.pad(r, (0, max(map(len, records)) - len(r))) for r in records])


def test_the_negotiation_table_covers_every_key():
    from abm.negotiation import Negotiation
    assert set(NEGOTIATION_VARIANTS) == {f.name for f in dataclasses.fields(Negotiation)}


@pytest.mark.parametrize("key, value", list(NEGOTIATION_VARIANTS.items()), ids=list(NEGOTIATION_VARIANTS))
def test_every_negotiation_key_changes_the_run(key, value):
    varied = {**NEGOTIATION_BASE, "negotiation": {**NEGOTIATION_BASE["negotiation"], key: value}}
    assert not np.array_equal(_deal_fingerprint(varied), _deal_fingerprint(NEGOTIATION_BASE)), (
        f"negotiation.{key} changed nothing")
