"""The levers at run time: when projects come online, the state of an agreement, partner
disruptions, the progress of substitution, and what each lever spends every month.

The model calls these at the stage of its step where each lever acts (docs/ODD.md §3);
the rules themselves are the pure functions of ``abm.levers``. Every random draw a lever
needs comes from its own generator and is drawn whether the lever is on or not, so
switching levers never changes the random numbers any other process sees: resilience
gained is a paired comparison under common random numbers.
"""

import numpy as np

from abm.levers import LEVER_SECTIONS, mine_online_month, refinery_online_month, substitution_target
from abm.metrics import USD_PER_T_PER_USD_PER_KG
from abm.scenario import Scenario


class Programmes:
    """Lever state of one run and the policy cost [levers] of the current month (USD)."""

    def __init__(self, spec: Scenario, rng: np.random.Generator) -> None:
        self.spec = spec
        self.review_delayed = bool(rng.random() < spec.domestic_mining.review_delay_probability)
        self.substitution_lead = int(
            rng.integers(spec.substitution.lead_months_min, spec.substitution.lead_months_max + 1)
        )
        self.mine_online = mine_online_month(spec.domestic_mining, self.review_delayed)
        self.refinery_online = refinery_online_month(spec.refining)
        self.agreement_in_force = spec.agreement.enabled
        exporter = spec.shock.exporter
        self._agreement_pairs = np.array(
            [x == exporter and a in spec.agreement.regions for a, x in spec.tension.parsed_pairs], dtype=bool
        )
        self.agreement_breached_at: int | None = None
        self._rng = rng
        self._partner_outage_left = np.zeros(len(spec.partnership.partners), dtype=int)
        self.names = tuple(LEVER_SECTIONS)
        self.cost = np.zeros(len(self.names))

    # ------------------------------------------------------------- policy stage
    def tension_means(self) -> np.ndarray:
        """Level each pair's tension reverts to: lower for the agreement's partners while it holds."""
        means = np.full(len(self._agreement_pairs), self.spec.tension.mean)
        if self.agreement_in_force:
            means[self._agreement_pairs] -= self.spec.agreement.tension_relief
        return np.clip(means, 0.0, 1.0)

    def check_breach(self, tension: np.ndarray, month: int) -> np.ndarray:
        """Break the agreement for good when tension with a partner passes the threshold;
        the breach itself raises tension with every partner."""
        covered = self._agreement_pairs
        lever = self.spec.agreement
        if self.agreement_in_force and (tension[covered] > lever.breach_threshold).any():
            self.agreement_in_force = False
            self.agreement_breached_at = month
            tension = tension.copy()
            tension[covered] = np.minimum(tension[covered] + lever.breach_jump, 1.0)
        return tension

    def guaranteed_share(self) -> float:
        return self.spec.agreement.guaranteed_share if self.agreement_in_force else 0.0

    def partner_availability(self) -> dict[str, float]:
        """Share of capacity each partner keeps this month; disruptions start at random.
        The draws happen every month whether the partnership is on or not."""
        lever = self.spec.partnership
        starts = self._rng.random(len(lever.partners)) < lever.outage_probability
        self._partner_outage_left = np.where(
            (self._partner_outage_left == 0) & starts, lever.outage_months, self._partner_outage_left
        )
        disrupted = self._partner_outage_left > 0
        self._partner_outage_left = np.maximum(self._partner_outage_left - 1, 0)
        if lever.share <= 0:
            return {}
        return {p: 1.0 - lever.outage_cut * d for p, d in zip(lever.partners, disrupted, strict=True)}

    # ------------------------------------------------------------ supply stage
    def floor_in_force(self, month: int) -> bool:
        lever = self.spec.price_floor
        return lever.usd_per_kg > 0 and lever.start <= month < lever.start + lever.months

    def intensity_after_substitution(self, intensity: np.ndarray, element_mask: np.ndarray, month: int) -> np.ndarray:
        """Once research succeeds, intensity falls by at most ``max_cut_per_year`` a year
        toward ``1 - target``; before that, nothing changes."""
        lever = self.spec.substitution
        if lever.usd_per_year <= 0 or month < self.substitution_lead:
            return intensity
        floor = 1.0 - substitution_target(lever)
        return np.where(element_mask, np.maximum(intensity - lever.max_cut_per_year / 12.0, floor), intensity)

    # --------------------------------------------------------------- accounts
    def account(self, model, month: int) -> None:
        """What each lever spent this month, USD (a negative stockpile cost is net sales)."""
        spec, cost = self.spec, dict.fromkeys(self.names, 0.0)
        mining = spec.domestic_mining
        build = max(mining.build_months, 1)  # at least one month of spending
        if mining.tonnes_per_year > 0 and self.mine_online - build <= month < max(self.mine_online, build):
            cost["domestic_mining"] = mining.capex_usd_per_t_per_year * mining.tonnes_per_year / build
        refining = spec.refining
        lead = max(self.refinery_online, 1)
        if refining.tonnes_per_year > 0 and month < lead:
            saving = refining.joint_venture_cost_saving if refining.joint_venture else 0.0
            cost["refining"] = refining.capex_usd_per_t_per_year * (1.0 - saving) * refining.tonnes_per_year / lead
        if spec.substitution.usd_per_year > 0 and month < self.substitution_lead:
            cost["substitution"] = spec.substitution.usd_per_year / 12.0
        cost["recycling"] = sum(r.subsidy_usd for r in model.recyclers)
        for stock in model.stockpiles:
            price = model.trade_price[:, stock.region_index]
            bought = stock.bought + (stock.initial_reserve if month == 0 else 0.0)
            traded = (bought - stock.sold) * price
            holding = spec.stockpile.holding_cost_per_year / 12.0 * (stock.reserve + stock.oxide) * price
            cost["stockpile"] += float((traded + holding).sum() * USD_PER_T_PER_USD_PER_KG)
        users = model.end_users
        contract_value = (users.contract_received * model.contract_price).sum(axis=1) * USD_PER_T_PER_USD_PER_KG  # [B]
        book = model.contract_book.sum(axis=2).mean(axis=1)  # [B] contracted share of need
        with np.errstate(divide="ignore", invalid="ignore"):
            per_book = np.where(book > 0, contract_value / np.where(book > 0, book, 1.0), 0.0)
        cost["partnership"] += spec.partnership.premium * float(model.partner_share @ per_book)
        cost["contracts"] += spec.contracts.premium * float(model.diversified_share @ per_book)
        if self.agreement_in_force:
            exporter = next(n for n in model.nations if n.code == spec.shock.exporter)
            guaranteed = spec.agreement.guaranteed_share * exporter.export_reference  # [P] t
            cost["agreement"] = (
                spec.agreement.premium * float(guaranteed @ model.world_product_price()) * USD_PER_T_PER_USD_PER_KG
            )
        if self.floor_in_force(month):
            floor = spec.price_floor
            covered = np.isin(model.elements, floor.elements)
            region = model.regions.index(floor.region)
            top_up = np.maximum(floor.usd_per_kg - model.trade_price[:, region], 0.0) * covered  # [E] USD/kg
            cost["price_floor"] += float(top_up @ model.oxide_sold[:, region]) * USD_PER_T_PER_USD_PER_KG
        if spec.investment.enabled:
            cost["capital_grant"] = model.investors.grant_spend
        self.cost = np.array([cost[name] for name in self.names])
