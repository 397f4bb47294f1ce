"""The levers, each under the quota shock with the same seeds (common random numbers)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from abm import RareEarthModel, ScenarioError, load_scenario, run_scenario
from abm.agents import EndUser
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


def _shock_dy_price(results) -> float:
    """Dy's world price summed over the shock's months and the seeds: Dy is where a cut of
    China's exports bites hardest (China separates almost all of it)."""
    total = 0.0
    for result in results:
        table = _table(result.series, "price")
        total += table.loc[13:SHOCK_END_STEP - 1, ("Dy", "world")].sum()
    return total


@pytest.mark.slow
@pytest.mark.parametrize("lever", [
    # agreement: with six elements it failed (both runs swung between the backstop and a glut,
    # the sum 2 % higher, seeds 1-3); with Sm, Gd and Y it lowers the sum by a third (seeds 1-3;
    # below 0.97 in 7 of seeds 1-8), a finding for 'The main job v2' to explain
    "agreement", "recycling", "stockpile",
    pytest.param("contracts", marks=pytest.mark.xfail(strict=True, reason=(
        "version 2 finding, a mechanism (docs/ODD.md 7.22.11, pinned in tests/test_effects.py): contracts "
        "diversified onto makers outside China move the chokepoint upstream, since those makers bid for the "
        "NdPr metal, DyFe alloy and oxides outside China that the quota keeps scarce"))),
    pytest.param("partnership", marks=pytest.mark.xfail(strict=True, reason=(
        "version 2 finding, as for contracts: offtake from allied magnet makers draws on the feedstock "
        "outside China that the quota keeps scarce"))),
])
def test_lever_lowers_the_dy_price_outside_china_in_the_shock(runs, lever):
    """Under the 40 % cut, prices do the rationing (version 2: a shock clears at a price
    within the month): a lever that helps lowers what importers pay for Dy."""
    assert _shock_dy_price(runs[lever]) < 0.97 * _shock_dy_price(runs["quota_shock"])


@pytest.mark.slow
@pytest.mark.parametrize("lever", ["domestic_mining", "refining", "substitution", "price_floor"])
def test_lever_too_slow_or_idle_in_the_shock_leaves_its_prices_unchanged(runs, lever):
    """docs/ODD.md §7.22 says why each cannot help within the shock; the tests below
    show each reason (lead times, no spare separation, a floor below the market)."""
    assert _shock_dy_price(runs[lever]) == pytest.approx(_shock_dy_price(runs["quota_shock"]), rel=0.02)


def test_substitution_starts_only_after_its_lead_time_and_then_at_most_ten_percent_a_year():
    model = finished_model(rng=5, scenario=LEVERS / "substitution.toml", horizon_months=150)
    lead = model.programmes.substitution_lead
    lever = model.spec.substitution
    assert lever.lead_months_min <= lead <= lever.lead_months_max and lead >= 36  # after the shock ends
    users = model.agents_by_type[EndUser]
    magnet_users = [u for u in users if u.sector in model.chain.data.end_uses and u.region in lever.regions]
    dy = model.elements.index("Dy")
    fastest = 1 - lever.max_cut_per_year * (150 - lead) / 12  # 10 % of demand a year at most
    assert magnet_users
    for user in magnet_users:
        assert fastest - 1e-9 <= user.intensity[dy] < 1.0
        assert user.intensity[model.elements.index("La")] == 1.0
    early = finished_model(rng=5, scenario=LEVERS / "substitution.toml", horizon_months=lead)
    assert np.all(early.end_users.intensity == 1.0)


def test_new_mine_ore_piles_up_for_want_of_separation_capacity():
    """Reason for domestic mining: the US separation plant runs its own mine's ore, so a
    new mine's ore finds no separator at home and piles up; the world separates no more."""
    base = load_scenario(EXPERIMENTS / "quota_shock.toml")
    mining = load_scenario(LEVERS / "domestic_mining.toml")
    horizon = dict(horizon_months=120)
    plain, mine = finished_model(rng=1, scenario=base, **horizon), finished_model(rng=1, scenario=mining, **horizon)
    online = mine.programmes.mine_online
    assert 60 < online < 120
    us = lambda m: next(n for n in m.nations if n.code == "US")  # noqa: E731
    assert us(mine).concentrate.sum() > us(plain).concentrate.sum() + 0.5 * 20000 * (120 - online - 12) / 12
    assert _oxide_made(mine)[-12:].sum() == pytest.approx(_oxide_made(plain)[-12:].sum(), rel=0.02)


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


def _oxide_made(model, region: str | None = None) -> np.ndarray:
    """[T] t of oxide separated each month, in a region or the world."""
    made = np.asarray(model.datacollector.model_vars["production"])[:, model.chain.stage_index("oxide")]
    return made.sum(axis=(1, 2)) if region is None else made[:, :, model.regions.index(region)].sum(axis=1)


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
    origin = lambda m, r: _oxide_made(m, r)[-24:].sum()  # noqa: E731
    gained_us = origin(built, "US") - origin(plain, "US")
    lost_cn = origin(plain, "CN") - origin(built, "CN")
    assert gained_us > 0 and lost_cn > 0  # separation moves out of China (38 % more in the US, seed 2)
    assert _oxide_made(built)[-24:].sum() == pytest.approx(_oxide_made(plain)[-24:].sum(), rel=0.02)


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

        def depth(r, regions=regions):  # deepest month's unmet share of the regions' demand, any element
            short, demand = (
                _table(r.series, v).loc[:, (slice(None), regions)].T.groupby(level=0).sum().T for v in ("shortfall", "demand")
            )
            return (short / demand).iloc[13:25].max().max()

        # no deeper by more than 2 % of demand: a reserve drawn to empty before the cut ends
        # leaves its holders to the market in the last months (seed 2: EU Tb 0.13 of 6.1 t, month 22)
        assert depth(stock) <= depth(shock) + 0.02
        # in version 2 the first months are rationed by price: the reserve's release lowers it
        dy_first_year = lambda r: _table(r.series, "price")[("Dy", "world")].iloc[13:25].mean()  # noqa: E731
        assert dy_first_year(stock) < dy_first_year(shock)
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
    def cut(m):
        """1 - the quota over China's counterfactual exports (abm.counterfactual), in
        element content, the largest over months 12-23."""
        china = next(n for n in m.nations if n.code == "CN")
        covered = np.isfinite(china.export_cap)  # the shock is still in force at month 24
        flows = [m.counterfactual.months_ago(k) for k in range(12, 0, -1)]  # months 12-23
        reference = np.array([m.chain.content.T @ np.where(covered, f[:, china.region_index].sum(axis=1), 0.0)
                              for f in flows])  # [months, E]
        quota = np.asarray(m.datacollector.model_vars["quota"])[13:25, :, m.exporters.index("CN")]
        return 1 - np.nanmin(quota / reference)
    assert cut(kept) == pytest.approx(1 - shock.agreement.guaranteed_share, abs=0.02)  # 0.4 cut held to 0.2

    strained = dataclasses.replace(calm, tension=dataclasses.replace(calm_tension, mean=0.9))
    broken = finished_model(rng=1, scenario=strained, horizon_months=24)
    assert not broken.programmes.agreement_in_force and broken.programmes.agreement_breached_at is not None
    tension = np.asarray(broken.datacollector.model_vars["tension"])
    at = broken.programmes.agreement_breached_at
    assert tension[at + 1, 0] >= tension[at, 0] + 0.5 * shock.agreement.breach_jump
    # the guarantee no longer holds the cut to 0.2: the shock's 0.4 or, at this tension, more
    assert cut(broken) >= shock.shock.quota_cut - 1e-9


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


def test_capped_shares_spread_the_excess_only_over_origins_that_make_the_product():
    from abm.levers import capped_shares

    shares = capped_shares(np.array([0.9, 0.1, 0.0, 0.0]), 0.5)
    assert np.isfinite(shares).all()
    assert shares == pytest.approx([0.5, 0.5, 0.0, 0.0])  # an origin that makes none of it gets none
    assert capped_shares(np.array([1.0, 0.0]), 0.5) == pytest.approx([0.5, 0.0])  # the rest is left uncontracted
