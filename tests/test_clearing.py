"""The clearing kernel of version 2 (abm/clearing.py): zone prices, trade and re-export."""

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from abm.clearing import PRICE_FLOOR, Bids, Clearing, Links, Offers, clear

INF = np.inf
ELASTICITY, CHOKE, HOLDBACK = -0.5, 3.0, 2.0
SETTLE_MONTHS = 12
seeds = st.integers(0, 2**32 - 1)


def _grid(value, n_zones):
    return np.broadcast_to(np.asarray(value, dtype=float), (1, n_zones)).copy()


def one_product(stock, quantity, *, keep=0.0, expected=10.0, cost=1.0, planning=10.0,
                trade_cost=0.05, banned=None, export_cap=INF, export_tax=0.0, elasticity=ELASTICITY, choke=CHOKE):
    """One product in len(stock) zones; ``banned`` [Z, Z] bool origin -> destination (default: none)."""
    n = len(stock)
    ban = np.zeros((n, n), dtype=bool) if banned is None else np.asarray(banned, dtype=bool)
    offers = Offers(_grid(stock, n), _grid(keep, n), _grid(expected, n), _grid(cost, n), HOLDBACK)
    bids = Bids(_grid(quantity, n), _grid(planning, n), elasticity, choke)
    links = Links(np.array([float(trade_cost)]), _grid(export_tax, n), ban[None], _grid(export_cap, n))
    return offers, bids, links


def settle(offers, bids, links, months=SETTLE_MONTHS) -> Clearing:
    """Repeated months with the same curves, each starting from the last."""
    result = None
    for _ in range(months):
        result = clear(offers, bids, links, result)
    return result


def random_market(rng, n_products=4, n_zones=5, closed=0.3, quotas=False, zeros=False):
    """Random curves and links; ``zeros`` empties some zones' stock and bids."""
    shape = (n_products, n_zones)
    stock = rng.uniform(10, 100, shape)
    quantity = rng.uniform(10, 100, shape)
    keep = rng.uniform(0.0, 1.0, shape) * stock
    if zeros:
        stock *= rng.random(shape) < 0.7
        quantity *= rng.random(shape) < 0.7
        keep *= rng.random(shape) < 0.6
    expected = rng.uniform(5, 50, (n_products, 1)) * rng.uniform(0.8, 1.2, shape)
    cost = expected * rng.uniform(0.1, 0.8, shape) * (rng.random(shape) < (0.8 if zeros else 1.0))
    planning = expected * rng.uniform(0.8, 1.4, shape)
    trade_cost = rng.uniform(0.0, 0.2, n_products)
    export_tax = np.where(rng.random(shape) < 0.2, rng.uniform(0.0, 0.3, shape), 0.0)
    # Bans as policies set them: one origin (zone 0) banned to some destinations (all
    # links closed with closed=1).
    banned = np.zeros((n_products, n_zones, n_zones), dtype=bool)
    banned[:, 0, 1:] = rng.random((n_products, n_zones - 1)) < closed
    banned |= closed >= 1.0
    export_cap = np.full(shape, INF)
    if quotas:
        export_cap = np.where(rng.random(shape) < 0.3, rng.uniform(0, 40, shape), INF)
    offers = Offers(stock, keep, expected, cost, HOLDBACK)
    return offers, Bids(quantity, planning, ELASTICITY, CHOKE), Links(trade_cost, export_tax, banned, export_cap)


def log_gaps(result: Clearing, links: Links) -> np.ndarray:
    """[P, a, b] ln price_b - ln price_a - ln((1 + trade_cost) (1 + export_tax_a))."""
    y = np.log(result.price)
    cost = np.log1p(links.trade_cost)[:, None, None] + np.log1p(links.export_tax)[:, :, None]
    return y[:, None, :] - y[:, :, None] - cost


def assert_books_balance(offers, bids, links, result):
    scale = (offers.stock.sum(axis=1) + bids.quantity.sum(axis=1))[:, None] + 1.0
    balance = result.sold + result.imports - result.bought - result.exports
    assert np.abs(balance).max(initial=0.0) <= 1e-12 * scale.max()
    assert (result.sold >= 0).all() and (result.sold <= offers.stock).all()
    assert (result.bought >= 0).all() and (result.unserved >= 0).all()
    assert (result.bought <= bids.want(result.price) * (1 + 1e-12) + 1e-12 * scale).all()
    n = result.price.shape[1]
    assert (result.flow >= 0).all() and (result.flow[:, np.arange(n), np.arange(n)] == 0).all()
    assert (result.flow[links.banned] == 0).all()
    assert (result.exports <= links.export_cap * (1 + 1e-12)).all()


# 1. Autarky


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_in_autarky_each_zone_clears_alone_at_or_above_its_cost(seed):
    rng = np.random.default_rng(seed)
    offers, bids, links = random_market(rng, n_products=3, n_zones=4, closed=1.0)
    offers = Offers(offers.stock, offers.keep, offers.expected, np.minimum(offers.cost, bids.planning) + 0.1,
                    HOLDBACK)
    result = clear(offers, bids, links)
    price, cost = result.price, offers.cost
    assert (price >= cost).all() and (result.flow == 0).all()
    floor = offers.offer(cost) >= bids.want(cost)
    assert price[floor] == pytest.approx(cost[floor], rel=1e-12)
    choke = ~floor & (result.unserved > 0)
    assert price[choke] == pytest.approx(bids.choke_price[choke], rel=1e-12)
    inside = ~floor & ~choke
    assert bids.want(price)[inside] == pytest.approx(offers.offer(price)[inside], rel=1e-9)
    assert_books_balance(offers, bids, links, result)


def test_a_seller_without_buyers_or_links_posts_its_reservation_price():
    offers, bids, links = one_product([50.0, 40.0], [0.0, 0.0], keep=[0.0, 90.0], cost=2.0,
                                      banned=~np.eye(2, dtype=bool))
    price = clear(offers, bids, links).price[0]
    assert price[0] == 2.0  # its cost
    assert price[1] == pytest.approx(10.0 * (90.0 / 40.0) ** (1 / HOLDBACK))  # where a thin stock starts to sell


# 2. The contract: an open link's price gap is at most its trade cost


def assert_no_arbitrage_left(offers, bids, links, result, tolerance=1e-9):
    """No zone b pays more than an open origin a's price times the cost of a -> b.

    Left out: origins whose export cap binds (the quota rent keeps the gap open), and
    pairs the kernel's restricted hub does not connect directly (an origin banned to any
    zone, shipping to a restricted zone; a restricted zone shipping to another).
    """
    gap = log_gaps(result, links)
    n = result.price.shape[1]
    others = ~np.eye(n, dtype=bool)[None]
    banned = links.banned & others
    restricted, banned_origin = banned.any(axis=1), banned.any(axis=2)
    capped = result.exports >= links.export_cap * (1 - 1e-9)
    pair = others & ~banned & ~capped[:, :, None]
    pair &= ~(restricted[:, None, :] & (banned_origin | restricted)[:, :, None])
    assert gap[pair].max(initial=0.0) <= tolerance


@settings(max_examples=25, deadline=None)
@given(seeds)
def test_after_settling_no_open_link_has_a_price_gap_above_its_trade_cost(seed):
    offers, bids, links = random_market(np.random.default_rng(seed))
    result = settle(offers, bids, links)
    assert_no_arbitrage_left(offers, bids, links, result)
    assert_books_balance(offers, bids, links, result)


def test_a_settled_market_stays_put():
    offers, bids, links = random_market(np.random.default_rng(3), n_products=6, n_zones=8)
    settled = settle(offers, bids, links)
    again = clear(offers, bids, links, settled)
    assert again.price == pytest.approx(settled.price, rel=1e-9)
    assert again.flow == pytest.approx(settled.flow, rel=1e-6, abs=1e-9)


def test_cheap_zone_exports_to_dear_zone_until_prices_differ_by_the_trade_cost():
    offers, bids, links = one_product([100.0, 10.0], [50.0, 60.0], keep=[50.0, 5.0], trade_cost=0.1)
    result = settle(offers, bids, links)
    assert result.flow[0, 0, 1] > 0 and result.flow[0, 1, 0] == 0
    assert result.price[0, 1] == pytest.approx(result.price[0, 0] * 1.1, rel=1e-4)


# 3. Re-export around a ban


def three_zones_with_a_ban(trade_cost):
    """A: cheap, big stock; E: small market between; U: short. A may not ship to U."""
    banned = np.zeros((3, 3), dtype=bool)
    banned[0, 2] = True
    return one_product([200.0, 20.0, 5.0], [40.0, 30.0, 80.0], keep=[20.0, 10.0, 2.0], trade_cost=trade_cost,
                       banned=banned)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 0.3))
def test_a_ban_is_worked_around_by_re_export_through_a_third_zone(trade_cost):
    offers, bids, links = three_zones_with_a_ban(trade_cost)
    result = settle(offers, bids, links)
    price = result.price[0]
    assert result.flow[0, 0, 2] == 0
    assert result.flow[0, 1, 2] > 0  # E re-exports A's product to U
    assert price[2] <= price[1] * (1 + trade_cost) * (1 + 1e-9)
    assert price[2] <= price[0] * (1 + trade_cost) ** 2 * (1 + 1e-9)
    assert price[2] > price[0] * (1 + trade_cost) * (1 - 1e-9)  # the ban costs U a second shipment at most
    assert_books_balance(offers, bids, links, result)


def test_re_export_through_a_zone_without_buyers_or_sellers():
    banned = np.zeros((3, 3), dtype=bool)
    banned[0, 2] = True
    offers, bids, links = one_product([200.0, 0.0, 5.0], [40.0, 0.0, 80.0], keep=[20.0, 0.0, 2.0], banned=banned)
    result = settle(offers, bids, links)
    assert result.flow[0, 1, 2] == pytest.approx(result.flow[0, 0, 1], rel=1e-12)
    assert result.flow[0, 1, 2] > 1
    assert result.price[0, 2] == pytest.approx(result.price[0, 0] * 1.05**2, rel=1e-9)


def _no_re_export(links: Links) -> Links:
    return dataclasses.replace(links, no_re_export=np.ones(links.trade_cost.shape, dtype=bool))


def test_under_a_re_export_restriction_a_third_zone_ships_its_own_goods_and_imports_for_its_buyers():
    """E may not pass A's product on to U: it sells U its own (less than U wants, so U's
    price rises above the cost of re-export) and its buyers import A's at the world
    price, as before the restriction."""
    offers, bids, links = three_zones_with_a_ban(0.05)
    open_result = settle(offers, bids, links)
    result = settle(offers, bids, _no_re_export(links))
    price, flow = result.price[0], result.flow[0]
    assert flow[0, 2] == 0 and flow[1, 2] > 0 and flow[0, 1] > 0
    assert flow[1, 2] <= result.sold[0, 1] * (1 + 1e-9)  # E ships U only what its sellers sold
    assert price[2] > open_result.price[0, 2] * 1.01 and price[2] > price[0] * 1.05**2
    assert price[1] == pytest.approx(price[0] * 1.05, rel=1e-9)  # E's buyers pay the world price
    assert result.bought[0, 2] < open_result.bought[0, 2]
    assert_books_balance(offers, bids, links, result)


@settings(max_examples=40, deadline=None)
@given(seeds, st.booleans())
def test_under_a_re_export_restriction_the_books_balance(seed, quotas):
    """Random markets with bans and no re-export: the books balance, no banned link
    carries anything and every price is finite."""
    offers, bids, links = random_market(np.random.default_rng(seed), quotas=quotas)
    links = _no_re_export(links)
    result = clear(offers, bids, links)
    assert_books_balance(offers, bids, links, result)
    assert np.isfinite(result.price).all()


@pytest.mark.xfail(strict=True, reason=(
    "known defect (Export controls v2, left for a later stop): where the world hub's root lies on a step of "
    "the zones' curves (buyers at their choke), a supplier's position is interpolated between an importer's "
    "at one end and a shipper's to the restricted hub at the other, so it can pass on part of its imports "
    "(random markets, seeds 62, 160 and 184 of numpy's default_rng: up to 4.7 t)"))
@settings(max_examples=40, deadline=None)
@given(seeds, st.booleans())
@example(62, False)
def test_under_a_re_export_restriction_no_zone_passes_on_what_it_imported(seed, quotas):
    """What any zone ships to the banned destinations is at most what its own sellers sold."""
    offers, bids, links = random_market(np.random.default_rng(seed), quotas=quotas)
    links = _no_re_export(links)
    result = clear(offers, bids, links)
    restricted = (links.banned & ~np.eye(links.banned.shape[1], dtype=bool)[None]).any(axis=1)  # [P, Z]
    to_restricted = np.where(restricted[:, None, :], result.flow, 0.0).sum(axis=2)  # [P, Z]
    scale = offers.stock.sum(axis=1, keepdims=True) + 1.0
    assert (to_restricted <= result.sold + 1e-9 * scale).all()


# 4. A zone that only sells posts the price it sold at


@settings(max_examples=20, deadline=None)
@given(st.floats(0.0, 0.2), st.floats(0.0, 1.0))
def test_a_zone_that_only_sells_posts_the_price_it_sold_at(trade_cost, keep_share):
    offers, bids, links = one_product([60.0, 5.0], [0.0, 80.0], keep=[60.0 * keep_share, 0.0],
                                      cost=2.0, trade_cost=trade_cost)
    result = settle(offers, bids, links)
    assert result.sold[0, 0] > 0 and result.sold[0, 0] == pytest.approx(result.flow[0, 0, 1], rel=1e-12)
    assert result.price[0, 0] * (1 + trade_cost) == pytest.approx(result.price[0, 1], rel=1e-3)


# 5. A binding export cap separates prices


def test_a_binding_export_cap_fills_and_separates_the_exporters_price():
    offers, bids, links = one_product([200.0, 5.0], [30.0, 80.0], keep=[20.0, 0.0], trade_cost=0.05,
                                      export_cap=[15.0, INF])
    result = clear(offers, bids, links)
    assert result.flow[0, 0, 1] == pytest.approx(15.0, rel=1e-9)
    assert result.price[0, 0] < result.price[0, 1] / 1.05 * (1 - 1e-2)
    assert result.border_price[0, 0] * 1.05 == pytest.approx(result.price[0, 1], rel=1e-3)  # the quota rent


def test_an_export_tax_widens_the_gap_by_the_tax():
    offers, bids, links = one_product([100.0, 10.0], [50.0, 60.0], keep=[50.0, 5.0], trade_cost=0.1,
                                      export_tax=[0.25, 0.0])
    result = clear(offers, bids, links)
    assert result.flow[0, 0, 1] > 0
    assert result.price[0, 1] == pytest.approx(result.price[0, 0] * 1.1 * 1.25, rel=1e-9)


def test_a_ban_to_every_destination_is_an_export_cap_of_zero():
    banned = np.zeros((3, 3), dtype=bool)
    banned[0, 1:] = True
    ban = clear(*one_product([200.0, 20.0, 5.0], [40.0, 30.0, 80.0], keep=[20.0, 10.0, 2.0], banned=banned))
    cap = clear(*one_product([200.0, 20.0, 5.0], [40.0, 30.0, 80.0], keep=[20.0, 10.0, 2.0],
                             export_cap=[0.0, INF, INF]))
    for name in ("flow", "price", "sold", "bought", "unserved"):
        assert np.array_equal(getattr(ban, name), getattr(cap, name))
    assert (ban.flow[0, 0] == 0).all()


# 6. Willingness to pay


def test_a_short_zone_prices_where_want_meets_what_there_is():
    offers, bids, links = one_product([30.0], [50.0], cost=1.0, planning=10.0)
    result = clear(offers, bids, links)
    price = result.price[0, 0]
    assert price == pytest.approx(10.0 * (30.0 / 50.0) ** (1 / ELASTICITY), rel=1e-9)
    assert result.bought[0, 0] == pytest.approx(bids.want(result.price)[0, 0], rel=1e-12)
    assert result.unserved[0, 0] == 0


def test_a_large_deficit_lifts_the_price_to_the_choke_and_leaves_a_shortfall():
    offers, bids, links = one_product([5.0], [50.0], cost=1.0, planning=10.0)
    result = clear(offers, bids, links)
    assert result.price[0, 0] == CHOKE * 10.0
    assert result.bought[0, 0] == pytest.approx(5.0, rel=1e-12)
    assert result.unserved[0, 0] == pytest.approx(50.0 * CHOKE**ELASTICITY - 5.0, rel=1e-12)


# 7. Thin market


@settings(max_examples=40, deadline=None)
@given(st.floats(1.0, 50.0), st.floats(1.1, 4.0), st.floats(1.0, 100.0))
def test_a_thin_stock_sells_nothing_below_its_hold_back_threshold(stock, keep_ratio, quantity):
    offers, bids, links = one_product([stock], [quantity], keep=stock * keep_ratio, expected=10.0,
                                      planning=10.0, cost=1.0, choke=10.0)
    result = clear(offers, bids, links)
    threshold = 10.0 * keep_ratio ** (1 / HOLDBACK)
    if threshold < 100.0:  # below the choke price
        assert result.price[0, 0] >= threshold * (1 - 1e-12)
    assert_books_balance(offers, bids, links, result)


def test_a_thin_market_can_double_in_a_month():
    offers, bids, links = one_product([10.0], [40.0], keep=30.0, expected=10.0, planning=10.0)
    assert clear(offers, bids, links).price[0, 0] >= 2 * 10.0


# 8. A small deficit settles where elastic demand closes it


def test_a_small_deficit_settles_where_elastic_demand_closes_it():
    offers, bids, links = one_product([95.0], [100.0], planning=20.0, cost=1.0)
    price = settle(offers, bids, links, months=3).price[0, 0]
    assert price == pytest.approx(20.0 * 0.95 ** (1 / ELASTICITY), rel=1e-6)
    assert price < CHOKE * 20.0 / 2


# 9. Empty products and zones; nothing undefined


def test_an_empty_product_has_no_trade_and_keeps_its_planning_price():
    offers, bids, links = one_product([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], planning=[7.0, 8.0, 9.0])
    result = settle(offers, bids, links, months=3)
    assert (result.flow == 0).all() and (result.sold == 0).all() and (result.bought == 0).all()
    assert result.price[0] == pytest.approx([7.0, 8.0, 9.0])


@settings(max_examples=40, deadline=None)
@given(seeds, st.booleans())
def test_every_output_is_finite_and_the_books_balance(seed, quotas):
    rng = np.random.default_rng(seed)
    offers, bids, links = random_market(rng, n_products=4, n_zones=5, quotas=quotas, zeros=True)
    result = None
    for _ in range(3):
        result = clear(offers, bids, links, result)
        for value in (result.flow, result.price, result.sold, result.bought, result.unserved, result.border_price):
            assert np.isfinite(value).all()
        assert (result.price >= PRICE_FLOOR).all()
        assert_books_balance(offers, bids, links, result)


# 10. Determinism


def test_the_same_inputs_give_bit_identical_results():
    offers, bids, links = random_market(np.random.default_rng(11), quotas=True, zeros=True)
    first, second = settle(offers, bids, links, months=3), settle(offers, bids, links, months=3)
    for name in ("flow", "price", "sold", "bought", "unserved", "border_price"):
        assert np.array_equal(getattr(first, name), getattr(second, name))


def test_a_zone_without_buyers_has_no_undefined_want_at_an_extreme_price():
    # 0 * inf: a steep bid curve far below its planning price, with nobody bidding
    offers, bids, links = one_product([10.0], [0.0], cost=0.0, planning=1e5, expected=1e5, elasticity=-30.0)
    result = clear(offers, bids, links)
    for value in (result.price, result.sold, result.bought, result.unserved):
        assert np.isfinite(value).all()
    assert result.bought[0, 0] == 0


def test_a_ban_elsewhere_leaves_a_zone_under_an_unused_export_cap_free_to_import():
    """Zone 1 may not ship to zone 2; zone 0, under an export cap it never reaches and with
    no stock of its own, still buys at the world hub (a review found it bought nothing)."""
    banned = np.zeros((3, 3), dtype=bool)
    banned[1, 2] = True
    offers, bids, links = one_product([0.0, 500.0, 5.0], [50.0, 10.0, 50.0], banned=banned,
                                      export_cap=[1e6, INF, INF])
    result = settle(offers, bids, links)
    assert result.flow[0, 1, 0] > 0  # zone 0 imports from zone 1
    assert result.price[0, 0] <= result.price[0, 1] * 1.05 * (1 + 1e-9)
    assert result.flow[0, 1, 2] == 0
    assert_books_balance(offers, bids, links, result)


def test_chained_bans_ship_nothing_on_a_banned_link():
    """Zone 0 may not ship to zone 1, and zone 1 not to zone 2: both 1 and 2 buy through
    the restricted hub, and zone 1 still sends nothing to zone 2 (a review found it did)."""
    banned = np.zeros((3, 3), dtype=bool)
    banned[0, 1] = banned[1, 2] = True
    offers, bids, links = one_product([10.0, 200.0, 5.0], [30.0, 20.0, 80.0], banned=banned)
    result = settle(offers, bids, links)
    assert result.flow[0, 0, 1] == 0 and result.flow[0, 1, 2] == 0
    assert_books_balance(offers, bids, links, result)


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_random_chained_bans_never_use_a_banned_link(seed):
    rng = np.random.default_rng(seed)
    offers, bids, links = random_market(rng, n_zones=5)
    banned = links.banned | (rng.random(links.banned.shape) < 0.15)
    links = dataclasses.replace(links, banned=banned)
    result = settle(offers, bids, links, months=3)
    assert_books_balance(offers, bids, links, result)


def test_a_glut_at_the_price_floor_stays_with_its_sellers():
    """Sellers at zero cost offer more than buyers take even at the price floor: importers
    get what they want there, no more (a review found up to twice as much)."""
    banned = np.zeros((3, 3), dtype=bool)
    banned[1, 0] = True
    offers, bids, links = one_product([1000.0, 0.0, 500.0], [0.1, 0.0, 100.0], banned=banned,
                                      cost=[1.0, 1.0, 0.0], elasticity=-0.05)
    result = clear(offers, bids, links)
    assert (result.bought <= bids.want(result.price) * (1 + 1e-12)).all()
    assert_books_balance(offers, bids, links, result)


@settings(max_examples=40, deadline=None)
@given(seeds, st.floats(-0.1, -0.01))
def test_near_zero_elasticity_with_free_sellers_never_overfills_a_buyer(seed, elasticity):
    rng = np.random.default_rng(seed)
    offers, bids, links = random_market(rng, zeros=True)
    offers = dataclasses.replace(offers, cost=np.where(rng.random(offers.cost.shape) < 0.5, 0.0, offers.cost))
    bids = dataclasses.replace(bids, elasticity=elasticity)
    assert_books_balance(offers, bids, links, clear(offers, bids, links))
