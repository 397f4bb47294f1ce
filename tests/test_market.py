"""Market clearing and price formation against closed-form cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abm.market import clear_markets, price_areas, prorata_fill, update_prices

INF = np.inf


def test_single_source_shortage_is_shared_pro_rata():
    flow = prorata_fill(np.array([6.0]), np.array([4.0, 8.0]), np.full((1, 2), INF))
    assert flow == pytest.approx(np.array([[2.0, 4.0]]))


def test_surplus_serves_every_sink_in_full():
    flow = prorata_fill(np.array([20.0]), np.array([4.0, 8.0]), np.full((1, 2), INF))
    assert flow.sum(axis=0) == pytest.approx([4.0, 8.0])


def test_closed_link_carries_nothing_and_others_serve_the_sink():
    links = np.array([[0.0, INF], [INF, INF]])  # source 0 cannot reach sink 0
    flow = prorata_fill(np.array([10.0, 10.0]), np.array([5.0, 5.0]), links)
    assert flow[0, 0] == 0.0
    assert flow.sum(axis=0) == pytest.approx([5.0, 5.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 100), min_size=1, max_size=4),
    st.lists(st.floats(0, 100), min_size=1, max_size=5),
    st.data(),
)
def test_flows_respect_supply_demand_and_links(supply, demand, data):
    supply, demand = np.array(supply), np.array(demand)
    caps = np.array(
        data.draw(st.lists(st.lists(st.sampled_from([0.0, 3.0, INF]), min_size=len(demand), max_size=len(demand)),
                           min_size=len(supply), max_size=len(supply)))
    )
    flow = prorata_fill(supply, demand, caps)
    assert (flow >= 0).all()
    assert (flow.sum(axis=1) <= supply + 1e-9).all()
    assert (flow.sum(axis=0) <= demand + 1e-9).all()
    assert (flow <= caps + 1e-9).all()


def _two_region_market(cap: float):
    """Region 0 exports (big supply, small home demand); region 1 imports."""
    available = np.array([[100.0, 10.0]])
    want = np.array([[30.0, 60.0]])
    contract = np.zeros((1, 2, 2))
    buyer_region = np.array([0, 1])
    export_cap = np.array([[cap, INF]])
    allowed = np.ones((1, 2, 2), dtype=bool)
    return clear_markets(available, want, contract, buyer_region, export_cap, allowed)


def test_binding_quota_caps_exports_and_serves_home_buyers_first():
    clearing = _two_region_market(cap=20.0)
    exported = clearing.flow[0, 0, 1]
    assert exported == pytest.approx(20.0)
    assert clearing.received[0] == pytest.approx([30.0, 30.0])  # home in full; importer gets 10 own + 20
    assert clearing.export_cap_left[0, 0] == pytest.approx(0.0)


def test_contracts_deliver_before_spot_and_count_against_the_quota():
    available = np.array([[50.0, 0.0]])
    want = np.array([[50.0, 40.0]])
    contract = np.zeros((1, 2, 2))
    contract[0, 0, 1] = 15.0  # importer in region 1 holds a contract with region 0
    clearing = clear_markets(available, want, contract, np.array([0, 1]), np.array([[15.0, INF]]), np.ones((1, 2, 2), bool))
    assert clearing.contract_flow[0, 0, 1] == pytest.approx(15.0)
    assert clearing.spot_flow[0, 0, 1] == pytest.approx(0.0)  # the cap is used up by the contract
    assert clearing.received[0, 0] == pytest.approx(35.0)  # home buyers get the rest


def test_ban_stops_trade_to_the_banned_destination_only():
    available = np.array([[100.0, 0.0, 0.0]])
    want = np.array([[0.0, 10.0, 10.0]])
    allowed = np.ones((1, 3, 3), dtype=bool)
    allowed[0, 0, 1] = False
    clearing = clear_markets(available, want, np.zeros((1, 3, 3)), np.array([0, 1, 2]), np.full((1, 3), INF), allowed)
    assert clearing.received[0] == pytest.approx([0.0, 0.0, 10.0])


def test_binding_quota_splits_the_price_areas():
    clearing = _two_region_market(cap=20.0)
    trade = np.zeros((1, 2, 2))
    trade[0, 0, 1] = clearing.flow[0, 0, 1]
    unmet = np.array([[0.0, 30.0]])
    assert not price_areas(np.ones((1, 2, 2), bool), clearing.export_cap_left, trade, unmet)[0, 0, 1]
    free = _two_region_market(cap=INF)
    nothing = np.zeros((1, 2, 2))
    assert price_areas(np.ones((1, 2, 2), bool), free.export_cap_left, nothing, np.zeros((1, 2)))[0, 0, 1]


def test_a_one_way_link_ties_prices_only_when_used():
    allowed = np.ones((1, 2, 2), bool)
    capped = np.array([[0.0, INF]])  # region 0 cannot export; region 1 could sell to it
    idle = price_areas(allowed, capped, np.zeros((1, 2, 2)), np.zeros((1, 2)))
    assert not idle[0, 0, 1]
    trade = np.zeros((1, 2, 2))
    trade[0, 1, 0] = 5.0  # region 0 imports on the spot market
    assert price_areas(allowed, capped, trade, np.zeros((1, 2)))[0, 0, 1]
    assert price_areas(allowed, capped, np.zeros((1, 2, 2)), np.array([[3.0, 0.0]]))[0, 0, 1]


def test_binding_quota_raises_world_price_and_lowers_domestic():
    clearing = _two_region_market(cap=20.0)
    available = np.array([[100.0, 10.0]])
    want = np.array([[30.0, 60.0]])
    leftover = available - clearing.sold
    unmet = want - clearing.received
    trade = np.zeros((1, 2, 2))
    trade[0, 0, 1] = clearing.flow[0, 0, 1]
    areas = price_areas(np.ones((1, 2, 2), bool), clearing.export_cap_left, trade, np.maximum(unmet, 0.0))
    price = np.array([[10.0, 10.0]])
    position = leftover - unmet
    new = update_prices(
        price, areas, want + available, position, position, want, np.array([10.0]),
        adjustment=0.1, target_cover_months=1.0, trend_months=0.0, min_price_ratio=0.1,
    )
    assert new[0, 0] < 10.0 < new[0, 1]


def test_price_moves_by_the_inventory_rule():
    """One isolated region: gap = (I* - I) / I* with I* = cover x demand."""
    areas = np.ones((1, 1, 1), bool)
    demand = np.array([[10.0]])
    position = np.array([[5.0]])  # target 20 -> gap 0.75
    new = update_prices(
        np.array([[8.0]]), areas, demand, position, position, demand, np.array([8.0]),
        adjustment=0.2, target_cover_months=2.0, trend_months=0.0, min_price_ratio=0.1,
    )
    assert new[0, 0] == pytest.approx(8.0 * np.exp(0.2 * 0.75))


def test_falling_inventory_is_projected_ahead():
    areas = np.ones((1, 1, 1), bool)
    demand = np.array([[10.0]])
    steady = update_prices(np.array([[8.0]]), areas, demand, np.array([[20.0]]), np.array([[20.0]]), demand,
                           np.array([8.0]), 0.2, 2.0, 3.0, 0.1)
    falling = update_prices(np.array([[8.0]]), areas, demand, np.array([[20.0]]), np.array([[22.0]]), demand,
                            np.array([8.0]), 0.2, 2.0, 3.0, 0.1)
    assert steady[0, 0] == pytest.approx(8.0)  # at target and flat: no change
    assert falling[0, 0] == pytest.approx(8.0 * np.exp(0.2 * 6.0 / 20.0))


def test_price_never_falls_below_the_floor():
    areas = np.ones((1, 1, 1), bool)
    new = update_prices(np.array([[1.0]]), areas, np.array([[1.0]]), np.array([[1e6]]), np.array([[1e6]]),
                        np.array([[1.0]]), np.array([10.0]), 1.0, 2.0, 0.0, 0.2)
    assert new[0, 0] == pytest.approx(2.0)
