"""One clearing kernel for every product: zone prices and inter-zone trade, one month.

Version 2 of the market core (docs/DESIGN §8, issue 10 items 4 and 5). numpy, with the
root searches and the zones' clearing compiled with numba (``abm.hub_roots``); no Mesa: arrays in, arrays
out. Shapes use P products and Z zones (regions); quantities are t per month, prices
USD/kg of product, trade costs ad valorem fractions.

**Curves.** Every zone's sellers and buyers are aggregated into one offer curve and one
bid curve per product (``p`` the zone price, USD/kg):

    offer(p) = 0                                                         if p < cost
             = clip(stock - keep * (p / expected) ** -holdback, 0, stock)    otherwise
    want(p)  = quantity * (p / planning) ** elasticity - shift     if p <= choke * planning, else 0
             (at least 0; ``shift`` the licensed shipments the buyers already got)

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
export cap do not re-export, and under a re-export restriction (``Links.no_re_export``)
none does: the banned destinations then buy only from the zones that may sell to them.

Every zone's books balance exactly (``sold + imports == bought + exports``, to rounding),
``0 <= sold <= stock`` and ``bought <= want(price)``; where a curve steps (a cost floor,
a choke price) the balance falls on the step and the quantities split along it.
"""

from dataclasses import dataclass

import numpy as np

from abm import hub_roots
from abm.hub_roots import LN_FLOOR, PRICE_FLOOR


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
    [P, Z]) the factor over ``planning`` above which the zone's buyers do not pay this
    month; ``shift`` (>= 0, float or [P, Z]) t the buyers already got (licensed
    shipments), which the curve is net of: they want ``quantity (p / planning) **
    elasticity - shift`` (at least 0), so a shipment of what they would have bought
    leaves them at the price they would have paid.
    """

    quantity: np.ndarray
    planning: np.ndarray
    elasticity: float
    choke: float | np.ndarray
    shift: float | np.ndarray = 0.0

    def want(self, price: np.ndarray) -> np.ndarray:
        """t buyers want at ``price`` [P, Z] USD/kg, up to the choke price (0 above it)."""
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            wanted = np.maximum(self.quantity * (price / self.planning) ** self.elasticity - self.shift, 0.0)
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
    (an export quota; inf for none, 0 for an embargo); ``no_re_export`` [P] bool, True
    where no zone may re-export what it bought at the world hub to the banned
    destinations (a re-export restriction: they buy only from the zones not banned).
    """

    trade_cost: np.ndarray
    export_tax: np.ndarray
    banned: np.ndarray
    export_cap: np.ndarray
    no_re_export: np.ndarray | None = None


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
    ``sold + imports == bought + exports``. Where a product does not trade between
    zones at all, the world balance is zero over a stretch of hub prices and the hub
    price (so also ``border_price``) is any point of it that the search lands on.
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
    want_log: np.ndarray  # ln (want + shift) = elasticity * y + want_log below the choke
    want_shift: np.ndarray  # t the buyers already got
    held_log: np.ndarray  # ln held = -holdback * y + held_log
    y_cost: np.ndarray
    y_choke: np.ndarray
    y_plan: np.ndarray
    y_sell: np.ndarray  # the lowest log price at which sellers sell: their reservation price
    size: np.ndarray  # [P] t of stock and bids in all zones: the scale of a balance


def _curves(offers: Offers, bids: Bids) -> _Curves:
    e, h = float(bids.elasticity), float(offers.holdback)
    y_plan = np.log(bids.planning)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_exp = np.log(offers.expected)
        want_log = np.log(bids.quantity) - e * y_plan
        held_log = np.log(offers.keep) + h * y_exp
        y_cost = np.maximum(np.log(offers.cost), LN_FLOOR)
        y_keep = np.where(offers.stock > 0, y_exp + np.log(offers.keep / offers.stock) / h, np.inf)
    return _Curves(
        stock=offers.stock, elasticity=e, holdback=h, want_log=want_log,
        want_shift=np.broadcast_to(np.asarray(bids.shift, dtype=float), offers.stock.shape), held_log=held_log, y_cost=y_cost,
        y_choke=y_plan + np.log(bids.choke), y_plan=y_plan, y_sell=np.maximum(y_cost, y_keep),
        size=offers.stock.sum(axis=1) + bids.quantity.sum(axis=1),
    )


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
    if links.no_re_export is not None:
        relays &= ~links.no_re_export[:, None]
    relay = np.where(relays, 2 * half + np.log1p(links.export_tax), np.inf).min(axis=1, keepdims=True)
    return _Access(
        buy_shift=half, sell_shift=sell, can_sell=cap > 0, export_cap=cap,
        restricted=restricted, banned_origin=banned_origin, supplies_restricted=supplies, relays=relays,
        relay_shift=relay,
    )


def _pack(c: _Curves, a: _Access) -> np.ndarray:
    """[F, P, Z] the curves and the hub access in the layout of ``abm.hub_roots``."""
    fields = {
        hub_roots.STOCK: c.stock, hub_roots.WANT_LOG: c.want_log, hub_roots.HELD_LOG: c.held_log,
        hub_roots.Y_COST: c.y_cost, hub_roots.Y_CHOKE: c.y_choke, hub_roots.BUY_SHIFT: a.buy_shift,
        hub_roots.SELL_SHIFT: a.sell_shift, hub_roots.EXPORT_CAP: a.export_cap, hub_roots.CAN_SELL: a.can_sell,
        hub_roots.RESTRICTED: a.restricted, hub_roots.BANNED_ORIGIN: a.banned_origin,
        hub_roots.SUPPLIES_RESTRICTED: a.supplies_restricted, hub_roots.Y_SELL: c.y_sell, hub_roots.Y_PLAN: c.y_plan,
        hub_roots.WANT_SHIFT: c.want_shift,
    }
    packed = np.empty((hub_roots.FIELDS, *c.stock.shape))
    for field, values in fields.items():
        packed[field] = values
    return packed


def _split(net_lo, net_hi, f_lo, f_hi):
    """Net positions [P, Z] on the step between two bracket ends, summing to 0 exactly."""
    net = net_lo + _theta(f_lo, f_hi)[:, None] * (net_hi - net_lo)
    residual = net.sum(axis=1, keepdims=True)
    return net - residual * _share_of(np.where((net < 0) == (residual < 0), net, 0.0))


def _theta(f_lo, f_hi):
    """[P] where the root lies between two bracket ends, by their balances (0: at lo)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f_lo > f_hi, f_lo / (f_lo - f_hi), 0.0)


def _share_of(net):
    """Each zone's share of the product's absolute positions ``net`` [P, Z]: where a
    residue goes. ``_split`` gives an excess of exports (a glut even at the price floor)
    back to the exporters and a shortfall of exports to the importers, so no zone gets
    more than it wants."""
    total = np.abs(net).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, np.abs(net) / np.where(total > 0, total, 1.0), 0.0)


def _flows(a: _Access, net: np.ndarray, shipped: np.ndarray) -> np.ndarray:
    """[P, Z, Z] t a -> b from the zones' net positions [P, Z] (summing to 0 per product)
    and what suppliers of the restricted hub ship to it while importing (``shipped`` [P, Z]).

    The restricted hub's zones import first from each other's exports, then from its
    suppliers, then from re-exports: what is still missing is bought at the world hub by
    the open zones with the lowest second-shipment cost and shipped on. Every hub shares
    its exports over its imports in proportion (``_pool``).
    """
    at_world = net + shipped  # a zone's position at the world hub
    exports, imports = np.maximum(-at_world, 0.0) + shipped, np.maximum(at_world, 0.0)
    n = net.shape[1]
    if not a.restricted.any():  # no ban: one hub, whose exports go to its imports
        flow = _pool(exports, imports)
        flow[:, np.arange(n), np.arange(n)] = 0.0
        return flow
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
    clearing, is the start only for the nested search of a product under a ban);
    then clears every zone at its net imports. Shapes: see ``Offers``, ``Bids``,
    ``Links``; quantities t/month, prices USD/kg. Deterministic: the same inputs give
    bit-identical outputs.
    """
    c, a = _curves(offers, bids), _access(links, offers)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        packed, relay = _pack(c, a), a.relay_shift[:, 0]
        start = np.full(len(relay), np.nan) if previous is None else previous.hub[0]
        lo, hi, f_lo, f_hi = hub_roots.world_price(packed, c.elasticity, c.holdback, c.size, relay, start)
        r_lo = hub_roots.restricted_brackets(packed, c.elasticity, c.holdback, relay, lo)
        r_hi = hub_roots.restricted_brackets(packed, c.elasticity, c.holdback, relay, hi)
        net_lo, _, _, shipped_lo = hub_roots.positions(packed, c.elasticity, c.holdback, lo, r_lo)
        net_hi, buy, netback, shipped = hub_roots.positions(packed, c.elasticity, c.holdback, hi, r_hi)
        net = _split(net_lo, net_hi, f_lo, f_hi)
        shipped = shipped_lo + _theta(f_lo, f_hi)[:, None] * (shipped - shipped_lo)
        empty = (c.stock <= 0) & (np.exp(c.want_log) <= 0) & (np.abs(net).sum(axis=1, keepdims=True) <= 0)
        y, bought, at_choke, on_cost = hub_roots.clear_zones(packed, c.elasticity, c.holdback, c.size, net, buy,
                                                             netback, shipped, empty)
        at_choke, on_cost = at_choke > 0, on_cost > 0
        flow = _flows(a, net, shipped)
    price = np.where(at_choke & (y == c.y_choke), bids.choke_price, np.where(on_cost, np.maximum(offers.cost, PRICE_FLOOR), np.exp(y)))
    bought = np.minimum(bought, bids.want(price))  # within the bracket's width: rounding
    net = flow.sum(axis=1) - flow.sum(axis=2)
    sold = np.minimum(np.maximum(bought - net, 0.0), offers.stock)
    bought = np.maximum(sold + net, 0.0)
    # A zone whose buyers got something pays at most their choke price (a zone price
    # within the bracket's width above it, on the step where the hub split, is rounding).
    price = np.where((bought > 0) & (price > bids.choke_price), bids.choke_price, price)
    want_choke = np.where(bids.quantity > 0, np.maximum(bids.quantity * bids.choke**bids.elasticity - bids.shift, 0.0), 0.0)
    unserved = np.where(at_choke, np.maximum(want_choke - bought, 0.0), 0.0)
    return Clearing(flow=flow, price=price, sold=sold, bought=bought, unserved=unserved,
                    border_price=np.maximum(np.exp(netback), price), hub=np.stack([hi, r_hi[1]]))
