"""The exporter's domestic supply policy (abm/domestic_policy.py, issue "Export controls
v2", item 5): quotas steered toward a domestic price band, state reserve purchases,
enforcement against unofficial supply."""

import dataclasses

import numpy as np
import pytest

from abm import RareEarthModel
from abm.domestic_policy import DomesticPolicy, SupplyQuotas
from abm.run import run_scenario
from abm.scenario import Event, Scenario, ScenarioError, scenario_from_dict
from abm.schema import ELEMENTS
from tests.conftest import mass_balance_error

SEED = 7
CUT_START, CUT_MONTHS = 3, 36
# The band holds once quotas have had time to move and the reserve to buy: 21 months
# after the cut starts (three half-yearly quota reviews), to the month it ends.
SETTLED = slice(CUT_START + 21, CUT_START + CUT_MONTHS)
# The reserve buys in proportion to the gap below the band, so while a glut lasts the
# price can settle a little under its edge: the band's edges with 5 % either side.
EDGE = 0.05


def _scenario(enabled: bool = True, elements: tuple[str, ...] = ("Dy", "Tb"), cut: float = 0.45, **policy) -> Scenario:
    base = Scenario(horizon_months=CUT_START + CUT_MONTHS)
    events = (Event(kind="quota", nation="CN", start=CUT_START, months=CUT_MONTHS, cut=cut, elements=elements),) if cut else ()
    return dataclasses.replace(base, events=events,
                               domestic_policy=dataclasses.replace(base.domestic_policy, enabled=enabled, **policy))


def _run(scenario: Scenario) -> tuple[RareEarthModel, dict[str, np.ndarray]]:
    """The model at the end and, month by month, China's domestic oxide price over its
    reference [T, E], the world price [T, E], the state reserve [T, E] t, its purchases
    [T, E] t and China's unofficial exports [T] t."""
    model = RareEarthModel(rng=SEED, scenario=scenario)
    zone, k = model.price_zones.index("CN"), model.exporters.index("CN")
    rows: dict[str, list] = {"china": [], "world": [], "reserve": [], "bought": [], "unofficial": []}
    while model.running:
        model.step()
        rows["china"].append(model.price[:, zone] / model.reference_price)
        rows["world"].append(model.price[:, -1].copy())
        rows["reserve"].append(model.state_reserve[:, k].copy())
        rows["bought"].append(model.reserve_purchases[:, k].copy())
        rows["unofficial"].append(model.unofficial_exports[:, k].sum())
    return model, {name: np.array(values) for name, values in rows.items()}


@pytest.mark.parametrize("elements", [("Dy", "Tb"), ELEMENTS], ids=["DyTb", "all"])
def test_chinas_domestic_price_stays_within_its_policy_band_when_exports_are_cut(elements):
    """A 45 % cut of China's exports for three years: with its policy the domestic price
    of every policy element stays in the band once it has adjusted; without, Dy and Tb
    fall far below it (the glut behind the wall)."""
    policy = Scenario().domestic_policy
    low, high = policy.band_low * (1 - EDGE), policy.band_high * (1 + EDGE)
    model, on = _run(_scenario(elements=elements))
    _, off = _run(_scenario(enabled=False, elements=elements))
    policy_elements = np.isin(model.elements, policy.elements)
    settled = on["china"][SETTLED][:, policy_elements]
    assert settled.min() >= low and settled.max() <= high, settled.round(2)
    heavy = off["china"][SETTLED][:, np.isin(model.elements, ("Dy", "Tb"))]
    assert heavy.mean() < 0.7 * policy.band_low, heavy.mean()
    # the world outside still pays for the cut: the policy holds China's price up, not the world's down
    assert on["world"][SETTLED][:, model.elements.index("Dy")].mean() > 2 * model.reference_price[model.elements.index("Dy")]


def test_the_state_reserve_buys_below_the_band_and_its_stock_is_in_the_mass_balance():
    model, on = _run(_scenario())
    policy = model.spec.domestic_policy
    below = on["china"][:-1] < policy.band_low  # last month's price decides this month's bids
    covered = np.isin(model.elements, policy.elements)
    bought_then = on["bought"][1:][below & covered[None, :]]
    assert (bought_then > 0).mean() > 0.9
    assert on["bought"][1:][~below & covered[None, :]].max() == 0.0
    assert on["reserve"][-1, model.elements.index("Dy")] > 0
    # its stock is the sum of what it bought less what it released
    assert np.all(on["reserve"].sum(axis=1) <= on["bought"].sum(axis=1).cumsum() + 1e-9)
    result = run_scenario(_scenario(), seed=SEED)
    assert np.nanmax(mass_balance_error(result.series)) <= 1e-9
    series = result.series
    held = series[series["variable"] == "state_reserve"].groupby("step")["value"].sum().to_numpy()
    assert np.allclose(held[1:], on["reserve"].sum(axis=1)) and held[0] == 0.0  # step 0: the spin-up's end


def test_enforcement_cuts_unofficial_exports_and_mining_above_the_quota():
    """Smuggling past the export cap and mining above the quota, with and without enforcement."""
    smuggled = {}
    for enforcement in (0.0, 0.9):
        scenario = _scenario(enforcement=enforcement)
        scenario = dataclasses.replace(scenario, market=dataclasses.replace(scenario.market, smuggling_share=0.2))
        smuggled[enforcement] = _run(scenario)[1]
    assert smuggled[0.0]["unofficial"].sum() > 0
    assert smuggled[0.9]["unofficial"].sum() < 0.2 * smuggled[0.0]["unofficial"].sum()
    # illegal mining: without enforcement a quota caps nothing; with it, the quota and
    # the part of the idled capacity that gets past enforcement run
    model = RareEarthModel(rng=SEED, scenario=_scenario(enforcement=0.9, enforcement_start=CUT_START + 12))
    while model.running:
        model.step()
    quotas = model.supply_quotas
    assert quotas.mining.min() < 1.0
    assert np.all(quotas.mine_cap(CUT_START) == 1.0)
    assert np.allclose(quotas.mine_cap(model.month), quotas.mining + 0.1 * (1.0 - quotas.mining))


def test_without_a_cut_the_first_five_years_of_the_baseline_are_unchanged():
    """No cut: China's domestic prices stay above the band's low edge for five years, so
    the policy does nothing (docs/ODD.md §7.27 states what it does later in the baseline)."""
    on = _run(dataclasses.replace(_scenario(cut=0.0), horizon_months=60))[1]
    off = _run(dataclasses.replace(_scenario(enabled=False, cut=0.0), horizon_months=60))[1]
    assert np.allclose(on["world"], off["world"], rtol=0.01)
    assert on["reserve"].max() == 0.0


@pytest.mark.parametrize("table, key", [
    ({"band_low": 1.6, "band_high": 1.5}, "domestic_policy.band_high"),
    ({"nation": "MM"}, "domestic_policy.nation"),
    ({"elements": []}, "domestic_policy.elements"),
    ({"quota_step": 1.5}, "domestic_policy.quota_step"),
    ({"enforcement": float("nan")}, "domestic_policy.enforcement"),
    ({"start": 500}, "domestic_policy.start"),
    ({"review_months": 0}, "domestic_policy.review_months"),
])
def test_bad_domestic_policy_values_are_refused_with_one_line(table, key):
    with pytest.raises(ScenarioError, match=key.replace(".", r"\.")) as refused:
        scenario_from_dict({"domestic_policy": table}, "policy.toml")
    assert "\n" not in str(refused.value) and "policy.toml" in str(refused.value)


def test_a_scarce_main_element_releases_the_quota_its_glutted_co_product_had_cut():
    """One light-ore line (Nd and Pr, as Bayan Obo's basket): with both in glut the quota
    falls a step per review; once Pr, a main element of the line, is above the band the
    whole quota is released, even while Nd's glut keeps the line's index below the band."""
    policy = DomesticPolicy(elements=("Nd", "Pr"), review_months=1)
    reference = np.array([50.0, 50.0])
    quotas = SupplyQuotas(policy, np.array([[0.75, 0.25]]), np.array([100.0]), reference, np.array([True, True]))
    glut = 0.5 * reference
    for month in range(3):
        quotas.review(month, glut)
    assert quotas.mining[0] == pytest.approx(1.0 - 3 * policy.quota_step)
    pr_short = np.array([0.5, 1.2 * policy.band_high]) * reference  # the index stays below band_low
    assert quotas.index(pr_short)[0] < policy.band_low
    quotas.review(3, pr_short)
    assert quotas.mining[0] == 1.0
