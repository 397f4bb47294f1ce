"""One clearing kernel for every product: zone prices and inter-zone trade, one month.

Version 2 of the market core (docs/DESIGN §8, issue 10 items 4 and 5). Pure numpy, no
Mesa: arrays in, arrays out. Shapes use P products and Z zones (regions); quantities are
t per month, prices USD/kg of product, trade costs ad valorem fractions.

**Curves.** Every zone's sellers and buyers are aggregated into one offer curve and one
bid curve per product (``p`` the zone price, USD/kg):

    offer(p) = 0                                                         if p < cost
             = clip(stock - keep * (p / expected) ** -holdback, 0, stock)    otherwise
    want(p)  = quantity * (p / planning) ** elasticity     if p <= choke * planning, else 0

Sellers sell nothing below their marginal cost (the cost floor) and hold back inventory
when the price is below what they expect: a seller whose stock is below what it wants
to keep sells nothing until the price reaches ``expected * (keep / stock) ** (1 /
holdback)``, so a thin market can double in a month. The zone's buyers pay at most the
choke price ``choke * planning`` this month; at that price what there is is shared and
the rest goes unserved. A small deficit therefore settles where elastic demand closes
it; a large one lifts the price to the choke and leaves a shortfall.

**Trade.** Traders buy where product is cheap and sell where it is dear through a world
market (a hub): a shipment a -> b pays the product's ad valorem trade cost ``tau``, half
(in log terms) on each leg, compounded with a's export tax. So a zone buys from the hub
at ``w * s`` and sells to it at ``w / (s * (1 + tax_a))``, ``s = sqrt(1 + tau)``, with
``w`` the hub price, and every pair of zones pays ``(1 + tau) (1 + tax_a)`` a -> b, as a
direct shipment would. At the hub price that clears the world, every zone either
imports at its buying price, exports at its netback (the price it sold at), or clears
alone in between, so for every pair ``p_b <= p_a * (1 + tau) * (1 + tax_a)``. An export
cap (a quota) stops a zone's exports at the cap; its price falls below its netback and
the difference is the quota rent (``Clearing.border_price`` is the netback). This is the
spatial price equilibrium of Samuelson (1952) and Takayama and Judge (1971) for a
network whose trade costs compose through a hub; it is reached within the month, so
after a shock prices jump to where supply meets demand instead of climbing at a clip.

**Bans.** Where an origin may not ship to some destinations (``Links.banned``), those
destinations buy through a second hub, supplied by every zone but the banned origins.
Traders in open zones re-export to it what they bought at the world hub, paying a
second shipment, so the restricted hub's price ``w_r`` lies between ``w`` and
``w * s**2 * (1 + tax)``: a banned destination pays at most an open zone's price times
``1 + tau`` (a US price at most the EU's) through the ban. Several banned
origin-destination sets in one product are merged into one (the union of banned
origins for the union of destinations), the conservative reading. Zones under an
export cap do not re-export.

Every zone's books balance exactly (``sold + imports == bought + exports``, to rounding),
``0 <= sold <= stock`` and ``bought <= want(price)``; where a curve steps (a cost floor,
a choke price) the balance falls on the step and the quantities split along it.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

# No price falls below this (USD/kg): far below any product's cost.
PRICE_FLOOR = 1e-6
_LN_FLOOR = float(np.log(PRICE_FLOOR))
_HEADROOM = 1.0  # log price above the highest choke price that brackets every root
_TOLERANCE = 3e-12  # width of a root's bracket in log price
_MAX_ITERATIONS = 200  # a bracket narrows at least by half every 4th iteration: never reached
_STEP = 1e-12  # log price either side of a step of the curves where a root is looked for


@dataclass(frozen=True)
class Offers:
    """Sellers aggregated per zone, [P, Z] each; ``holdback`` > 0 is the inventory price response.

    ``stock`` t on hand (>= 0), ``keep`` t sellers want to keep at their expected price
    (>= 0), ``expected`` USD/kg sellers' expected price (> 0), ``cost`` USD/kg marginal
    cost below which they sell nothing (>= 0).
    """

    stock: np.ndarray
    keep: np.ndarray
    expected: np.ndarray
    cost: np.ndarray
    holdback: float

    def offer(self, price: np.ndarray) -> np.ndarray:
        """t sellers sell at ``price`` [P, Z] USD/kg: the offer curve."""
        with np.errstate(divide="ignore", over="ignore"):
            held = self.keep * (price / self.expected) ** -self.holdback
        return np.where(price < self.cost, 0.0, np.clip(self.stock - held, 0.0, self.stock))


@dataclass(frozen=True)
class Bids:
    """Buyers aggregated per zone: ``quantity`` [P, Z] t wanted at ``planning`` [P, Z] USD/kg.

    ``planning`` (> 0) is the price buyers planned at (last month's zone price),
    ``elasticity`` (< 0) the price elasticity of the bid curve, ``choke`` (> 0, float or
    [P, Z]) the factor over ``planning`` above which the zone's buyers do not pay this month.
    """

    quantity: np.ndarray
    planning: np.ndarray
    elasticity: float
    choke: float | np.ndarray

    def want(self, price: np.ndarray) -> np.ndarray:
        """t buyers want at ``price`` [P, Z] USD/kg, up to the choke price (0 above it)."""
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            wanted = self.quantity * (price / self.planning) ** self.elasticity
        return np.where((self.quantity > 0) & (price <= self.choke_price * (1 + 1e-12)), wanted, 0.0)

    @property
    def choke_price(self) -> np.ndarray:
        """[P, Z] USD/kg: the most the zone's buyers pay this month."""
        return self.choke * self.planning


@dataclass(frozen=True)
class Links:
    """How product may move between zones.

    ``trade_cost`` [P] ad valorem fraction of the origin price paid for a shipment from
    one zone to another; ``export_tax`` [P, Z] ad valorem tax on a zone's exports,
    compounded with it; ``banned`` [P, Z, Z] bool, True where origin a (axis 1) may not
    ship to destination b (axis 2); ``export_cap`` [P, Z] t a zone may export this month
    (an export quota; inf for none, 0 for an embargo).
    """

    trade_cost: np.ndarray
    export_tax: np.ndarray
    banned: np.ndarray
    export_cap: np.ndarray


@dataclass(frozen=True)
class Clearing:
    """One month's trade and prices in every product, [P, Z] unless said.

    ``flow`` [P, Z, Z] t shipped a -> b (>= 0, diagonal 0; a re-export shows as the
    import and the export of the zone that re-exports); ``price`` USD/kg the zone price,
    at which its sellers sold and its buyers bought; ``sold`` t taken from the zone's
    sellers; ``bought`` t delivered to its buyers; ``unserved`` t its buyers wanted at
    their choke price and did not get (zero below it); ``border_price`` USD/kg what
    traders pay for a kg leaving the zone (its netback: its price, plus the quota rent
    where its export cap binds); ``hub`` [2, P] log USD/kg the world hub's and the
    restricted hub's prices (the next month's start). For every product and zone
    ``sold + imports == bought + exports``.
    """

    flow: np.ndarray
    price: np.ndarray
    sold: np.ndarray
    bought: np.ndarray
    unserved: np.ndarray
    border_price: np.ndarray
    hub: np.ndarray

    @property
    def exports(self) -> np.ndarray:
        """t leaving each zone, re-exports included."""
        return self.flow.sum(axis=2)

    @property
    def imports(self) -> np.ndarray:
        """t arriving in each zone."""
        return self.flow.sum(axis=1)


@dataclass(frozen=True)
class _Curves:
    """The zones' curves in log price ``y = ln p``, [P, Z]."""

    stock: np.ndarray
    elasticity: float
    holdback: float
    want_log: np.ndarray  # ln want = elasticity * y + want_log below the choke
    held_log: np.ndarray  # ln held = -holdback * y + held_log
    y_cost: np.ndarray
    y_choke: np.ndarray
    y_plan: np.ndarray
    y_sell: np.ndarray  # the lowest log price at which sellers sell: their reservation price
    size: np.ndarray  # [P] t of stock and bids in all zones: the scale of a balance

    def excess(self, y: np.ndarray) -> np.ndarray:
        """want - offer at log prices ``y``."""
        want, offer = self.want_offer(y)
        return want - offer

    def want_offer(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        want = np.where(y <= self.y_choke, np.exp(self.elasticity * y + self.want_log), 0.0)
        held = np.exp(-self.holdback * y + self.held_log)
        offer = np.where(y >= self.y_cost, np.minimum(np.maximum(self.stock - held, 0.0), self.stock), 0.0)
        return want, offer


def _curves(offers: Offers, bids: Bids) -> _Curves:
    e, h = float(bids.elasticity), float(offers.holdback)
    y_plan = np.log(bids.planning)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_exp = np.log(offers.expected)
        want_log = np.log(bids.quantity) - e * y_plan
        held_log = np.log(offers.keep) + h * y_exp
        y_cost = np.maximum(np.log(offers.cost), _LN_FLOOR)
        y_keep = np.where(offers.stock > 0, y_exp + np.log(offers.keep / offers.stock) / h, np.inf)
    return _Curves(
        stock=offers.stock, elasticity=e, holdback=h, want_log=want_log, held_log=held_log, y_cost=y_cost,
        y_choke=y_plan + np.log(bids.choke), y_plan=y_plan, y_sell=np.maximum(y_cost, y_keep),
        size=offers.stock.sum(axis=1) + bids.quantity.sum(axis=1),
    )


def _stepped_root(f, many, lo: np.ndarray, hi: np.ndarray, steps: np.ndarray, scale: np.ndarray):
    """``_root`` of ``f`` where every step of ``f`` is among ``steps`` [..., K].

    ``many(y)`` evaluates ``f`` at ``y`` [..., M] at once. ``f`` is evaluated just below
    and above every step and at the ends; the first of these points where it is not
    positive and the one before it bracket the root, which is then either on a step
    (bracket of width 2e-12) or on a smooth stretch, where regula falsi converges
    superlinearly.
    """
    points = np.concatenate([lo[..., None], hi[..., None], steps - _STEP, steps + _STEP], axis=-1)
    points = np.sort(np.minimum(np.maximum(points, lo[..., None]), hi[..., None]), axis=-1)
    values = many(points)
    last = points.shape[-1] - 1
    first = np.where((values <= 0).any(axis=-1), np.argmax(values <= 0, axis=-1), last)
    before = np.maximum(first - 1, 0)

    def take(a, i):
        return np.take_along_axis(a, i[..., None], axis=-1)[..., 0]

    return _root(f, take(points, before), take(points, first), take(values, before), take(values, first),
                 bisect=False, scale=scale)


def _root(f, lo: np.ndarray, hi: np.ndarray, f_lo=None, f_hi=None, bisect: bool = True, scale=0.0):
    """Bracket of the root of a non-increasing function ``f`` on [lo, hi], elementwise.

    Returns ``(lo, hi, f(lo), f(hi))`` with ``f(lo) >= 0 >= f(hi)`` and ``hi - lo <=
    _TOLERANCE`` (or an end where ``f`` is 0); where ``f(lo) < 0`` the root is ``lo``
    (returned as both ends), where ``f(hi) > 0`` it is ``hi``; a balance within
    ``1e-15 * scale`` of 0 is taken as the root. Illinois regula falsi,
    with a bisection every 4th iteration (with ``bisect``; else only after 24) so that
    steps (where ``f`` jumps over 0) are found as fast as smooth roots are. ``f_lo``,
    ``f_hi``: ``f`` at the ends, where known.
    """
    f_lo = f(lo) if f_lo is None else f_lo
    f_hi = f(hi) if f_hi is None else f_hi
    below, above = f_lo < 0, f_hi > 0
    hi, f_hi = np.where(below, lo, hi), np.where(below, f_lo, f_hi)
    lo, f_lo = np.where(above, hi, lo), np.where(above, f_hi, f_lo)
    small = 1e-15 * np.asarray(scale)  # a balance this close to 0 is rounding
    w_lo, w_hi = f_lo.copy(), f_hi.copy()  # the Illinois weights
    side = np.zeros(lo.shape)
    for n in range(_MAX_ITERATIONS):
        active = (hi - lo > _TOLERANCE) & (f_lo > small) & (f_hi < -small)
        if not active.any():
            break
        if n % 4 == 3 and (bisect or n > 24):
            x = 0.5 * (lo + hi)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = lo + (hi - lo) * w_lo / (w_lo - w_hi)
            x = np.where(np.isfinite(x) & (x > lo) & (x < hi), x, 0.5 * (lo + hi))
        x = np.where(active, x, lo)
        f_x = f(x)
        right = active & (f_x >= 0)  # the root is right of x: x is the new lo
        left = active & ~right
        lo, f_lo = np.where(right, x, lo), np.where(right, f_x, f_lo)
        hi, f_hi = np.where(left, x, hi), np.where(left, f_x, f_hi)
        w_hi = np.where(left, f_x, np.where(right & (side > 0), 0.5 * w_hi, w_hi))
        w_lo = np.where(right, f_x, np.where(left & (side < 0), 0.5 * w_lo, w_lo))
        side = np.where(right, 1.0, np.where(left, -1.0, side))
    # An end whose balance is rounding is the root: the bracket closes on it.
    at_lo, at_hi = (f_lo <= small) & (hi > lo), (f_hi >= -small) & (hi > lo) & ~((f_lo <= small) & (hi > lo))
    hi, f_hi = np.where(at_lo, lo, hi), np.where(at_lo, f_lo, f_hi)
    lo, f_lo = np.where(at_hi, hi, lo), np.where(at_hi, f_hi, f_lo)
    return lo, hi, f_lo, f_hi


@dataclass(frozen=True)
class _Access:
    """Each zone's hub prices in log terms, [P, Z]: where it buys and where it sells."""

    buy_shift: np.ndarray  # ln s: a zone's buying price is its hub's price + buy_shift
    sell_shift: np.ndarray  # ln s + ln(1 + tax): its netback is its hub's price - sell_shift
    can_sell: np.ndarray
    export_cap: np.ndarray
    restricted: np.ndarray  # [P, Z] the zone buys through the restricted hub
    banned_origin: np.ndarray  # [P, Z] the zone may not ship to some zone: it sells only to the world hub
    supplies_restricted: np.ndarray  # [P, Z] the zone may sell to the restricted hub
    relays: np.ndarray  # [P, Z] the zone may re-export to it what it bought at the world hub
    relay_shift: np.ndarray  # [P, 1] the restricted hub's price is at most the world's + this


def _access(links: Links, offers: Offers) -> _Access:
    n_zones = offers.stock.shape[1]
    half = 0.5 * np.log1p(np.asarray(links.trade_cost, dtype=float))[:, None] * np.ones((1, n_zones))
    sell = half + np.log1p(links.export_tax)
    others = ~np.eye(n_zones, dtype=bool)[None]
    banned = links.banned & others
    # An origin banned from every other zone is an embargo: an export cap of 0.
    embargo = (banned | ~others).all(axis=2)
    cap = np.where(embargo, 0.0, links.export_cap)
    banned = banned & ~embargo[:, :, None]
    restricted = banned.any(axis=1)  # [P, Z] destinations some origin may not ship to
    banned_origin = banned.any(axis=2)
    supplies = ~banned_origin & ~restricted
    relays = supplies & ~np.isfinite(cap)  # zones under an export cap do not re-export
    relay = np.where(relays, 2 * half + np.log1p(links.export_tax), np.inf).min(axis=1, keepdims=True)
    return _Access(
        buy_shift=half, sell_shift=sell, can_sell=cap > 0, export_cap=cap,
        restricted=restricted, banned_origin=banned_origin, supplies_restricted=supplies, relays=relays,
        relay_shift=relay,
    )


def _expand(table, axis: int):
    """``table`` (a ``_Curves`` or ``_Access``) with a new axis in every [P, Z] array."""
    return dataclasses.replace(table, **{
        f.name: np.expand_dims(v, axis) for f in dataclasses.fields(table)
        if isinstance(v := getattr(table, f.name), np.ndarray) and v.ndim == 2
    })


def _positions(c: _Curves, a: _Access, y_world: np.ndarray, y_restricted: np.ndarray):
    """Zones' net imports [P, Z] t at hub log prices ``y_world``, ``y_restricted`` [P, 1].

    A zone buys from its hub at the hub's price + ``buy_shift`` and sells at the best
    netback it may reach (its exports capped); in between it clears alone (0). Also
    returns the buying and netback log prices.
    """
    buy = np.where(a.restricted, y_restricted, y_world) + a.buy_shift
    # y_restricted >= y_world; a banned origin sells only to the world hub, even from a restricted zone
    best = np.where((a.supplies_restricted | a.restricted) & ~a.banned_origin, y_restricted, y_world)
    netback = best - a.sell_shift
    d_buy, d_sell = c.excess(buy), c.excess(netback)
    selling = a.can_sell & (d_sell < 0)
    # A zone whose netback passes its buying price (a supplier of the restricted hub that
    # may not re-export) sells there what it has to spare; one with nothing to spare
    # there buys at its buying price what its own buyers want.
    net = np.where(selling, np.maximum(d_sell, -a.export_cap), np.maximum(d_buy, 0.0))
    return net, buy, netback


def _restricted_balance(c, a, y_world, y_restricted):
    """[P] net imports of the restricted hub's zones less what its suppliers export to it."""
    net = _positions(c, a, y_world, y_restricted)[0]
    own = np.where(a.restricted & ~(a.banned_origin & (net < 0)), net, 0.0).sum(axis=1)
    supplied = np.where(a.supplies_restricted, np.minimum(net, 0.0), 0.0).sum(axis=1)
    return own + supplied


def _restricted_price(c, a, y_world, any_restricted):
    """[P, 1] the restricted hub's log price at world log price ``y_world`` [P, 1]: where
    its zones' net imports meet its suppliers' exports, at most the world's plus the
    cheapest re-export (where re-exports fill the rest, ``_flows``)."""
    if not any_restricted.any():
        return y_world

    def balance(y):
        return _restricted_balance(c, a, y_world, y[:, None])

    top = c.y_choke.max(axis=1) + _HEADROOM
    alone = ~np.isfinite(a.relay_shift[:, 0])
    lo = y_world[:, 0]  # below it the restricted zones' surplus goes to the world hub
    hi = np.where(alone, np.maximum(top, y_world[:, 0]), (y_world + a.relay_shift)[:, 0])
    lo, hi, _, _ = _root(balance, lo, hi)
    return np.where(any_restricted, hi, y_world[:, 0])[:, None]


def _world_price(c: _Curves, a: _Access, start: np.ndarray):
    """Bracket [P] of the world hub's log price where the world's net imports are 0."""
    any_restricted = a.restricted.any(axis=1)
    top = c.y_choke.max(axis=1) + _HEADROOM
    floor = np.full(top.shape, _LN_FLOOR)

    def world(y):
        y = y[:, None]
        # Re-exports move product between zones without changing their net positions.
        return _positions(c, a, y, _restricted_price(c, a, y, any_restricted))[0].sum(axis=1)

    if any_restricted.any():
        return _root(world, floor, top) if start is None else _root(world, *_bracket(world, start, floor, top))
    wide_c, wide_a = _expand(c, 1), _expand(a, 1)  # zones on the last axis, points on the middle one

    def many(y):
        return _positions(wide_c, wide_a, y[:, :, None], y[:, :, None])[0].sum(axis=2)

    steps = np.concatenate([c.y_cost - a.buy_shift, c.y_choke - a.buy_shift,
                            c.y_cost + a.sell_shift, c.y_choke + a.sell_shift], axis=1)
    return _stepped_root(world, many, floor, top, steps, c.size)


def _bracket(f, start, floor, top):
    """A bracket around ``start`` [P] (last month's price), widened until it holds the root."""
    width = np.full(start.shape, 0.05)
    lo, hi = np.maximum(start - width, floor), np.minimum(start + width, top)
    there = f(start) == 0  # a flat stretch (no trade either way): stay where last month was
    lo, hi = np.where(there, start, lo), np.where(there, start, hi)
    for _ in range(8):
        f_lo, f_hi = f(lo), f(hi)
        short = (f_lo < 0) & (lo > floor)
        long = (f_hi > 0) & (hi < top)
        if not (short.any() or long.any()):
            break
        width = 4 * width
        hi = np.where(short, lo, hi)  # the root is below lo
        lo = np.where(long, hi, lo)
        lo = np.where(short, np.maximum(lo - width, floor), lo)
        hi = np.where(long, np.minimum(hi + width, top), hi)
    else:
        lo, hi = floor, top
    return lo, hi


def _split(net_lo, net_hi, f_lo, f_hi):
    """Net positions [P, Z] on the step between two bracket ends, summing to 0 exactly."""
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(f_lo > f_hi, f_lo / (f_lo - f_hi), 0.0)
    net = net_lo + theta[:, None] * (net_hi - net_lo)
    residual = net.sum(axis=1, keepdims=True)
    return net - residual * _share_of(np.where((net < 0) == (residual < 0), net, 0.0))


def _share_of(net):
    """Each zone's share of the product's absolute positions ``net`` [P, Z]: where a
    residue goes. ``_split`` gives an excess of exports (a glut even at the price floor)
    back to the exporters and a shortfall of exports to the importers, so no zone gets
    more than it wants."""
    total = np.abs(net).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, np.abs(net) / np.where(total > 0, total, 1.0), 0.0)


def _clear_zones(c: _Curves, a: _Access, net, buy, netback, empty):
    """Each zone's log price and quantities given its net imports ``net`` [P, Z].

    The zone's price is where ``want - offer = net`` between its netback and its buying
    price (below its netback where its export cap binds; unbounded where it cannot
    trade); on a step of its curves the quantities split along the step.
    """
    top = c.y_choke.max(axis=1, keepdims=True) + _HEADROOM
    capped = a.can_sell & (net <= -a.export_cap * (1 - 1e-12)) & np.isfinite(a.export_cap)
    lower = np.where(a.can_sell & ~capped, netback, _LN_FLOOR)
    upper = np.where(capped, netback, buy)
    upper = np.maximum(upper, lower)
    # A position split along a hub's step may lie just outside the zone's bounds: its own
    # curves then price it.
    slack = 1e-9 * c.size[:, None]
    short = c.excess(lower) - net < -slack
    lower, upper = np.where(short, _LN_FLOOR, lower), np.where(short, lower, upper)
    over = c.excess(upper) - net > slack
    lower, upper = np.where(over, upper, lower), np.where(over, top, upper)
    wide = _expand(c, 2)
    lo, hi, g_lo, g_hi = _stepped_root(lambda y: c.excess(y) - net, lambda y: wide.excess(y) - net[..., None],
                                       lower, upper, np.stack([c.y_cost, c.y_choke], axis=-1), c.size[:, None])
    want_lo, offer_lo = c.want_offer(lo)
    want_hi, offer_hi = c.want_offer(hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(g_lo > g_hi, g_lo / (g_lo - g_hi), 0.0)
    bought = want_lo + theta * (want_hi - want_lo)
    y = np.where(g_lo == 0, lo, hi)
    # An exporter posts its netback, an importer its buying price, wherever its curves
    # allow (a seller who sells out clears at any price above its cost: it sold at this one).
    exports_at_netback = (net < 0) & a.can_sell & ~capped & ~short & ~over & (np.abs(c.excess(netback) - net) <= slack)
    imports_at_buy = (net > 0) & ~short & ~over & (np.abs(c.excess(buy) - net) <= slack)
    y = np.where(exports_at_netback, netback, np.where(imports_at_buy, buy, y))
    bought = np.where(exports_at_netback | imports_at_buy, c.want_offer(y)[0], bought)
    # Zones without buyers and without trade post their sellers' reservation price; empty
    # ones their buyers' planning price.
    bidding = np.exp(c.want_log) > 0
    idle = ~bidding & (net == 0)
    y = np.where(idle, np.where(c.stock > 0, c.y_sell, np.minimum(np.maximum(c.y_sell, lower), upper)), y)
    y = np.where(empty, c.y_plan, y)
    # On a step of the curves the price is the step's: the sellers' cost, the buyers' choke.
    on_cost = ~idle & ~empty & (c.stock > 0) & (lo <= c.y_cost) & (hi >= c.y_cost)
    y = np.where(on_cost, c.y_cost, y)
    y = np.where(bidding & (lo <= c.y_choke) & (hi > c.y_choke), c.y_choke, y)
    y = np.minimum(np.maximum(y, _LN_FLOOR), top)
    return y, bought, hi > c.y_choke, on_cost & (y == c.y_cost)


def _flows(a: _Access, net: np.ndarray) -> np.ndarray:
    """[P, Z, Z] t a -> b from the zones' net positions [P, Z] (summing to 0 per product).

    The restricted hub's zones import first from each other's exports, then from its
    suppliers, then from re-exports: what is still missing is bought at the world hub by
    the open zones with the lowest second-shipment cost and shipped on. Every hub shares
    its exports over its imports in proportion (``_pool``).
    """
    exports, imports = np.maximum(-net, 0.0), np.maximum(net, 0.0)
    r_imports = np.where(a.restricted, imports, 0.0)
    need = r_imports.sum(axis=1)
    direct = np.zeros_like(net)
    for sellers in (a.restricted & ~a.banned_origin, a.supplies_restricted):
        offered = np.where(sellers, exports, 0.0)
        total = offered.sum(axis=1)
        take = np.minimum(need, total)
        with np.errstate(divide="ignore", invalid="ignore"):
            direct += offered * np.where(total > 0, take / np.where(total > 0, total, 1.0), 0.0)[:, None]
        need = need - take
    cost = np.where(a.relays, a.buy_shift + a.sell_shift, np.inf)
    relayers = a.relays & (cost <= cost.min(axis=1, keepdims=True) + 1e-15)
    relay_out = need[:, None] * relayers / np.maximum(relayers.sum(axis=1, keepdims=True), 1)
    flow = _pool(exports - direct, np.where(a.restricted, 0.0, imports) + relay_out)
    flow += _pool(direct + relay_out, r_imports)
    n = net.shape[1]
    flow[:, np.arange(n), np.arange(n)] = 0.0
    return flow


def _pool(out: np.ndarray, into: np.ndarray) -> np.ndarray:
    """[P, Z, Z] a pool's deliveries: exporters' ``out`` over importers' ``into`` [P, Z] in
    proportion, the larger side cut to the smaller (they differ only by rounding, or
    where a restricted hub without re-exporters cannot be served in full)."""
    volume = np.minimum(out.sum(axis=1, keepdims=True), into.sum(axis=1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        share_out = np.where(volume > 0, out / out.sum(axis=1, keepdims=True), 0.0)
        share_in = np.where(volume > 0, into / into.sum(axis=1, keepdims=True), 0.0)
    return (volume * share_out)[:, :, None] * share_in[:, None, :]


def clear(offers: Offers, bids: Bids, links: Links, previous: Clearing | None = None) -> Clearing:
    """Clear one month of every product in every zone: zone prices and inter-zone flows.

    Finds the world hub's price (and the restricted hub's, under a ban) at which the
    zones' net imports sum to zero (from the curves' steps; ``previous``, last month's
    clearing, is the start only for the nested search of a month with a ban);
    then clears every zone at its net imports. Shapes: see ``Offers``, ``Bids``,
    ``Links``; quantities t/month, prices USD/kg. Deterministic: the same inputs give
    bit-identical outputs.
    """
    c, a = _curves(offers, bids), _access(links, offers)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        start = None if previous is None else previous.hub[0]
        lo, hi, f_lo, f_hi = _world_price(c, a, start)
        any_restricted = a.restricted.any(axis=1)
        y_r_lo = _restricted_price(c, a, lo[:, None], any_restricted)
        y_r_hi = _restricted_price(c, a, hi[:, None], any_restricted)
        net_lo = _positions(c, a, lo[:, None], y_r_lo)[0]
        net_hi, buy, netback = _positions(c, a, hi[:, None], y_r_hi)
        net = _split(net_lo, net_hi, f_lo, f_hi)
        empty = (c.stock <= 0) & (np.exp(c.want_log) <= 0) & (np.abs(net).sum(axis=1, keepdims=True) <= 0)
        y, bought, at_choke, on_cost = _clear_zones(c, a, net, buy, netback, empty)
        flow = _flows(a, net)
    price = np.where(at_choke & (y == c.y_choke), bids.choke_price, np.where(on_cost, np.maximum(offers.cost, PRICE_FLOOR), np.exp(y)))
    bought = np.minimum(bought, bids.want(price))  # within the bracket's width: rounding
    net = flow.sum(axis=1) - flow.sum(axis=2)
    sold = np.minimum(np.maximum(bought - net, 0.0), offers.stock)
    bought = np.maximum(sold + net, 0.0)
    want_choke = np.where(bids.quantity > 0, bids.quantity * bids.choke**bids.elasticity, 0.0)
    unserved = np.where(at_choke, np.maximum(want_choke - bought, 0.0), 0.0)
    return Clearing(flow=flow, price=price, sold=sold, bought=bought, unserved=unserved,
                    border_price=np.maximum(np.exp(netback), price), hub=np.stack([hi, y_r_hi[:, 0]]))
