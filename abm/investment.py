"""Private investment in new mines, separation, metal and magnet plants (docs/ODD.md §7.26).

An investment unit is a stage of one region: the mines of one deposit type in one
nation, or the separation, metal or magnet plants of one region. Each month investors
in every unit, inside and outside the dominant exporter alike:

1. see this month's operating margin per kg of output (revenue less cash cost: inputs
   at their price in the region plus the stage's conversion cost, abm/data/stages.csv)
   and expect its exponential average over ``expectation_months`` (a trailing
   average), as they do the cash cost and the unit's utilisation;
2. commit new capacity when the margin they count exceeds the capital charge (the
   annuity of the stage's capex at ``hurdle_rate`` over ``life_years``) and the unit
   runs at least ``min_utilisation`` of its capacity (where capacity stands idle a new
   plant would find no feed or buyers). The margin counted is the lower of the
   expected and this month's (a spike that has passed commits nothing more while its
   average lingers), plus a price floor's top-up for the share of the project's life
   the floor covers once it runs (by value, discounted at the hurdle rate). They commit ``min(max_share_per_year, response x
   excess)`` of the unit's capacity a year, excess = counted price / full cost - 1,
   full cost = expected cash cost + capital charge;
3. build each commitment for the stage's ``lead_months`` and ramp it up over its
   ``ramp_months`` (stages.csv);
4. abandon a project under construction after ``abandon_months`` consecutive months in
   which this month's margin (with the floor's top-up for the share of its life the
   floor covers) is below the capital charge of the capex still to be spent (the share
   of its build still ahead): at the start of a build the test is full cost, at the end
   cash cost, as sunk capex no longer counts; the months in a row are the expectation
   here (Molycorp's expansion stopped after prices had stayed low).

A price floor tops up the covered oxides' price in its region to the floor. It counts
for that region's separators (who sell the oxides) and mines (whose concentrate holds
them), as for an integrated producer such as MP Materials and as
``RareEarthModel._produce`` raises the mines' output. Private projects cost the
government nothing: they never enter ``policy_cost`` (the floor's top-up on what the
region sells does, ``abm.programmes``).

New capacity running is added to the unit's mines (``ExportingNation.invested_capacity``)
or spread over its plants in proportion to their size (``Converters.invested``), so a
separation plant's new capacity takes its feed mix and yields its oxides.

Shapes: U units, J projects, P products, R regions, K plants, D deposits, E elements;
capacity t/month (mines t REO, separation t REO of concentrate, metal and magnet t of
output), prices, margins and charges USD/kg of output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.agents.converter import MAGNET, METAL, SEPARATION, Converters, ramp_share
from abm.chain import Chain
from abm.scenario import Scenario

MINE = "concentrate"
# Stages in the order of the records (``Investors.labels``).
INVESTED_STAGES = (MINE, SEPARATION, METAL, MAGNET)
KG_PER_T = 1000.0  # capex is USD per t/yr of capacity, margins USD/kg
MONTHS_PER_YEAR = 12


def capital_charge(capex_usd_per_t_per_year: np.ndarray, rate: float, life_years: float) -> np.ndarray:
    """USD/kg of output: the yearly annuity that repays ``capex`` (USD per t/yr of
    capacity) at ``rate`` over ``life_years``, per kg a year of capacity."""
    annuity = rate / (1.0 - (1.0 + rate) ** -life_years)
    return np.asarray(capex_usd_per_t_per_year, dtype=float) * annuity / KG_PER_T


@dataclass(frozen=True)
class Floor:
    """A price floor in force: ``usd_per_kg`` on the oxides ``covered`` [E] sold in
    region ``region``, until month ``end`` (exclusive)."""

    region: int
    covered: np.ndarray
    usd_per_kg: float
    end: int


@dataclass(frozen=True)
class Margins:
    """[U] USD/kg of output this month: ``margin`` revenue less cash cost at market
    prices, ``cash`` cash cost, ``top_up`` what a price floor adds to the revenue."""

    margin: np.ndarray
    cash: np.ndarray
    top_up: np.ndarray


class Investors:
    """The investment units of one run and their projects.

    Units: ``stage`` [U] index into ``INVESTED_STAGES``, ``region`` [U]; mine units
    also ``nation`` (index into the model's nations) and ``deposit``; plant units a
    weight over plants ``weight`` [U, K] (each plant's share of the unit's size);
    ``lead``, ``ramp`` months and ``charge`` USD/kg by unit. Projects [J]: ``unit``,
    ``capacity`` t/month, ``online`` first month of output, ``abandoned``, ``weak``
    months in a row under the abandonment test, ``granted`` the share of its capex a
    capital grant pays (``abm.levers.CapitalGrant``; ``grant_spend`` USD this month). Records by ``labels``
    ("region:stage"), t/yr of capacity: ``committed`` and ``abandoned_now`` this month,
    ``building`` under construction, ``running`` online (ramped) next month.
    """

    def __init__(self, spec: Scenario, chain: Chain, plants: Converters, nations: list, regions: tuple[str, ...]) -> None:
        self.params = spec.investment
        self.chain = chain
        data = chain.data
        self._oxides, self._concentrates = chain.stage_index("oxide"), chain.stage_index("concentrate")
        self._separation = data.separation[np.ix_(self._oxides, self._concentrates)]  # [E, D] t oxide per t REO
        units: list[tuple[int, int, int, int]] = []  # stage, region, nation, deposit
        for x, nation in enumerate(nations):
            for d in np.flatnonzero(nation.mine_capacity + nation.project_sizes() > 0):
                units.append((0, nation.region_index, x, int(d)))
        size = np.where(plants.planned, plants.planned_capacity, plants.capacity)  # [K] t/month, projects at full size
        for s, stage in enumerate(INVESTED_STAGES[1:], start=1):
            for r in range(len(regions)):
                if (size[(plants.stage == stage) & (plants.region == r)] > 0).any():
                    units.append((s, r, -1, -1))
        self.stage, self.region, self.nation, self.deposit = (np.array(c, dtype=int) for c in zip(*units, strict=True))
        self.mines = self.stage == 0
        stage_name = np.array(INVESTED_STAGES)[self.stage]
        in_unit = (plants.stage[None, :] == stage_name[:, None]) & (plants.region[None, :] == self.region[:, None])
        weight = np.where(in_unit & ~self.mines[:, None], size[None, :], 0.0)
        self.weight = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)  # [U, K]
        self._sep, self._made = self.stage == INVESTED_STAGES.index(SEPARATION), self.stage >= INVESTED_STAGES.index(METAL)
        self._makes = (np.array(data.stage)[None, :] == stage_name[:, None])[self._made]  # [u, P] made units' products
        feed = self.weight[self._sep] @ plants.feed_share[:, self._concentrates]  # [u, D] share of the REO fed
        self._feed = feed / np.maximum(feed.sum(axis=1, keepdims=True), 1e-12)
        self._oxides_out = self._feed @ self._separation.T  # [u, E] t oxide per t REO fed
        self._in_unit = self.weight > 0  # [U, K]
        self._n_nations, self._n_deposits = len(nations), len(self._concentrates)
        self.lead = np.array([data.lead_months[s] for s in stage_name], dtype=int)
        self.ramp = np.array([data.ramp_months[s] for s in stage_name], dtype=int)
        capex = {MINE: spec.domestic_mining.capex_usd_per_t_per_year, SEPARATION: spec.refining.capex_usd_per_t_per_year,
                 METAL: self.params.metal_capex_usd_per_t_per_year, MAGNET: self.params.magnet_capex_usd_per_t_per_year}
        self.capex = np.array([capex[s] for s in stage_name], dtype=float)  # [U] USD per t/yr of capacity
        self.charge = capital_charge(self.capex, self.params.hurdle_rate, self.params.life_years)
        self.grant = spec.capital_grant
        self._grant_units = (np.array(regions)[self.region] == self.grant.region) & np.isin(stage_name, self.grant.stages)
        keys = sorted({(int(s), int(r)) for s, r in zip(self.stage, self.region, strict=True)}, key=lambda k: (k[1], k[0]))
        self.labels = tuple(f"{regions[r]}:{INVESTED_STAGES[s]}" for s, r in keys)
        self._label_of = np.array([keys.index((int(s), int(r))) for s, r in zip(self.stage, self.region, strict=True)])
        self.expected_margin: np.ndarray | None = None  # [U] USD/kg, from the first month on
        self.expected_cash = np.zeros(len(self.stage))
        self.utilisation = np.zeros(len(self.stage))  # [U] share of capacity run, smoothed as the margin
        self.unit = np.zeros(0, dtype=int)
        self.capacity = np.zeros(0)
        self.online = np.zeros(0, dtype=int)
        self.abandoned = np.zeros(0, dtype=bool)
        self.weak = np.zeros(0, dtype=int)
        self.granted = np.zeros(0)  # [J] share of each project's capex a capital grant pays
        self.grant_spend = 0.0  # USD the grant pays this month
        zeros = np.zeros(len(self.labels))
        self.committed, self.abandoned_now, self.building, self.running = zeros, zeros, zeros, zeros
        self.next_capacity = np.zeros(len(self.stage))  # [U] t/month of new capacity running next month

    # ------------------------------------------------------------------ margins
    def margins(self, price: np.ndarray, plants: Converters, region_onehot: np.ndarray, floor: Floor | None) -> Margins:
        """Each unit's margins this month at ``price`` [P, R] (the regions' clearing
        prices): a mine's concentrate less its mining cost; a separator's oxides (those
        its region's plants yield, ``Chain.willingness_to_pay``) less their separation
        cost and its feed; a metal or magnet maker's output less its inputs and
        conversion cost, over the mix its plants sell (the world's where they sell none).
        A floor's top-up is zero without ``floor``."""
        chain, cost = self.chain, self.chain.data.conversion_cost
        oxide_price = price[self._oxides]  # [E, R]
        top_up = np.zeros_like(oxide_price)  # [E, R] USD/kg a floor adds
        if floor is not None:
            top_up[:, floor.region] = np.maximum(floor.usd_per_kg - oxide_price[:, floor.region], 0.0) * floor.covered
        n = len(self.stage)
        margin, cash, gain = np.zeros(n), np.zeros(n), np.zeros(n)
        r, conc_price = self.region, price[self._concentrates]  # [D, R]
        m = self.mines
        conc = self._concentrates[self.deposit[m]]
        cash[m] = cost[conc]
        margin[m] = price[conc, r[m]] - cost[conc]
        if floor is not None:
            gain[m] = (self._separation.T @ top_up)[self.deposit[m], r[m]]

        sep, rs = self._sep, r[self._sep]
        yielding = plants.yielding_share(region_onehot)  # [P, R]
        value = chain.concentrate_value(price, yielding)  # [D, R]
        feed = self._feed
        cash[sep] = (feed * conc_price[:, rs].T).sum(axis=1) + self._oxides_out @ cost[self._oxides]
        margin[sep] = (feed * (value[:, rs] - conc_price[:, rs]).T).sum(axis=1)
        if floor is not None:
            gain[sep] = (self._oxides_out * (yielding[self._oxides][:, rs] * top_up[:, rs]).T).sum(axis=1)

        made, rm, makes = self._made, r[self._made], self._makes
        unit_cost = chain.input_cost(price) + cost[:, None]  # [P, R] cash cost of each product where made
        own = np.where(makes, self.weight[made] @ plants.sales, 0.0)  # [u, P] t/month its plants sell
        mix = np.where(own.sum(axis=1, keepdims=True) > 0, own, np.where(makes, plants.sales.sum(axis=0)[None, :], 0.0))
        mix = mix / np.maximum(mix.sum(axis=1, keepdims=True), 1e-12)
        cash[made] = (mix * unit_cost[:, rm].T).sum(axis=1)
        margin[made] = (mix * (price[:, rm] - unit_cost[:, rm]).T).sum(axis=1)
        return Margins(margin=margin, cash=cash, top_up=gain)

    def unit_capacity(self, plants: Converters, nations: list) -> tuple[np.ndarray, np.ndarray]:
        """[U] t/month each unit can run now (its nation's mines of its deposit: existing,
        projects and investment; or its plants' capacity) and [U] t/month it ran this
        month (mined; concentrate separated; metal or magnets made)."""
        capacity = self._in_unit @ plants.capacity
        used = self._in_unit @ np.where(plants.separating, plants.used.sum(axis=1), plants.produced.sum(axis=1))
        mines = np.array([n.mine_capacity + n.project_capacity + n.invested_capacity for n in nations])  # [X, D]
        output = np.array([n.output for n in nations])
        at = (self.nation[self.mines], self.deposit[self.mines])
        capacity[self.mines], used[self.mines] = mines[at], output[at]
        return capacity, used

    # --------------------------------------------------------------- decisions
    def _floor_cover(self, online: np.ndarray, floor_end: int) -> np.ndarray:
        """Share of the value of a project's life, from its ``online`` month and
        discounted at the hurdle rate, that a floor running to ``floor_end`` covers: the
        annuity factor of the years covered over that of the whole life."""
        rate, life = self.params.hurdle_rate, self.params.life_years
        covered = np.clip((floor_end - online) / MONTHS_PER_YEAR, 0.0, life)
        return (1.0 - (1.0 + rate) ** -covered) / (1.0 - (1.0 + rate) ** -life)

    def step(self, month: int, margins: Margins, capacity: np.ndarray, used: np.ndarray, floor_end: int) -> None:
        """One month of decisions on this month's ``margins`` and the units' ``capacity``
        and ``used`` [U] t/month (``unit_capacity``); ``floor_end`` is the month a price
        floor in force ends (``month`` without one). Sets the records."""
        params, memory = self.params, self.params.expectation_months
        utilisation = np.where(capacity > 0, used / np.maximum(capacity, 1e-12), 0.0)
        if self.expected_margin is None:
            self.expected_margin, self.expected_cash, self.utilisation = margins.margin, margins.cash, utilisation
        else:
            self.expected_margin = self.expected_margin + (margins.margin - self.expected_margin) / memory
            self.expected_cash = self.expected_cash + (margins.cash - self.expected_cash) / memory
            self.utilisation = self.utilisation + (utilisation - self.utilisation) / memory
        unit = self.unit
        building = ~self.abandoned & (self.online > month + 1)
        ahead = np.clip((self.online - month - 1) / np.maximum(self.lead[unit], 1), 0.0, 1.0)
        earned = margins.margin[unit]
        if margins.top_up.any():
            earned = earned + margins.top_up[unit] * self._floor_cover(self.online, floor_end)
        self.weak = np.where(building & (earned < ahead * self.charge[unit] * (1.0 - self.granted)), self.weak + 1, 0)
        dropped = self.weak >= params.abandon_months
        self.abandoned = self.abandoned | dropped
        self.abandoned_now = self._by_label(self._per_unit(np.where(dropped, self.capacity, 0.0)))

        online = month + 1 + self.lead
        counted = np.minimum(self.expected_margin, margins.margin)
        if margins.top_up.any():
            counted = counted + margins.top_up * self._floor_cover(online, floor_end)
        granted = self._grant_share(month)  # [U] of a project committed now
        charge = self.charge * (1.0 - granted)  # what investors still pay for
        excess = (counted - charge) / np.maximum(self.expected_cash + charge, 1e-12)
        share = np.clip(params.response * excess, 0.0, params.max_share_per_year)  # of capacity a year
        new = np.where(self.utilisation >= params.min_utilisation, share, 0.0) / MONTHS_PER_YEAR * capacity
        fresh = np.flatnonzero(new > 0)
        if len(fresh):
            self.unit = np.concatenate([unit, fresh])
            self.capacity = np.concatenate([self.capacity, new[fresh]])
            self.online = np.concatenate([self.online, online[fresh]])
            self.abandoned = np.concatenate([self.abandoned, np.zeros(len(fresh), dtype=bool)])
            self.weak = np.concatenate([self.weak, np.zeros(len(fresh), dtype=int)])
            self.granted = np.concatenate([self.granted, granted[fresh]])
        self.committed = self._by_label(new)
        paying = ~self.abandoned & (month < self.online - 1)  # a project's lead months, from its commitment
        spend = self.granted * self.capex[self.unit] * MONTHS_PER_YEAR * self.capacity / np.maximum(self.lead[self.unit], 1)
        self.grant_spend = float(np.where(paying, spend, 0.0).sum())
        self.building = self._by_label(self._per_unit(np.where(~self.abandoned & (self.online > month + 1), self.capacity, 0.0)))
        self.next_capacity = self.online_capacity(month + 1)
        self.running = self._by_label(self.next_capacity)

    def _grant_share(self, month: int) -> np.ndarray:
        """[U] share of the capex of a project committed in ``month`` a capital grant pays."""
        grant = self.grant
        open_now = grant.start <= month < grant.start + grant.months
        return np.where(self._grant_units & open_now, grant.share, 0.0)

    # ------------------------------------------------------------------ capacity
    def online_capacity(self, month: int) -> np.ndarray:
        """[U] t/month of new capacity running in ``month`` (ramped up; abandoned projects never run)."""
        share = ramp_share(month, self.online, self.ramp[self.unit])
        return self._per_unit(np.where(self.abandoned, 0.0, self.capacity * share))

    def mine_capacity(self) -> np.ndarray:
        """[X, D] t REO/month of new mines running next month (after ``step``), by nation and deposit."""
        out = np.zeros((self._n_nations, self._n_deposits))
        out[self.nation[self.mines], self.deposit[self.mines]] = self.next_capacity[self.mines]
        return out

    def plant_capacity(self) -> np.ndarray:
        """[K] t/month of new capacity running next month (after ``step``) at each plant."""
        return self.next_capacity @ self.weight

    def _per_unit(self, per_project: np.ndarray) -> np.ndarray:
        return np.bincount(self.unit, per_project, minlength=len(self.stage))

    def _by_label(self, per_unit: np.ndarray) -> np.ndarray:
        """[labels] t/yr of a [U] t/month array."""
        return np.bincount(self._label_of, MONTHS_PER_YEAR * per_unit, minlength=len(self.labels))
