"""Negotiated supply deals between an importing party and the dominant exporter.

An importing party (a region, or a bloc such as US+JP+EU) and the exporter bargain over
a deal: the exporter guarantees ``share`` of what the party would import from it
without its controls (its licences and percentage cuts then let at least that much
through to the party), and the party pays a ``transfer`` (the concessions: tariff
relief, purchases) for it. Rules (docs/ODD.md §7.28; parameters and their sources in
``abm/data/parameters.csv``, section ``negotiation``):

- **Values of deal and no deal, closed form, from the model's state** (``Exposure``):
  over ``horizon_months`` the party's cost of no deal is its expected unmet demand,
  valued at ``unmet_cost_ratio`` times each element's reference price, plus the price
  premium that much missing supply raises along its users' short-run demand curve
  (``market.short_run_elasticity``, up to their backstop price) on what it still gets.
  Unmet demand is the supply gap it faces this month against the run without the
  controls (what it would need there less what it got, before its stock draws; under a
  deal, plus the imports only the deal let through) over the horizon, less the stocks
  it holds: so stockpiles, new supply elsewhere, recycling, substitution and
  partnerships, which shrink the gap or add cover, lower its cost of no deal. The exporter's value of no deal is the
  leverage it keeps, ``concession_usd_per_year`` at the long-run mean tension, scaled
  by the party's tension with it now, pro rata to the share of the withheld trade (by
  value) it keeps withheld; a deal earns it the export revenue of the restored trade.
  Closed-form rather than look-ahead runs: a round would otherwise cost a run of
  ``horizon_months`` for each candidate deal, every round, in every one of a study's
  thousands of runs.
- **Solution concept: the asymmetric Nash bargaining solution with the values of no
  deal as disagreement point** (Nash 1950, Econometrica 18:155-162), with transferable
  utility: the guaranteed share maximises the joint surplus (evaluated where its slope
  can jump and on a grid of 0.005 in the share), and the transfer gives the party
  ``power`` of it (never below 0: concessions are not negative). ``power`` comes from the parties' discount rates: it is the
  limit of Rubinstein's alternating-offers game (Rubinstein 1982, Econometrica
  50:97-109) as the time between offers shrinks, ``r_exporter / (r_importer +
  r_exporter)`` (Binmore, Rubinstein and Wolinsky 1986, RAND Journal of Economics
  17:176-188).
- **Rounds and breaks.** Without a deal the parties meet every ``round_months``; a deal
  forms when the surplus is positive and runs ``duration_months`` on fixed terms, then
  the next round renews it on new terms or not. Each month under a deal both sides
  re-value the deal's terms and no deal; when either side's value of no deal overtakes
  its value of the deal (a tension shock raises the exporter's; new supply elsewhere
  lowers the party's cost of no deal), the deal breaks that month and the controls
  apply in full again; the next round comes ``round_months`` later.

Not modelled: joint-venture and technology-sharing clauses; bans and tonnage quotas
(a deal guarantees against licences and percentage cuts only); several importing
parties bargaining at once.
"""

from dataclasses import dataclass

import numpy as np

from abm.schema import ELEMENT_LIST, ELEMENTS, REGION_LIST, SHARE, USD, between, csv_default, months_from, spec

# Surpluses smaller than this share of what is at stake (USD) are rounding, not a deal.
ROUNDING = 1e-9


@dataclass(frozen=True)
class Negotiation:
    """The ``[negotiation]`` section: one importing party bargaining with the dominant
    exporter (``[shock] exporter``) over the supply of ``elements`` (module docstring)."""

    enabled: bool = False
    importers: tuple[str, ...] = spec(REGION_LIST, default=("US",))
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=ELEMENTS)
    round_months: int = csv_default("negotiation", "round_months", months_from(1))
    duration_months: int = csv_default("negotiation", "duration_months", months_from(1))
    horizon_months: int = csv_default("negotiation", "horizon_months", months_from(1))
    unmet_cost_ratio: float = csv_default("negotiation", "unmet_cost_ratio", between(0.0, 1e4))
    concession_usd_per_year: float = csv_default("negotiation", "concession_usd_per_year", USD)
    importer_discount_rate: float = csv_default("negotiation", "importer_discount_rate", between(1e-6, 10.0))
    exporter_discount_rate: float = csv_default("negotiation", "exporter_discount_rate", between(1e-6, 10.0))
    max_guaranteed_share: float = csv_default("negotiation", "max_guaranteed_share", SHARE)


def bargaining_power(importer_rate: float, exporter_rate: float) -> float:
    """The importer's weight in the asymmetric Nash solution that the alternating-offers
    game converges to as the time between offers shrinks (Binmore, Rubinstein and
    Wolinsky 1986): ``r_X / (r_I + r_X)`` for discount rates per year; the more patient
    side (lower rate) gets more. Raises ValueError unless both rates are positive."""
    if importer_rate <= 0 or exporter_rate <= 0:
        raise ValueError(f"discount rates must be positive, got {importer_rate} and {exporter_rate}")
    return exporter_rate / (importer_rate + exporter_rate)


def rubinstein_share(importer_rate: float, exporter_rate: float, period_years: float) -> float:
    """The importer's share of a unit surplus in the subgame-perfect equilibrium of
    Rubinstein's (1982) game when it proposes first and offers alternate every
    ``period_years``: ``(1 - d_X) / (1 - d_I d_X)`` with ``d = exp(-r period)``."""
    d_importer, d_exporter = np.exp(-importer_rate * period_years), np.exp(-exporter_rate * period_years)
    return float((1.0 - d_exporter) / (1.0 - d_importer * d_exporter))


@dataclass(frozen=True)
class Exposure:
    """The importing party's position this month, per element [E] of the deal (t/month
    and USD/t): ``need`` what it would need without the controls; ``gap`` the part of
    that its supply leaves unmet before stocks, without a deal; ``stock`` t it holds
    (strategic stocks and users' working stock); ``imports`` what it would import from
    the exporter without the controls, of which the controls let ``fill`` (0-1) through
    without a deal; ``price`` its price without the controls and ``ceiling`` the most it
    can go to (its users' backstop); ``unmet_cost`` the cost of a tonne unmet;
    ``elasticity`` (< 0) its users' short-run price elasticity of demand; ``tension``
    its mean tension with the exporter, 0-1."""

    need: np.ndarray
    gap: np.ndarray
    stock: np.ndarray
    imports: np.ndarray
    fill: np.ndarray
    price: np.ndarray
    ceiling: np.ndarray
    unmet_cost: np.ndarray
    elasticity: float
    tension: float

    @property
    def withheld(self) -> np.ndarray:
        """[E] t/month the controls withhold from the party."""
        return (1.0 - self.fill) * self.imports

    def restored(self, share: float) -> np.ndarray:
        """[E] t/month a deal guaranteeing ``share`` of the imports restores."""
        return np.maximum(share - self.fill, 0.0) * self.imports


def importer_cost(exposure: Exposure, share: float, horizon: int) -> float:
    """USD the party expects to lose over ``horizon`` months under a deal guaranteeing
    ``share`` (0: no deal). Its gap less what the deal restores, over the horizon, less
    its stocks, goes unmet at ``unmet_cost`` a tonne; what it still gets costs the price
    premium that missing share ``x`` of its need raises along its demand curve,
    ``price ((1 - x) ** (1 / elasticity) - 1)``, at most up to its ceiling."""
    need = horizon * exposure.need
    unmet = np.minimum(np.maximum(horizon * np.maximum(exposure.gap - exposure.restored(share), 0.0)
                                  - exposure.stock, 0.0), need)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        missing = np.where(need > 0, unmet / np.where(need > 0, need, 1.0), 0.0)
        # an elasticity of 0 (or above): any missing supply sends the price to the ceiling
        raised = np.where(missing > 0, np.inf, exposure.price) if exposure.elasticity >= 0 else (
            exposure.price * np.power(np.maximum(1.0 - missing, 1e-12), 1.0 / exposure.elasticity))
    premium = np.maximum(np.minimum(raised, np.maximum(exposure.ceiling, exposure.price)) - exposure.price, 0.0)
    return float(exposure.unmet_cost @ unmet + premium @ (need - unmet))


def exporter_revenue(exposure: Exposure, share: float, horizon: int) -> float:
    """USD of export revenue over ``horizon`` months the restored trade earns the exporter
    (at the price without the controls)."""
    return float(horizon * (exposure.price @ exposure.restored(share)))


def leverage(exposure: Exposure, share: float, value: float) -> float:
    """USD of leverage the exporter keeps under a deal guaranteeing ``share``: ``value``
    (its leverage over the horizon) pro rata to the withheld trade's value it keeps withheld."""
    withheld = float(exposure.price @ exposure.withheld)
    if withheld <= 0:
        return value
    return value * (1.0 - float(exposure.price @ exposure.restored(share)) / withheld)


# Steps of the share at which the joint surplus is evaluated besides its kinks.
SHARE_GRID = 200


def candidate_shares(exposure: Exposure, horizon: int, max_share: float) -> np.ndarray:
    """The shares, within [0, ``max_share``], at which the joint surplus is evaluated:
    where its slope can jump (a deal starts restoring an element: its fill; the party's
    stocks then cover the rest of its gap; the gap closes), and a grid of
    ``1 / SHARE_GRID`` between them (the price premium is smooth in the share)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_share = np.where(exposure.imports > 0, 1.0 / exposure.imports, np.nan)
        kinks = np.concatenate([
            exposure.fill,
            exposure.fill + np.maximum(exposure.gap - exposure.stock / horizon, 0.0) * per_share,
            exposure.fill + exposure.gap * per_share,
        ])
    kinks = kinks[np.isfinite(kinks)]
    grid = np.linspace(0.0, max_share, SHARE_GRID + 1)
    return np.unique(np.clip(np.concatenate([kinks, grid]), 0.0, max_share))


@dataclass(frozen=True)
class Values:
    """Each side's value of a deal on given terms and of no deal, USD over the horizon.
    The party's are minus its expected losses. The exporter's count only what the deal
    changes: without one it keeps all its leverage; with one it earns the restored
    trade's revenue and the transfer, and keeps the leverage on what stays withheld."""

    importer_deal: float
    importer_no_deal: float
    exporter_deal: float
    exporter_no_deal: float

    @property
    def holds(self) -> bool:
        """Neither side's value of no deal overtakes its value of the deal."""
        scale = ROUNDING * max(1.0, *map(abs, (self.importer_no_deal, self.exporter_no_deal)))
        return self.importer_deal >= self.importer_no_deal - scale and self.exporter_deal >= self.exporter_no_deal - scale


def values(exposure: Exposure, share: float, transfer: float, leverage_value: float, horizon: int) -> Values:
    """Both sides' values of a deal guaranteeing ``share`` for ``transfer`` USD, and of no deal."""
    return Values(
        importer_deal=-importer_cost(exposure, share, horizon) - transfer,
        importer_no_deal=-importer_cost(exposure, 0.0, horizon),
        exporter_deal=exporter_revenue(exposure, share, horizon) + transfer + leverage(exposure, share, leverage_value),
        exporter_no_deal=leverage(exposure, 0.0, leverage_value),
    )


@dataclass(frozen=True)
class Terms:
    """A deal: the guaranteed ``share`` of the party's counterfactual imports, the
    ``transfer`` USD over the horizon the party pays for it, the joint ``surplus`` USD."""

    share: float
    transfer: float
    surplus: float


def nash_terms(exposure: Exposure, leverage_value: float, horizon: int, power: float, max_share: float) -> Terms | None:
    """The asymmetric Nash bargaining solution with transferable utility: the share that
    maximises the joint surplus (``candidate_shares``), and the transfer that leaves the
    party ``power`` of it over its value of no deal, or 0 where that would have the
    exporter pay the party (concessions are not negative: the Nash product is concave in
    the transfer, so its maximum under that bound is at the bound). None when no share
    has a positive surplus: no deal."""
    def surplus(share: float) -> float:
        gain = importer_cost(exposure, 0.0, horizon) - importer_cost(exposure, share, horizon)
        given_up = leverage(exposure, 0.0, leverage_value) - leverage(exposure, share, leverage_value)
        return gain + exporter_revenue(exposure, share, horizon) - given_up

    shares = candidate_shares(exposure, horizon, max_share)
    joint = np.array([surplus(s) for s in shares])
    best = int(np.argmax(joint))  # the smallest of equally good shares
    stake = max(1.0, leverage_value, importer_cost(exposure, 0.0, horizon))
    if joint[best] <= ROUNDING * stake or shares[best] <= 0.0:
        return None
    share = float(shares[best])
    gain = importer_cost(exposure, 0.0, horizon) - importer_cost(exposure, share, horizon)
    return Terms(share=share, transfer=max(gain - power * float(joint[best]), 0.0), surplus=float(joint[best]))


class Talks:
    """The state of one run's negotiation: the deal in force (if any), when it ends,
    the next round, the count of breaks, and this month's values.

    ``review(month, exposure)`` is called once a month before the export rules are set;
    it returns the share guaranteed this month (0 without a deal)."""

    def __init__(self, params: Negotiation, mean_tension: float) -> None:
        self.params = params
        self.power = bargaining_power(params.importer_discount_rate, params.exporter_discount_rate)
        self._mean_tension = mean_tension
        self.terms: Terms | None = None
        self.ends = -1  # first month after the deal in force
        self.next_round = 0
        self.breaks = 0
        self.values = Values(0.0, 0.0, 0.0, 0.0)

    def leverage_value(self, tension: float) -> float:
        """USD over the horizon the exporter sets on its leverage at ``tension`` with the party."""
        p = self.params
        return p.concession_usd_per_year * p.horizon_months / 12.0 * tension / self._mean_tension

    def review(self, month: int, exposure: Exposure) -> float:
        """This month's check of the deal in force, or round; the share guaranteed this month."""
        p = self.params
        lever = self.leverage_value(exposure.tension)
        if self.terms is not None and month >= self.ends:
            self.terms, self.next_round = None, month  # its term is over: this month's round may renew it
        if self.terms is not None and not values(exposure, self.terms.share, self.terms.transfer, lever,
                                                 p.horizon_months).holds:
            self.terms, self.breaks, self.next_round = None, self.breaks + 1, month + p.round_months
        elif self.terms is None and month >= self.next_round:
            self.next_round = month + p.round_months
            self.terms = nash_terms(exposure, lever, p.horizon_months, self.power, p.max_guaranteed_share)
            self.ends = month + p.duration_months
        share, transfer = (0.0, 0.0) if self.terms is None else (self.terms.share, self.terms.transfer)
        self.values = values(exposure, share, transfer, lever, p.horizon_months)  # no deal: worth what no deal is
        return share
