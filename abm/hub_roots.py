"""The per-zone work of the clearing kernel (``abm.clearing``), compiled with numba.

Each month the kernel looks for the world hub's log price at which the zones' net
imports sum to zero, the restricted hub's where a ban splits the world, and then each
zone's own price at its net imports. Every one of these is a root of a non-increasing,
piecewise smooth function of one log price, independent between products (and zones).
Evaluated with numpy for all products at once, one evaluation touches a few hundred
floats and a month needs dozens of them (about 200 under a ban, where the restricted
hub's search is nested in the world's), so numpy's call overhead set the pace
(benchmarks/RESULTS.md). Here every product (and zone) is searched on its own in a
compiled scalar loop, and the curves are evaluated in one place (``_excess``,
``_position``).

Arrays: ``curves`` [F, P, Z] float, the fields named below (``abm.clearing._pack``):
the zones' curves in log price (``abm.clearing._Curves``) and their access to the hubs
(``abm.clearing._Access``, booleans as 0/1). ``elasticity`` and ``holdback`` are the
curves' exponents; ``size`` [P] t of stock and bids (the scale of a balance); ``relay``
[P] the cheapest re-export's log shift (inf where no zone may re-export).

The searches: where a function's steps are known (the open world, a zone) it is
evaluated just below and above each and at the ends, and the first of these points
where it is not positive and the one before it bracket the root; then Illinois regula
falsi narrows the bracket to ``TOLERANCE`` (with a bisection every 4th iteration, after
the 24th only where steps were bracketed), or stops where a balance is within
``1e-15 x size`` of zero (the stepped searches; the searches under a ban stop only at
``TOLERANCE``). Under a ban the world's search starts from last month's hub
price, widening the bracket fourfold until it holds the root. No function here calls
itself through another (numba's cache cannot hold such cycles), so the restricted
hub's search runs its own loop over the shared Illinois steps.
"""

import math

import numpy as np
from numba import njit

# Compiled once per machine (the cache beside this file); float errors give inf or nan
# as numpy's do, never an exception.
_compiled = njit(cache=True, error_model="numpy")

# Fields of ``curves`` [F, P, Z].
STOCK, WANT_LOG, HELD_LOG, Y_COST, Y_CHOKE, BUY_SHIFT, SELL_SHIFT, EXPORT_CAP = range(8)
CAN_SELL, RESTRICTED, BANNED_ORIGIN, SUPPLIES_RESTRICTED, Y_SELL, Y_PLAN, WANT_SHIFT = range(8, 15)
FIELDS = 15

PRICE_FLOOR = 1e-6  # USD/kg no price falls below: far below any product's cost
LN_FLOOR = math.log(PRICE_FLOOR)
HEADROOM = 1.0  # log price above the highest choke price that brackets every root
TOLERANCE = 3e-12  # width of a root's bracket in log price
STEP = 1e-12  # log price either side of a step of the curves where a root is looked for
MAX_ITERATIONS = 200  # a bracket halves at least every 4th iteration (after the 24th without bisect=True): 44 halvings close a log range of 34 to TOLERANCE
BRACKET_WIDTH = 0.05  # log price either side of last month's hub price where a search under a ban starts
BRACKET_WIDENINGS = 8  # fourfold widenings before it takes the whole range


@_compiled
def _want(curves, elasticity, p, z, y):
    """t zone z's buyers want of product p at log price y (0 above their choke price),
    net of what they already got (``WANT_SHIFT``)."""
    if y > curves[Y_CHOKE, p, z]:
        return 0.0
    return max(math.exp(elasticity * y + curves[WANT_LOG, p, z]) - curves[WANT_SHIFT, p, z], 0.0)


@_compiled
def _spare(curves, holdback, p, z, y):
    """t zone z's sellers of product p sell at log price y (0 below their cost)."""
    if not y >= curves[Y_COST, p, z]:
        return 0.0
    stock = curves[STOCK, p, z]
    return min(max(stock - math.exp(-holdback * y + curves[HELD_LOG, p, z]), 0.0), stock)


@_compiled
def _excess(curves, elasticity, holdback, p, z, y):
    """want - offer of zone z's curves for product p at log price y (t)."""
    return _want(curves, elasticity, p, z, y) - _spare(curves, holdback, p, z, y)


@_compiled
def _position(curves, elasticity, holdback, p, z, y_world, y_restricted):
    """Zone z's net imports (t) of product p at the hubs' log prices, its buying and
    netback log prices, and what it ships to the restricted hub while importing (t).

    It buys from its hub at the hub's price plus its buying shift and sells at the best
    netback it may reach (a banned origin only the world hub's, even from a restricted
    zone); it sells what it has to spare at its netback, its exports capped, and
    otherwise buys at its buying price what its buyers want there. A supplier of the
    restricted hub whose netback there passes its buying price at the world hub (only
    where nobody may re-export: ``abm.clearing.Links.no_re_export``) does both: its
    sellers ship what they spare at the netback to the restricted hub, within its cap,
    and its buyers import at the world hub what they want at their buying price (less
    what the cap kept at home)."""
    restricted = curves[RESTRICTED, p, z] > 0
    banned = curves[BANNED_ORIGIN, p, z] > 0
    reaches_restricted = (curves[SUPPLIES_RESTRICTED, p, z] > 0 or restricted) and not banned
    netback = (y_restricted if reaches_restricted else y_world) - curves[SELL_SHIFT, p, z]
    buy = (y_restricted if restricted else y_world) + curves[BUY_SHIFT, p, z]
    can_sell = curves[CAN_SELL, p, z] > 0
    if can_sell and not restricted and netback > buy:
        spare = _spare(curves, holdback, p, z, netback)
        shipped = min(spare, curves[EXPORT_CAP, p, z])
        if shipped > 0:
            imports = max(_want(curves, elasticity, p, z, buy) - (spare - shipped), 0.0)
            return imports - shipped, buy, netback, shipped
    d_sell = _excess(curves, elasticity, holdback, p, z, netback)
    if can_sell and d_sell < 0:
        return max(d_sell, -curves[EXPORT_CAP, p, z]), buy, netback, 0.0
    d_buy = _excess(curves, elasticity, holdback, p, z, buy)
    return (d_buy if d_buy > 0 else 0.0), buy, netback, 0.0


@_compiled
def _split_position(curves, elasticity, holdback, p, z, y_world, r_lo, r_hi, theta):
    """Zone z's ``_position`` where the restricted hub's root lies on a step of its
    balance, between its log prices ``r_lo`` and ``r_hi``: its net imports and what it
    ships there, a share ``theta`` of the way from ``r_lo``'s to ``r_hi``'s (so the hub's
    books balance on the step, as the world's do in ``abm.clearing._split``); its buying
    and netback log prices at ``r_hi``."""
    net, buy, netback, shipped = _position(curves, elasticity, holdback, p, z, y_world, r_hi)
    if theta < 1.0:
        net_lo, _, _, shipped_lo = _position(curves, elasticity, holdback, p, z, y_world, r_lo)
        net, shipped = net_lo + theta * (net - net_lo), shipped_lo + theta * (shipped - shipped_lo)
    return net, buy, netback, shipped


@_compiled
def positions(curves: np.ndarray, elasticity: float, holdback: float, y_world: np.ndarray,
              restricted: np.ndarray) -> np.ndarray:
    """[4, P, Z]: every zone's net imports (t), buying and netback log prices, and what
    it ships to the restricted hub while importing (t), at the world hub's log prices
    ``y_world`` [P] and the restricted hub's bracket ``restricted`` [3, P] (log prices at
    its ends and the share of the way between them, ``restricted_brackets``)."""
    out = np.empty((4, curves.shape[1], curves.shape[2]))
    for p in range(curves.shape[1]):
        for z in range(curves.shape[2]):
            out[0, p, z], out[1, p, z], out[2, p, z], out[3, p, z] = _split_position(
                curves, elasticity, holdback, p, z, y_world[p], restricted[0, p], restricted[1, p], restricted[2, p])
    return out


@_compiled
def _restricted_balance(curves, elasticity, holdback, p, y_world, y):
    """Net imports of the restricted hub's zones less its suppliers' exports of product
    p, at its log price y and the world's y_world."""
    total = 0.0
    for z in range(curves.shape[2]):
        net, _, _, shipped = _position(curves, elasticity, holdback, p, z, y_world, y)
        if curves[RESTRICTED, p, z] > 0 and not (curves[BANNED_ORIGIN, p, z] > 0 and net < 0):
            total += net
        if curves[SUPPLIES_RESTRICTED, p, z] > 0 and shipped > 0:
            total -= shipped
        elif curves[SUPPLIES_RESTRICTED, p, z] > 0 and net < 0:
            total += net
    return total


@_compiled
def _restricted_bracket(curves, elasticity, holdback, relay, p, y_world):
    """The restricted hub's root for product p at world log price y_world: ``(lo, hi,
    theta)``, the log prices either side of where its balance is zero and the share of
    the way between them at which its books balance (0 where it closes on one price; on
    a step of the balance, such as its buyers' choke price or the price at which its
    suppliers start to ship, the quantities split along it). At most the world's price
    plus the cheapest re-export (or, with no re-exporter, up to the top of the range);
    y_world where no zone is restricted."""
    if not _is_restricted(curves, p):
        return y_world, y_world, 0.0
    lo, hi = y_world, (max(_top(curves, p), y_world) if math.isinf(relay[p]) else y_world + relay[p])
    f_lo = _restricted_balance(curves, elasticity, holdback, p, y_world, lo)
    f_hi = _restricted_balance(curves, elasticity, holdback, p, y_world, hi)
    state = _start(lo, hi, f_lo, f_hi)
    for n in range(MAX_ITERATIONS):
        if _done(state, 0.0):
            break
        x = _next_point(state, n, True)
        state = _narrow(state, x, _restricted_balance(curves, elasticity, holdback, p, y_world, x))
    lo, hi, f_lo, f_hi = _close(state, 0.0)
    theta = f_lo / (f_lo - f_hi) if f_lo > 0.0 > f_hi else 0.0
    return (hi, hi, 0.0) if hi == lo else (lo, hi, theta)


WORLD, ZONE = 0, 1  # what ``_balance`` evaluates


@_compiled
def _balance(kind, curves, elasticity, holdback, p, z, target, relay, y):
    """WORLD: the world's net imports of product p at world log price y, the restricted
    hub at its own root (``_restricted_bracket``); ZONE: zone z's excess demand less its
    net imports ``target`` at its log price y."""
    if kind == ZONE:
        return _excess(curves, elasticity, holdback, p, z, y) - target
    r_lo, r_hi, theta = _restricted_bracket(curves, elasticity, holdback, relay, p, y)
    total = 0.0
    for zone in range(curves.shape[2]):
        total += _split_position(curves, elasticity, holdback, p, zone, y, r_lo, r_hi, theta)[0]
    return total


@_compiled
def _is_restricted(curves, p):
    return curves[RESTRICTED, p].max() > 0


@_compiled
def _top(curves, p):
    top = -math.inf
    for z in range(curves.shape[2]):
        top = max(top, curves[Y_CHOKE, p, z])
    return top + HEADROOM


# Illinois regula falsi in steps, so that both searches (``_illinois`` and the
# restricted hub's) share it; its state is (lo, hi, f(lo), f(hi), weight at lo,
# weight at hi, side of the last point: 1 right of the root's side, -1 left, 0 none).
@_compiled
def _start(lo, hi, f_lo, f_hi):
    """The state on [lo, hi]; where ``f(lo) < 0`` the root is lo (both ends), where
    ``f(hi) > 0`` it is hi."""
    if f_lo < 0:
        hi, f_hi = lo, f_lo
    if f_hi > 0:
        lo, f_lo = hi, f_hi
    return lo, hi, f_lo, f_hi, f_lo, f_hi, 0


@_compiled
def _done(state, small):
    lo, hi, f_lo, f_hi = state[0], state[1], state[2], state[3]
    return not (hi - lo > TOLERANCE and f_lo > small and f_hi < -small)


@_compiled
def _next_point(state, n, bisect):
    """The false position of the weighted ends; a bisection every 4th iteration (with
    ``bisect``; else only after the 24th)."""
    lo, hi, w_lo, w_hi = state[0], state[1], state[4], state[5]
    if n % 4 == 3 and (bisect or n > 24):
        return 0.5 * (lo + hi)
    x = lo + (hi - lo) * w_lo / (w_lo - w_hi)
    return x if (math.isfinite(x) and lo < x < hi) else 0.5 * (lo + hi)


@_compiled
def _narrow(state, x, f_x):
    """The state after ``f(x)``: x replaces the end on its side, and the weight of the
    other end halves when the same side is hit twice running."""
    lo, hi, f_lo, f_hi, w_lo, w_hi, side = state
    if f_x >= 0:  # the root is right of x
        return x, hi, f_x, f_hi, f_x, (0.5 * w_hi if side > 0 else w_hi), 1
    return lo, x, f_lo, f_x, (0.5 * w_lo if side < 0 else w_lo), f_x, -1


@_compiled
def _close(state, small):
    """``(lo, hi, f(lo), f(hi))``; an end whose balance is within ``small`` of 0 is the
    root: the bracket closes on it."""
    lo, hi, f_lo, f_hi = state[0], state[1], state[2], state[3]
    if f_lo <= small and hi > lo:
        return lo, lo, f_lo, f_lo
    if f_hi >= -small and hi > lo:
        return hi, hi, f_hi, f_hi
    return lo, hi, f_lo, f_hi


@_compiled
def _illinois(kind, curves, elasticity, holdback, p, z, target, relay, lo, hi, f_lo, f_hi, bisect, small):
    """Bracket ``(lo, hi, f(lo), f(hi))`` of the root of the non-increasing ``_balance``
    of ``kind`` on [lo, hi], narrowed to ``TOLERANCE``; a balance within ``small`` of 0
    is the root."""
    state = _start(lo, hi, f_lo, f_hi)
    for n in range(MAX_ITERATIONS):
        if _done(state, small):
            break
        x = _next_point(state, n, bisect)
        state = _narrow(state, x, _balance(kind, curves, elasticity, holdback, p, z, target, relay, x))
    return _close(state, small)


@_compiled
def _stepped(kind, curves, elasticity, holdback, p, z, target, relay, lo, hi, steps, small):
    """``_illinois`` on [lo, hi] where every step of the balance is among ``steps``: the
    first point (of the ends and either side of every step, in order) where the balance
    is not positive and the one before it bracket the root."""
    points = np.empty(2 + 2 * len(steps))
    points[0], points[1] = lo, hi
    points[2:2 + len(steps)] = steps - STEP
    points[2 + len(steps):] = steps + STEP
    points = np.sort(np.minimum(np.maximum(points, lo), hi))
    before = at = points[0]
    f_before = f_at = _balance(kind, curves, elasticity, holdback, p, z, target, relay, at)
    for k in range(1, len(points)):
        if f_at <= 0:
            break
        before, f_before = at, f_at
        at = points[k]
        f_at = _balance(kind, curves, elasticity, holdback, p, z, target, relay, at)
    return _illinois(kind, curves, elasticity, holdback, p, z, target, relay, before, at, f_before, f_at,
                     False, small)


@_compiled
def world_price(curves: np.ndarray, elasticity: float, holdback: float, size: np.ndarray, relay: np.ndarray,
                start: np.ndarray) -> np.ndarray:
    """[4, P]: bracket ``(lo, hi, balance(lo), balance(hi))`` of the world hub's log
    price for every product. A product without a ban is searched from its curves'
    steps; one with a ban (a nested search) from ``start`` [P], last month's world hub
    log price (nan: the whole range)."""
    n_products, n_zones = curves.shape[1], curves.shape[2]
    out = np.empty((4, n_products))
    steps = np.empty(4 * n_zones)
    for p in range(n_products):
        top = _top(curves, p)
        if not _is_restricted(curves, p):
            for z in range(n_zones):
                buy, sell = curves[BUY_SHIFT, p, z], curves[SELL_SHIFT, p, z]
                steps[z] = curves[Y_COST, p, z] - buy
                steps[n_zones + z] = curves[Y_CHOKE, p, z] - buy
                steps[2 * n_zones + z] = curves[Y_COST, p, z] + sell
                steps[3 * n_zones + z] = curves[Y_CHOKE, p, z] + sell
            result = _stepped(WORLD, curves, elasticity, holdback, p, 0, 0.0, relay, LN_FLOOR, top, steps,
                              1e-15 * size[p])
        else:
            lo, hi = LN_FLOOR, top
            if not math.isnan(start[p]):
                lo, hi = _bracket(curves, elasticity, holdback, p, relay, start[p], top)
            f_lo = _balance(WORLD, curves, elasticity, holdback, p, 0, 0.0, relay, lo)
            f_hi = _balance(WORLD, curves, elasticity, holdback, p, 0, 0.0, relay, hi)
            result = _illinois(WORLD, curves, elasticity, holdback, p, 0, 0.0, relay, lo, hi, f_lo, f_hi, True, 0.0)
        for k in range(4):
            out[k, p] = result[k]
    return out


@_compiled
def _bracket(curves, elasticity, holdback, p, relay, start, top):
    """A bracket of the world balance of product p around ``start`` (last month's
    price), widened until it holds the root; a flat stretch (no trade either way) at
    ``start`` stays there."""
    def world(y):
        return _balance(WORLD, curves, elasticity, holdback, p, 0, 0.0, relay, y)

    width = BRACKET_WIDTH
    lo, hi = max(start - width, LN_FLOOR), min(start + width, top)
    if world(start) == 0:
        return start, start
    for _ in range(BRACKET_WIDENINGS):
        short = world(lo) < 0 and lo > LN_FLOOR  # the root is below lo
        long = world(hi) > 0 and hi < top  # the root is above hi
        if not (short or long):
            return lo, hi
        width *= 4
        if short:
            lo, hi = max(lo - width, LN_FLOOR), lo
        if long:
            lo, hi = hi, min(hi + width, top)
    return LN_FLOOR, top


@_compiled
def restricted_brackets(curves: np.ndarray, elasticity: float, holdback: float, relay: np.ndarray,
                        y_world: np.ndarray) -> np.ndarray:
    """[3, P] the restricted hub's root at world log prices ``y_world`` [P]: its log
    prices either side and the share of the way between them (``_restricted_bracket``)."""
    out = np.empty((3, curves.shape[1]))
    for p in range(curves.shape[1]):
        out[0, p], out[1, p], out[2, p] = _restricted_bracket(curves, elasticity, holdback, relay, p, y_world[p])
    return out


@_compiled
def clear_zones(curves: np.ndarray, elasticity: float, holdback: float, size: np.ndarray, net: np.ndarray,
                buy: np.ndarray, netback: np.ndarray, shipped: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """Every zone's log price and what its buyers get, at its net imports ``net`` [P, Z]
    (``buy``, ``netback`` [P, Z] its buying and selling log prices, ``shipped`` [P, Z] t
    it ships to the restricted hub while importing, ``empty`` [P, Z] no stock, bids or
    trade). Returns [4, P, Z]: log price, t bought, 1 where the buyers' choke price
    binds, 1 where the price is the sellers' cost floor.

    A zone that ships to the restricted hub while importing posts its buying price,
    at which its buyers get what they want.

    The zone's price is where ``want - offer = net`` between its netback and its buying
    price (below its netback where its export cap binds; unbounded where it cannot
    trade), searched from the steps of its curves (its cost and its choke price); on a
    step the quantities split along it. An exporter posts its netback and an importer
    its buying price wherever its curves allow (a seller who sells out clears at any
    price above its cost: it sold at this one); a zone without buyers or trade posts its
    sellers' reservation price, an empty one its buyers' planning price; on a step the
    price is the step's."""
    n_products, n_zones = curves.shape[1], curves.shape[2]
    out = np.empty((4, n_products, n_zones))
    steps = np.empty(2)
    no_relay = np.full(n_products, np.inf)  # a zone's balance has no restricted hub
    for p in range(n_products):
        top, slack = _top(curves, p), 1e-9 * size[p]
        for z in range(n_zones):
            d, y_cost, y_choke = net[p, z], curves[Y_COST, p, z], curves[Y_CHOKE, p, z]
            if shipped[p, z] > 0:
                y = min(max(buy[p, z], LN_FLOOR), top)
                out[0, p, z], out[1, p, z] = y, _want(curves, elasticity, p, z, y)
                out[2, p, z], out[3, p, z] = y > y_choke, 0.0
                continue
            can_sell, cap = curves[CAN_SELL, p, z] > 0, curves[EXPORT_CAP, p, z]
            capped = can_sell and d <= -cap * (1 - 1e-12) and math.isfinite(cap)
            lower = netback[p, z] if (can_sell and not capped) else LN_FLOOR
            upper = max(netback[p, z] if capped else buy[p, z], lower)
            # A position split along a hub's step may lie just outside the zone's
            # bounds: its own curves then price it.
            short = _excess(curves, elasticity, holdback, p, z, lower) - d < -slack
            if short:
                lower, upper = LN_FLOOR, lower
            over = _excess(curves, elasticity, holdback, p, z, upper) - d > slack
            if over:
                lower, upper = upper, top
            steps[0], steps[1] = y_cost, y_choke
            lo, hi, g_lo, g_hi = _stepped(ZONE, curves, elasticity, holdback, p, z, d, no_relay, lower, upper,
                                          steps, 1e-15 * size[p])
            theta = g_lo / (g_lo - g_hi) if g_lo > g_hi else 0.0
            want_lo = _want(curves, elasticity, p, z, lo)
            bought = want_lo + theta * (_want(curves, elasticity, p, z, hi) - want_lo)
            y = lo if g_lo == 0 else hi
            settled = not short and not over
            if (d < 0 and can_sell and not capped and settled
                    and abs(_excess(curves, elasticity, holdback, p, z, netback[p, z]) - d) <= slack):
                y = netback[p, z]
                bought = _want(curves, elasticity, p, z, y)
            elif d > 0 and settled and abs(_excess(curves, elasticity, holdback, p, z, buy[p, z]) - d) <= slack:
                y = buy[p, z]
                bought = _want(curves, elasticity, p, z, y)
            stock = curves[STOCK, p, z]
            bidding = math.exp(curves[WANT_LOG, p, z]) > 0
            idle = not bidding and d == 0
            if idle:
                y_sell = curves[Y_SELL, p, z]
                y = y_sell if stock > 0 else min(max(y_sell, lower), upper)
            if empty[p, z]:
                y = curves[Y_PLAN, p, z]
            on_cost = not idle and not empty[p, z] and stock > 0 and lo <= y_cost and hi >= y_cost
            if on_cost:
                y = y_cost
            if bidding and lo <= y_choke and hi > y_choke:
                y = y_choke
            y = min(max(y, LN_FLOOR), top)
            out[0, p, z], out[1, p, z] = y, bought
            out[2, p, z], out[3, p, z] = hi > y_choke, on_cost and y == y_cost
    return out
