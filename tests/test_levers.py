"""The levers, each under the quota shock with the same seeds (common random numbers)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from abm import RareEarthModel, ScenarioError, load_scenario, run_scenario
from abm.levers import LEVER_SECTIONS, collection_share, refinery_online_month
from tests.conftest import EXPERIMENTS, finished_model, mass_balance_error

SEEDS = (1, 2, 3)
LEVERS = EXPERIMENTS / "levers"
SHOCK_END_STEP = 37  # the shock covers months 12-35, recorded at steps 13-36


def _table(series: pd.DataFrame, variable: str) -> pd.DataFrame:
    data = series[series["variable"] == variable]
    return data.pivot(index="step", columns=["element", "region"], values="value")


@pytest.fixture(scope="module")
def runs():
    """Every lever file and the quota shock, run with the same seeds."""
    files = {"quota_shock": EXPERIMENTS / "quota_shock.toml"} | {p.stem: p for p in sorted(LEVERS.glob("*.toml"))}
    return {name: [run_scenario(load_scenario(path), seed) for seed in SEEDS] for name, path in files.items()}


def _shortfall_outside_china(results) -> float:
    return sum(r.metrics["shortfall_outside_exporter_t"] for r in results)


def _shock_shortfall_outside_china(results) -> float:
    total = 0.0
    for result in results:
        table = _table(result.series, "shortfall")
        total += table.loc[13:SHOCK_END_STEP, [c for c in table.columns if c[1] != "CN"]].to_numpy().sum()
    return total


@pytest.mark.slow
@pytest.mark.parametrize("lever", ["agreement", "contracts", "partnership", "recycling", "stockpile"])
def test_lever_lowers_cumulative_shortfall_outside_china(runs, lever):
    assert _shortfall_outside_china(runs[lever]) < 0.97 * _shortfall_outside_china(runs["quota_shock"])
    assert _shock_shortfall_outside_china(runs[lever]) < _shock_shortfall_outside_china(runs["quota_shock"])


@pytest.mark.slow
@pytest.mark.parametrize("lever", ["domestic_mining", "refining", "substitution", "price_floor"])
def test_lever_too_slow_or_idle_in_the_shock_leaves_its_shortfall_unchanged(runs, lever):
    """docs/ODD.md §7.22 says why each cannot help within the shock; the tests below
    show each reason (lead times, no spare separation, a floor below the market)."""
    assert _shock_shortfall_outside_china(runs[lever]) == pytest.approx(
        _shock_shortfall_outside_china(runs["quota_shock"]), rel=0.01
    )
    assert _shortfall_outside_china(runs[lever]) <= 1.001 * _shortfall_outside_china(runs["quota_shock"])


def test_substitution_starts_only_after_its_lead_time_and_then_at_most_ten_percent_a_year():
    model = finished_model(rng=5, scenario=LEVERS / "substitution.toml", horizon_months=150)
    lead = model.programmes.substitution_lead
    lever = model.spec.substitution
    assert lever.lead_months_min <= lead <= lever.lead_months_max and lead >= 36  # after the shock ends
    magnets = [imp for imp in model.importers if imp.sector == "magnets" and imp.region in lever.regions]
    dy = model.elements.index("Dy")
    fastest = 1 - lever.max_cut_per_year * (150 - lead) / 12  # 10 % of demand a year at most
    for importer in magnets:
        assert fastest - 1e-9 <= importer.intensity[dy] < 1.0
        assert importer.intensity[model.elements.index("La")] == 1.0
    early = finished_model(rng=5, scenario=LEVERS / "substitution.toml", horizon_months=lead)
    assert all(np.all(imp.intensity == 1.0) for imp in early.importers)


def test_new_mine_ore_piles_up_for_want_of_separation_capacity():
    """Reason for domestic mining: separation equals mining, so new ore finds no refiner."""
    base = load_scenario(EXPERIMENTS / "quota_shock.toml")
    mining = load_scenario(LEVERS / "domestic_mining.toml")
    horizon = dict(horizon_months=120)
    plain, mine = finished_model(rng=1, scenario=base, **horizon), finished_model(rng=1, scenario=mining, **horizon)
    online = mine.programmes.mine_online
    assert 60 < online < 120
    us = lambda m: next(n for n in m.nations if n.code == "US")  # noqa: E731
    assert us(mine).concentrate_total > us(plain).concentrate_total + 0.5 * 20000 * (120 - online - 12) / 12
    refined = lambda m: np.asarray(m.datacollector.model_vars["supply_by_origin"]).sum(axis=(1, 2))  # noqa: E731
    assert refined(mine)[-12:].sum() == pytest.approx(refined(plain)[-12:].sum(), rel=0.02)


@pytest.mark.parametrize(
    "name,online,output", [("domestic_mining", "mine_online", "mined"), ("refining", "refinery_online", "supply_by_origin")]
)
def test_projects_change_nothing_before_their_lead_time_ends(name, online, output):
    base = load_scenario(EXPERIMENTS / "quota_shock.toml")
    lever = load_scenario(LEVERS / f"{name}.toml")
    plain = finished_model(rng=4, scenario=base, horizon_months=150)
    built = finished_model(rng=4, scenario=lever, horizon_months=150)
    month = getattr(built.programmes, online)
    assert month >= 36  # after the shock: why neither can help during it
    for variable in ("price", "shortfall", "mined", "supply_by_origin"):
        before = np.asarray(plain.datacollector.model_vars[variable][: month + 1])
        assert np.array_equal(before, np.asarray(built.datacollector.model_vars[variable][: month + 1])), variable
    after = np.asarray(built.datacollector.model_vars[output][-1]) != np.asarray(plain.datacollector.model_vars[output][-1])
    assert after.any()


def test_refinery_lead_time_rules():
    lever = load_scenario(LEVERS / "refining.toml").refining
    assert refinery_online_month(lever) == lever.lead_months + lever.technology_ban_delay_months
    jv = dataclasses.replace(lever, joint_venture=True)
    assert refinery_online_month(jv) == lever.lead_months - lever.joint_venture_saving_months


def test_new_refinery_separates_ore_china_would_have_separated():
    """Reason for refining: world separation is limited by ore, not capacity, so new
    capacity moves separation out of China without adding to it."""
    base, lever = load_scenario(EXPERIMENTS / "quota_shock.toml"), load_scenario(LEVERS / "refining.toml")
    plain, built = finished_model(rng=2, scenario=base, horizon_months=120), finished_model(rng=2, scenario=lever, horizon_months=120)
    origin = lambda m, r: np.asarray(m.datacollector.model_vars["supply_by_origin"])[-24:, :, m.regions.index(r)].sum()  # noqa: E731
    world = lambda m: np.asarray(m.datacollector.model_vars["supply_by_origin"])[-24:].sum()  # noqa: E731
    assert origin(built, "US") > origin(plain, "US") * 1.5
    assert origin(built, "CN") < origin(plain, "CN")
    assert world(built) == pytest.approx(world(plain), rel=0.02)


def test_price_floor_pays_only_below_the_floor_and_keeps_the_mine_running():
    base = load_scenario(EXPERIMENTS / "baseline.toml")
    floor = dataclasses.replace(base, price_floor=dataclasses.replace(base.price_floor, usd_per_kg=110.0))
    plain, floored = finished_model(rng=3, scenario=base, horizon_months=60), finished_model(rng=3, scenario=floor, horizon_months=60)
    cost = np.asarray(floored.datacollector.model_vars["policy_cost"])[:, floored.programmes.names.index("price_floor")]
    us_nd = np.asarray(floored.datacollector.model_vars["price"])[:, 0, floored.price_zones.index("US")]
    assert cost.sum() > 0
    assert np.all(cost[1:][us_nd[:-1] > 110.0 * 1.2] == 0)  # nothing paid while the price is well above
    mined = lambda m: np.asarray(m.datacollector.model_vars["mined"])[:, :, m.exporters.index("US")].sum()  # noqa: E731
    assert mined(floored) >= mined(plain)


@pytest.mark.parametrize("lever", sorted(p.stem for p in LEVERS.glob("*.toml")))
def test_mass_balance_closes_with_every_lever(runs, lever):
    for result in runs[lever]:
        assert np.nanmax(mass_balance_error(result.series)) <= 1e-9


def test_stockpile_softens_the_first_months_is_drawn_down_then_refilled(runs):
    for shock, stock in zip(runs["quota_shock"], runs["stockpile"], strict=True):
        regions = ["US", "JP", "EU"]
        depth = lambda r, regions=regions: _table(r.series, "shortfall").T.groupby(level=1).sum().T[regions].iloc[13:25].max().max()  # noqa: E731
        assert depth(stock) <= depth(shock)
    series = runs["stockpile"][0].series
    for element in ("Dy", "Tb", "La"):
        reserve = _table(series, "strategic_stock")[element][["US", "JP", "EU"]].sum(axis=1)
        demand = _table(series, "demand")[element][["US", "JP", "EU"]].sum(axis=1)
        months_held = reserve / demand
        assert months_held.iloc[13:SHOCK_END_STEP + 6].min() < 0.7 * months_held.iloc[12], element  # drawn down
        assert reserve.iloc[120] > 0.8 * reserve.iloc[12], element  # refilled after the shock (target grows with need)


def test_recycled_output_never_exceeds_the_scrap_pool_and_collection_follows_price():
    model = RareEarthModel(rng=1, scenario=LEVERS / "recycling.toml", horizon_months=24)
    while model.running:
        model.step()
        for recycler in model.recyclers:
            assert np.all(recycler.recycled <= recycler.scrap_pool + 1e-12)
    reference = np.array([10.0, 10.0])
    shares = [collection_share(np.full(2, p), reference, 0.0, 0.5) for p in (1.0, 3.0, 5.0, 8.0)]
    assert all(np.all(low <= high) for low, high in zip(shares, shares[1:], strict=False))
    assert shares[0][0] < shares[2][0]
    assert np.all(collection_share(np.full(2, 1.0), reference, 4.0, 0.5) > shares[0])  # a subsidy raises it


def test_breached_agreement_raises_tension_and_restores_the_quota_cut():
    shock = load_scenario(LEVERS / "agreement.toml")
    calm_tension = dataclasses.replace(shock.tension, volatility=0.0, jump_probability=0.0, mean=0.3)
    calm = dataclasses.replace(shock, tension=calm_tension)
    kept = finished_model(rng=1, scenario=calm, horizon_months=24)
    assert kept.programmes.agreement_in_force
    cut = lambda m: 1 - np.nanmin(np.asarray(m.datacollector.model_vars["quota"])[13:25, :, m.exporters.index("CN")] /  # noqa: E731
                                   np.asarray([n.export_reference for n in m.nations if n.code == "CN"]))
    assert cut(kept) == pytest.approx(1 - shock.agreement.guaranteed_share, abs=0.02)  # 0.4 cut held to 0.2

    strained = dataclasses.replace(calm, tension=dataclasses.replace(calm_tension, mean=0.9))
    broken = finished_model(rng=1, scenario=strained, horizon_months=24)
    assert not broken.programmes.agreement_in_force and broken.programmes.agreement_breached_at is not None
    tension = np.asarray(broken.datacollector.model_vars["tension"])
    at = broken.programmes.agreement_breached_at
    assert tension[at + 1, 0] >= tension[at, 0] + 0.5 * shock.agreement.breach_jump
    assert cut(broken) == pytest.approx(shock.shock.quota_cut, abs=0.02)


def test_every_lever_cost_is_counted_and_the_portfolio_is_the_sum_of_its_parts(runs):
    for lever in LEVER_SECTIONS:
        for result in runs[lever]:
            assert result.metrics[f"policy_cost_usd_{lever}"] != 0.0, lever
    portfolio = load_scenario(LEVERS / "portfolio.toml")
    mine, plant = portfolio.domestic_mining, portfolio.refining
    for result in runs["portfolio"]:  # capital spending by its own formula: counted once, in full
        assert result.metrics["policy_cost_usd_domestic_mining"] == pytest.approx(mine.capex_usd_per_t_per_year * mine.tonnes_per_year)
        assert result.metrics["policy_cost_usd_refining"] == pytest.approx(plant.capex_usd_per_t_per_year * plant.tonnes_per_year)
        research = result.metrics["policy_cost_usd_substitution"] / (portfolio.substitution.usd_per_year / 12)
        assert research == pytest.approx(round(research)) and 36 <= round(research) <= 96  # months of spending until success
    for lever in ("domestic_mining", "refining", "substitution"):  # fixed spending: identical alone and together
        for alone, together in zip(runs[lever], runs["portfolio"], strict=True):
            assert together.metrics[f"policy_cost_usd_{lever}"] == pytest.approx(alone.metrics[f"policy_cost_usd_{lever}"])
    for result in runs["quota_shock"]:
        assert result.metrics["policy_cost_usd"] == 0.0


BAD_LEVERS = [
    ("[stockpile]\nmonths = -3\n", "stockpile.months"),
    ("[partnership]\nshare = 1.5\n", "partnership.share"),
    ('[recycling]\nregions = ["US", "XX"]\n', "recycling.regions"),
    ('[refining]\nregion = "Atlantis"\n', "refining.region"),
    ("[domestic_mining]\npermit_delay_months = -1\n", "domestic_mining.permit_delay_months"),
    ('[agreement]\nenabled = "yes"\n', "agreement.enabled"),
    ('[price_floor]\nregion = "JP"\n', "price_floor.region"),
    ("[substitution]\nlead_months_min = 80\nlead_months_max = 40\n", "substitution.lead_months_max"),
]


@pytest.mark.parametrize("text,key", BAD_LEVERS, ids=[k for _, k in BAD_LEVERS])
def test_bad_lever_value_gets_the_one_line_error(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert raised.value.key == key and "\n" not in str(raised.value)


def test_lever_keywords_reach_the_scenario():
    model = RareEarthModel(rng=1, horizon_months=2, stockpile_months=2.0, recycling_rate=0.2, agreement=True,
                           refining_jv=True, price_floor=90.0, max_origin_share=0.6, partnership_share=0.1)
    spec = model.spec
    assert (spec.stockpile.months, spec.recycling.rate, spec.agreement.enabled, spec.refining.joint_venture) == (2.0, 0.2, True, True)
    assert (spec.price_floor.usd_per_kg, spec.contracts.max_origin_share, spec.partnership.share) == (90.0, 0.6, 0.1)
    with pytest.raises(ScenarioError, match="stockpile.months"):
        RareEarthModel(rng=1, stockpile_months=-1.0)
