"""RareEarthModel: the global rare earth supply chain under trade policy, month by month.

Builds exporting nations, refiners, importers and recyclers from the 2024 calibration
(``abm/data``) and a scenario, and steps them in the order of docs/ODD.md §3:
policy, production, concentrate trade, separation, recycling, purchase plans, market
clearing, consumption, investment, data collection.
"""

from pathlib import Path

import mesa
import numpy as np

from abm.agents import ExportingNation, Importer, Recycler, Refiner
from abm.data import load_calibration
from abm.market import clear_markets, price_areas, prorata_fill, update_prices
from abm.policy import evolve_tension, export_rules
from abm.scenario import Scenario, load_scenario

# The world market in the tidy output: importers outside the dominant exporter.
WORLD = "world"
# Region label of a world total (recycled, consumed, losses, stocks).
ALL = "all"

# What DataCollector records each step: model attributes, each an array with fixed labels.
RECORDED = (
    "price", "demand", "supply", "shortfall", "stockpile", "tension", "quota",
    "supply_by_origin", "mined", "exports", "spend", "recycled", "consumed", "losses", "stocks",
)


def resolve_scenario(scenario: Scenario | str | Path | None) -> Scenario:
    """A Scenario from a Scenario, a path to a TOML file, or None (the defaults)."""
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


class RareEarthModel(mesa.Model):
    """Monthly agent-based model of rare earth mining, separation, trade and use.

    Every keyword is plain, so ``mesa.batch_run`` and SolaraViz can build it: ``rng``
    (seed), ``scenario`` (path or Scenario), and overrides of the scenario's
    ``horizon_months``, ``quota_cut``, ``shock_start``, ``shock_months`` and
    ``tension_volatility``; an override is validated like the same key in a file.
    """

    def __init__(
        self,
        rng: int | np.random.Generator | None = None,
        scenario: Scenario | str | Path | None = None,
        horizon_months: int | None = None,
        quota_cut: float | None = None,
        shock_start: int | None = None,
        shock_months: int | None = None,
        tension_volatility: float | None = None,
    ) -> None:
        super().__init__(rng=rng)
        self.spec = resolve_scenario(scenario).with_overrides(
            horizon_months=horizon_months,
            quota_cut=quota_cut,
            shock_start=shock_start,
            shock_months=shock_months,
            tension_volatility=tension_volatility,
        )
        calibration = load_calibration()
        self.elements = calibration.elements
        self.regions = calibration.regions
        self.reference_price = calibration.reference_price
        self.deposits = calibration.deposits
        self.tension_pairs = self.spec.tension.pairs
        self.month = 0
        self.market = self.spec.market
        self._build_agents(calibration)
        self._init_state()
        self.datacollector = mesa.DataCollector(model_reporters={name: name for name in RECORDED})
        self.datacollector.collect(self)

    # ----------------------------------------------------------------- set-up
    def _build_agents(self, calibration) -> None:
        n_elements, n_regions = len(self.elements), len(self.regions)
        index = {r: i for i, r in enumerate(self.regions)}
        market = self.market

        refined = np.zeros((n_regions, n_elements))  # t / yr of each oxide mined in each nation, after separation
        mines: dict[str, np.ndarray] = {}
        for nation, deposit, capacity in calibration.mines:
            mines.setdefault(nation, np.zeros(len(calibration.deposits)))
            mines[nation][calibration.deposits.index(deposit)] += capacity
        for nation, capacity in mines.items():
            refined[index[nation]] = capacity @ calibration.basket * market.separation_yield
        world_supply = refined.sum(axis=0)  # [E] t / yr: the base year is taken as balanced
        # demand[r, s, e] t / month
        demand = np.einsum("e,es,sr->rse", world_supply, calibration.sector_share, calibration.region_share) / 12.0

        separation = np.zeros(n_regions)
        for nation, capacity, _ in calibration.refiners:
            separation[index[nation]] += capacity
        # Sellers start at their target cover, and contracts are spread over origins,
        # both in proportion to separation capacity.
        separation_share = separation / separation.sum()
        world_need = demand.sum(axis=(0, 1))  # [E]
        for nation, capacity, feed in calibration.refiners:
            Refiner(
                self, nation, index[nation], capacity / 12.0, index[feed],
                oxide=market.target_cover_months * world_need * separation_share[index[nation]],
            )
        # Every region that mines or separates can restrict its exports. Its reference
        # exports start at its base-year oxide surplus: output in proportion to separation
        # capacity (as the refiners' stocks above) less its own demand.
        domestic_need = demand.sum(axis=1)  # [R, E]
        surplus = separation_share[:, None] * world_supply[None, :] / 12.0 - domestic_need
        for nation in sorted(set(mines) | {n for n, _, _ in calibration.refiners}, key=index.get):
            i = index[nation]
            ExportingNation(
                self, nation, i, mines.get(nation, np.zeros(len(calibration.deposits))) / 12.0,
                calibration.basket, self.reference_price, reference_exports=np.maximum(surplus[i], 0.0),
            )
        lifetimes = np.rint(calibration.product_lifetime_years * 12).astype(int)
        contract_start = self.rng.integers(0, market.contract_months, size=demand.shape[:2])
        for r, region in enumerate(self.regions):
            for s, sector in enumerate(calibration.sectors):
                if demand[r, s].sum() <= 0:
                    continue
                Importer(
                    self, region, r, sector, demand[r, s], calibration.demand_growth[s],
                    lifetimes[s], calibration.recyclable_fraction[s], separation_share,
                    self.reference_price, market, int(contract_start[r, s]),
                )
        importers = list(self.agents_by_type[Importer])
        for r, region in enumerate(self.regions):
            sources = [imp for imp in importers if imp.region_index == r and imp.recyclable_fraction > 0]
            if sources:
                Recycler(self, region, r, sources)

    def _init_state(self) -> None:
        n_elements, n_regions = len(self.elements), len(self.regions)
        self.nations = self.agents_by_type[ExportingNation]
        self.refiners = self.agents_by_type[Refiner]
        self.importers = self.agents_by_type[Importer]
        self.recyclers = self.agents_by_type[Recycler]
        self._sellers = list(self.refiners) + list(self.recyclers)
        self._importers = list(self.importers)
        self._buyer_region = np.array([imp.region_index for imp in self._importers])
        self._buyer_onehot = (self._buyer_region[:, None] == np.arange(n_regions)[None, :]).astype(float)  # [B, R]
        self.importing_regions = tuple(sorted({imp.region for imp in self._importers}, key=self.regions.index))
        self.exporters = tuple(n.code for n in self.nations)
        has_market = {s.region for s in self._sellers} | set(self.importing_regions)
        self.price_zones = tuple(c for c in self.exporters if c in has_market) + (WORLD,)
        importing = np.isin(np.array(self.regions), self.importing_regions)
        self._world_regions = importing & (np.array(self.regions) != self.spec.shock.exporter)
        self._pairs = [pair.split("-") for pair in self.tension_pairs]
        self._importer_pair = [
            next((i for i, (a, x) in enumerate(self._pairs) if a == imp.region and x == self.spec.shock.exporter), None)
            for imp in self._importers
        ]

        self.regional_price = np.repeat(self.reference_price[:, None], n_regions, axis=1)  # [E, R]
        self._previous_position = np.zeros((n_elements, n_regions))
        for seller in self._sellers:
            self._previous_position[:, seller.region_index] += seller.oxide
        self.tension = np.full(len(self._pairs), self.spec.tension.mean)
        self.price = self._zone_prices()
        self._collect_importers()
        self.quota = np.full((n_elements, len(self.exporters)), np.nan)
        self.supply_by_origin = np.zeros((n_elements, n_regions))
        self.mined = np.zeros((n_elements, len(self.exporters)))
        self.exports = np.zeros((n_elements, len(self.exporters)))
        self.trade = np.zeros((n_elements, n_regions, n_regions))  # [E, from, to] t this month
        self.restricted = np.zeros((n_elements, n_regions, n_regions), dtype=bool)
        self.recycled = np.zeros(n_elements)
        self.consumed = np.zeros(n_elements)
        self.losses = np.zeros(n_elements)
        self.stocks = self._total_stocks()

    # ------------------------------------------------------------------- step
    def step(self) -> None:
        """One month, in the order of docs/ODD.md §3 (process overview)."""
        self._set_export_rules()
        for nation in self.nations:
            nation.produce(
                self.regional_price[:, nation.region_index], self.market.supply_elasticity,
                self._outage[nation.region_index],
            )
        self._trade_concentrate()
        self.refiners.do("separate", self.market.separation_yield)
        self.recyclers.do("recycle", self.market.collection_rate)
        self._plan_purchases()
        self._clear_markets()
        self._invest()
        self._record_flows()
        self.month += 1
        self.datacollector.collect(self)
        self.running = self.month < self.spec.horizon_months

    def _set_export_rules(self) -> None:
        """Tension evolves; each nation sets its export cap; bans close trade links;
        scripted mine outages take effect."""
        self.tension = evolve_tension(self.tension, self.spec.tension, self.rng)
        rules = export_rules(self.spec, self.month, self.tension, self.regions, self.elements, self.deposits)
        for nation in self.nations:
            nation.set_export_policy(rules.quota_cut[nation.region_index], rules.banned[nation.region_index])
        self._outage = rules.outage
        # allowed[e, a, b]: may region a sell element e to region b this month
        self._allowed = np.ones((len(self.elements), len(self.regions), len(self.regions)), dtype=bool)
        for nation in self.nations:
            self._allowed[:, nation.region_index, :] = ~nation.banned
        self.quota = np.stack([n.export_cap for n in self.nations], axis=1)
        self.quota[np.isinf(self.quota)] = np.nan

    def _trade_concentrate(self) -> None:
        """Refiners buy mixed concentrate: their priority source first, then any nation
        that does not ban them; concentrate nobody can take stays at the mine."""
        nations, refiners = list(self.nations), list(self.refiners)
        supply = np.array([n.concentrate_total for n in nations])
        wanted = np.array([r.feed_wanted for r in refiners])
        source = np.array([n.region_index for n in nations])
        destination = np.array([r.region_index for r in refiners])
        # A mixed concentrate carries every element, so a ban on any element stops it.
        blocked = ~self._allowed.all(axis=0)[source][:, destination]
        open_links = np.where(blocked, 0.0, np.inf)
        priority = np.where(source[:, None] == np.array([r.feed_priority for r in refiners])[None, :], np.inf, 0.0)
        first = prorata_fill(supply, wanted, np.minimum(priority, open_links))
        second = prorata_fill(supply - first.sum(axis=1), wanted - first.sum(axis=0), open_links)
        for i, nation in enumerate(nations):
            for k, refiner in enumerate(refiners):
                tonnes = first[i, k] + second[i, k]
                if tonnes > 0:
                    refiner.take_feed(nation.ship_concentrate(tonnes), tonnes)

    def _plan_purchases(self) -> None:
        noise = np.exp(self.market.demand_volatility * self.rng.standard_normal((len(self._importers), len(self.elements))))
        for k, importer in enumerate(self._importers):
            pair = self._importer_pair[k]
            tension = 0.0 if pair is None else float(self.tension[pair])
            importer.plan_purchases(self.regional_price[:, importer.region_index], tension, noise[k])

    def _clear_markets(self) -> None:
        """Contracts, then spot; sellers give up stock pro rata; prices move on inventory."""
        n_elements, n_regions = len(self.elements), len(self.regions)
        available = np.zeros((n_elements, n_regions))
        for seller in self._sellers:
            available[:, seller.region_index] += seller.oxide
        want = self._per_buyer("want")  # [E, B]
        contract = np.stack([imp.contract_volume for imp in self._importers], axis=2)  # [E, R, B]
        export_cap = np.full((n_elements, n_regions), np.inf)
        for nation in self.nations:
            export_cap[:, nation.region_index] = nation.export_cap
        allowed = self._allowed
        clearing = clear_markets(available, want, contract, self._buyer_region, export_cap, allowed)

        sold = clearing.sold
        with np.errstate(divide="ignore", invalid="ignore"):
            sold_fraction = np.where(available > 0, sold / available, 0.0)
        for seller in self._sellers:
            seller.sell(sold_fraction[:, seller.region_index])
        received, contract_received = clearing.received, clearing.contract_flow.sum(axis=1)
        for k, importer in enumerate(self._importers):
            importer.consume(received[:, k], contract_received[:, k], self.regional_price[:, importer.region_index])

        trade = clearing.flow @ self._buyer_onehot  # [E, R_from, R_to]
        # Contracts move at agreed prices; only spot trade ties two regions' prices together.
        spot_trade = clearing.spot_flow @ self._buyer_onehot
        exports = trade.sum(axis=2) - np.einsum("err->er", trade)
        for nation in self.nations:
            nation.record_exports(exports[:, nation.region_index])
        self._collect_importers()
        by_region = self._by_region
        leftover = available - sold
        unmet = by_region(want - received)
        need = by_region(self._per_buyer("need"))
        areas = price_areas(allowed, clearing.export_cap_left, spot_trade, leftover)
        position = leftover - np.maximum(unmet, 0.0)
        self.regional_price = update_prices(
            self.regional_price, areas, need + available, position, self._previous_position, need,
            self.reference_price, self.market.price_adjustment, self.market.target_cover_months,
            self.market.trend_months, self.market.min_price_ratio,
        )
        self._previous_position = position
        # A region with no market of its own (mines only) quotes the world price.
        idle = (need + available).sum(axis=0) <= 0
        self.regional_price[:, idle] = self._zone_prices()[:, -1:]
        self.price = self._zone_prices()
        self.supply_by_origin = sold
        self.exports = exports[:, [n.region_index for n in self.nations]]
        self.trade = trade
        # A link is restricted when a ban closes it or its exporter's quota is used up.
        quota_binding = np.isfinite(export_cap) & (clearing.export_cap_left <= 1e-9)
        self.restricted = ~allowed | quota_binding[:, :, None]

    def _invest(self) -> None:
        """Capacity grows at the scenario's trend rate (new projects arrive steadily)."""
        factor = (1.0 + self.market.capacity_growth_per_year) ** (1.0 / 12.0)
        self.nations.do("grow", factor)
        self.refiners.do("grow", factor)

    # --------------------------------------------------------------- records
    def _by_region(self, per_buyer: np.ndarray) -> np.ndarray:
        """Sum a per-buyer [E, B] array into [E, R]."""
        return per_buyer @ self._buyer_onehot

    def _zone_prices(self) -> np.ndarray:
        """[E, Z] posted prices: each exporter's domestic zone, then the world market:
        the need-weighted mean price paid by importers outside the dominant exporter."""
        columns = [self.regional_price[:, self.regions.index(code)] for code in self.price_zones[:-1]]
        need = self._by_region(self._per_buyer("need"))
        weight = need[:, self._world_regions] + 1e-12
        world = (self.regional_price[:, self._world_regions] * weight).sum(axis=1) / weight.sum(axis=1)
        return np.stack([*columns, world], axis=1)

    def _per_buyer(self, attribute: str) -> np.ndarray:
        """[E, B] one importer attribute, importers in model order."""
        return np.stack([getattr(imp, attribute) for imp in self._importers], axis=1)

    def _importing(self, attribute: str) -> np.ndarray:
        totals = self._by_region(self._per_buyer(attribute))
        return totals[:, [self.regions.index(r) for r in self.importing_regions]]

    def _collect_importers(self) -> None:
        self.demand = self._importing("need")
        self.supply = self._importing("received")
        self.shortfall = self._importing("shortfall")
        self.stockpile = self._importing("stock")
        self.spend = self._importing("spend")

    def _record_flows(self) -> None:
        self.mined = np.stack([n.mined for n in self.nations], axis=1)
        self.recycled = sum((r.recycled for r in self.recyclers), np.zeros(len(self.elements)))
        self.consumed = sum((imp.consumed for imp in self._importers), np.zeros(len(self.elements)))
        self.losses = sum((r.losses for r in self.refiners), np.zeros(len(self.elements)))
        self.stocks = self._total_stocks()

    def _total_stocks(self) -> np.ndarray:
        """[E] t held anywhere: concentrate, refiners' feed, sellers' oxide, importers' stock."""
        return (
            sum((n.concentrate for n in self.nations), np.zeros(len(self.elements)))
            + sum((r.feed for r in self.refiners), np.zeros(len(self.elements)))
            + sum((s.oxide for s in self._sellers), np.zeros(len(self.elements)))
            + sum((imp.stock for imp in self._importers), np.zeros(len(self.elements)))
        )

    def labels(self) -> dict[str, tuple[str, ...]]:
        """Region labels of the second axis of each recorded array (first axis: elements)."""
        return {
            "price": self.price_zones,
            "demand": self.importing_regions,
            "supply": self.importing_regions,
            "shortfall": self.importing_regions,
            "stockpile": self.importing_regions,
            "tension": self.tension_pairs,
            "quota": self.exporters,
            "supply_by_origin": self.regions,
            "mined": self.exporters,
            "exports": self.exporters,
            "spend": self.importing_regions,
            "recycled": (ALL,),
            "consumed": (ALL,),
            "losses": (ALL,),
            "stocks": (ALL,),
        }
