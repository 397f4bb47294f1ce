"""ExportingNation: a nation that mines or makes rare earth products, and the export rules it sets."""

import mesa
import numpy as np

from abm.levers import ramp


class ExportingNation(mesa.Agent):
    """Mines fixed baskets of elements and decides how much of its oxide may leave.

    Mines of one deposit type produce all their elements together in the deposit's
    basket (``basket`` [D, E], share of total REO), so a cut in one deposit's output
    cuts every co-product. Each month a mine runs at ``(basket value at domestic
    prices / its 2024 value) ** supply_elasticity`` of capacity, capped at 1: output
    falls when prices at home fall (e.g. behind a binding export quota), never rises
    above capacity (new capacity takes years: the model's investment step), and stays
    within a production quota where the nation has a domestic supply policy
    (``abm.domestic_policy``).

    Its export rules are per product (concentrates, oxides, metals, magnets): the export
    cap of a percentage cut is ``(1 - quota_cut) x`` what it would export this month
    without its percentage cuts and licences (``abm.counterfactual``), so a 40 % cut is
    a cut of 40 % against the run without it; a licence on every destination caps its
    exports at what it grants (``RareEarthModel._licensed_flows``; one scoped to some
    destinations and a destination quota ship per link instead). ``export_reference``,
    the mean of the last twelve months of actual exports of each product (frozen while
    the product is capped), weighs a tonnage quota's split and bounds smuggling. A quota in tonnes (China's 2009-2014 quotas were tonnes of REO, all elements
    together) is split over the products it covers in proportion to the REO content of
    that reference (``_split``); a quota on every element covers the nation's whole REO
    output, of which the modelled oxides are only a share (``modelled_share``), so it
    allows that share of its tonnes. Where several apply, the tightest cap wins.
    ``export_tax`` [P] is the ad valorem tax on its exports: a wedge on every link out of
    it (``abm.trade``). A nation that only separates (Malaysia) has no mines but can
    restrict too.

    Unofficial supply: while a quota is in force and the export price stands above the
    domestic price plus tax, smuggling moves up to ``smuggling_share`` of the reference
    exports abroad outside the quota (all of it once the premium reaches 100 %, in
    proportion below that). Customs see only the official exports: the quota goes
    unfilled whenever demand abroad falls below quota plus allowance (facts.md: only
    52-56 % of the 2011-2012 quotas was used; the replay fills nearly all of it, docs/ODD.md §9).
    """

    def __init__(
        self,
        model: mesa.Model,
        code: str,
        region_index: int,
        mine_capacity: np.ndarray,
        basket: np.ndarray,
        reference_price: np.ndarray,
        reference_exports: np.ndarray,
        reo_content: np.ndarray,
    ) -> None:
        super().__init__(model)
        self.code = code
        self.region_index = region_index
        self.mine_capacity = np.array(mine_capacity, dtype=float)  # [D] t REO / month
        self.basket = basket
        self._reference_basket_value = basket @ reference_price  # [D] USD/kg of REO
        self.reo_content = reo_content  # [P] t REO per t of each product
        self._export_history = np.tile(np.asarray(reference_exports, dtype=float), (12, 1))  # [12, P]
        self.export_reference = self._export_history.mean(axis=0)  # [P] t / month
        n_products = len(reo_content)
        self.export_cap = np.full(n_products, np.inf)
        self.export_tax = np.zeros(n_products)
        mined_reo = float(self.mine_capacity.sum())
        self.modelled_share = float(self.mine_capacity @ basket.sum(axis=1)) / mined_reo if mined_reo > 0 else 1.0
        self.banned = np.zeros((n_products, len(model.regions)), dtype=bool)  # [P, R] destinations barred
        self.mined = np.zeros(basket.shape[1])  # [E] t of each element's oxide mined this month
        self.output = np.zeros(len(self.mine_capacity))  # [D] t REO of concentrate mined this month
        self.concentrate = np.zeros(len(self.mine_capacity))  # [D] t REO of concentrate unsold
        self.project_capacity = np.zeros_like(self.mine_capacity)  # [D] t / month of new mines running
        self.invested_capacity = np.zeros_like(self.mine_capacity)  # [D] t / month of private investment running
        self._projects: list[tuple[int, float, int, int]] = []  # deposit, t / month, online, ramp

    def produce(self, domestic_price: np.ndarray, supply_elasticity: float, outage: np.ndarray,
                quota: np.ndarray | None = None) -> None:
        """Mine this month at the price producers get at home (a price floor included);
        ``outage`` [D] is the share of each deposit type's output lost, ``quota`` [D] the
        share of each deposit type's capacity its production quota lets run (``abm.domestic_policy``)."""
        value_ratio = (self.basket @ domestic_price) / self._reference_basket_value
        utilisation = np.minimum(1.0, value_ratio**supply_elasticity)
        if quota is not None:
            utilisation = np.minimum(utilisation, quota)
        self.output = (self.mine_capacity + self.project_capacity + self.invested_capacity) * utilisation * (1.0 - outage)
        self.mined = self.output @ self.basket
        self.concentrate = self.concentrate + self.output

    def set_export_policy(
        self,
        quota_cut: np.ndarray,
        banned: np.ndarray,
        tonnage_quotas: tuple[tuple[float, np.ndarray], ...] = (),
        export_tax: np.ndarray | None = None,
        reference: np.ndarray | None = None,
        licensed: np.ndarray | None = None,
    ) -> None:
        """Adopt this month's rules: ``quota_cut`` [P] share of ``reference`` [P] t (the
        counterfactual exports this month, ``abm.counterfactual``; needed when a cut is
        in force) withheld, ``banned`` [P, R] destinations that may not buy each product,
        ``tonnage_quotas`` (t REO / month, [P] products covered together), ``licensed``
        [P] t its licences on every destination grant (inf where none applies) and
        ``export_tax`` [P]. Every cap applies; a product under several gets the tightest."""
        cap = np.full(len(quota_cut), np.inf)
        if quota_cut.any():
            cap = np.where(quota_cut > 0, (1.0 - quota_cut) * reference, np.inf)
        for tonnes, covered in tonnage_quotas:
            cap = np.where(covered, np.minimum(cap, self._split(tonnes, covered)), cap)
        self.export_cap = cap if licensed is None else np.minimum(cap, licensed)
        self.banned = banned
        self.export_tax = np.zeros_like(self.export_tax) if export_tax is None else export_tax

    def _split(self, tonnes: float, covered: np.ndarray) -> np.ndarray:
        """[P] t of each covered product a tonnage quota (t REO) allows: split in
        proportion to the REO in the frozen reference exports or, for a nation that has
        not exported them, evenly over the products; a quota on every product counts
        every rare earth, of which the modelled oxides are ``modelled_share``."""
        weight = np.where(covered, self.export_reference * self.reo_content, 0.0)
        if weight.sum() <= 0:
            weight = np.where(covered, self.reo_content, 0.0)
        reo = tonnes * (self.modelled_share if covered.all() else 1.0) * weight / weight.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(covered, reo / np.where(self.reo_content > 0, self.reo_content, 1.0), np.inf)

    def unofficial_allowance(
        self, world_price: np.ndarray, domestic_price: np.ndarray, smuggling_share: float
    ) -> np.ndarray:
        """[P] t that may leave outside the quota this month, from last month's premium
        (``world_price`` and ``domestic_price`` [P] USD/kg)."""
        premium = np.clip(world_price / (domestic_price * (1.0 + self.export_tax)) - 1.0, 0.0, 1.0)
        return np.where(np.isfinite(self.export_cap), smuggling_share * premium * self.export_reference, 0.0)

    def record_exports(self, exports: np.ndarray) -> None:
        """Add this month's exports [P] t to the trailing 12 months of every product not
        under an export cap (a capped product's reference stays frozen)."""
        unrestricted = np.isinf(self.export_cap)
        history = self._export_history
        history[:-1, unrestricted] = history[1:, unrestricted]
        history[-1, unrestricted] = exports[unrestricted]
        self.export_reference = history.mean(axis=0)

    def plan(self, deposit: int, capacity: float, online_month: int, ramp_months: int) -> None:
        """New mines of one deposit type: ``capacity`` t REO/month from ``online_month``,
        ramping up; not part of the trend growth of existing capacity. A nation can have
        several (a historical project and a lever's)."""
        self._projects.append((deposit, capacity, online_month, ramp_months))
        self._commission(self.model.month)

    def project_sizes(self) -> np.ndarray:
        """[D] t REO/month of its new mines at full size (``plan``), running or not."""
        sizes = np.zeros_like(self.mine_capacity)
        for deposit, capacity, _, _ in self._projects:
            sizes[deposit] += capacity
        return sizes

    def _commission(self, month: int) -> None:
        self.project_capacity = np.zeros_like(self.mine_capacity)
        for deposit, capacity, online_month, ramp_months in self._projects:
            self.project_capacity[deposit] += capacity * ramp(month, online_month, ramp_months)

    def grow(self, monthly_factor: float) -> None:
        """Set next month's capacity: trend growth of existing mines, new mines' ramp
        (private investment's mines are set by ``abm.investment``)."""
        self.mine_capacity = self.mine_capacity * monthly_factor
        if self._projects:
            self._commission(self.model.month + 1)
