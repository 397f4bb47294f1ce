"""The exporter's domestic supply policy: production quotas steered toward a domestic
price band, state reserve trading and enforcement against unofficial supply.

China has set total-quantity quotas for mining (by ore type: rock-type light ore and
ion-adsorption clay) and for separation since 2007, issued by MIIT in batches; its
state reserve bought domestically mined rare earths when prices fell (2011-12, 2014);
and its crackdowns on illegal mining and smuggling ran through the 2010s. Under an
export cut the glut behind the wall would push its domestic prices down; this policy
holds them in a band. The rules (docs/ODD.md §7.27; parameters and sources in
``abm/data/parameters.csv``, section ``domestic_policy``):

- **Price index.** For each line of quota, the value of the policy's ``elements`` in it
  at the nation's domestic oxide prices over their value at reference prices (the
  base-year prices of ``abm/data/elements.csv``): a mining quota's in its deposit
  type's basket, the separation quota's in the nation's whole mined basket.
- **Quotas.** Every ``review_months`` from ``start`` each quota (a share of capacity)
  moves by ``quota_step`` down while its index is below ``band_low``, up while it is
  above ``band_high`` (within [``min_quota_share``, 1]). A mining quota caps the mines
  of its deposit type; the separation quota caps the throughput of the nation's
  separation plants (imported concentrate included).
- **State reserve** (``abm.agents.stockpile.StateReserve``): each month, element by
  element, it buys ``reserve_response x`` the relative gap below ``band_low x``
  reference of a month of the nation's mined output, within a budget of
  ``reserve_usd_per_year``, and releases as much from its stock above ``band_high``.
- **Enforcement.** From ``enforcement_start`` it stops ``enforcement`` of unofficial
  supply; the rest gets through: mines run up to their quota plus ``1 - enforcement``
  of the capacity the quota idles (illegal mining), and smugglers move ``1 -
  enforcement`` of their allowance (``ExportingNation.unofficial_allowance``). Before
  its start unofficial supply is unchecked: quotas then cap nothing.
"""

from dataclasses import dataclass

import numpy as np

from abm.metrics import USD_PER_T_PER_USD_PER_KG
from abm.schema import ELEMENT_LIST, MONTHS, PRODUCER, SHARE, TONNES_PER_YEAR, USD, between, csv_default, months_from, spec


# An element whose value is at least this share of a quota line's (at reference prices)
# raises the quota when it is scarce, whatever the line's index: [approx] assumption, so
# that Pr (about a fifth of light ore's Nd-Pr-Dy-Tb value) counts and a trace of Dy does not.
MAIN_ELEMENT_SHARE = 0.1


@dataclass(frozen=True)
class DomesticPolicy:
    """The ``[domestic_policy]`` section: one exporter's supply policy (module docstring)."""

    enabled: bool = True
    nation: str = spec(PRODUCER, default="CN")
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=("Nd", "Pr", "Dy", "Tb"))
    start: int = csv_default("domestic_policy", "start", MONTHS)
    band_low: float = csv_default("domestic_policy", "band_low", between(1e-3, 100.0))
    band_high: float = csv_default("domestic_policy", "band_high", between(1e-3, 100.0))
    review_months: int = csv_default("domestic_policy", "review_months", months_from(1))
    quota_step: float = csv_default("domestic_policy", "quota_step", SHARE)
    min_quota_share: float = csv_default("domestic_policy", "min_quota_share", SHARE)
    reserve_response: float = csv_default("domestic_policy", "reserve_response", between(0.0, 100.0))
    reserve_usd_per_year: float = csv_default("domestic_policy", "reserve_usd_per_year", USD)
    reserve_capacity_t: float = csv_default("domestic_policy", "reserve_capacity_t", TONNES_PER_YEAR)
    enforcement: float = csv_default("domestic_policy", "enforcement", SHARE)
    enforcement_start: int = csv_default("domestic_policy", "enforcement_start", MONTHS)


class SupplyQuotas:
    """The quotas of one nation: ``mining`` [D] and ``separation`` shares of capacity.

    ``basket`` [D, E] share of each deposit type's REO in each element's oxide,
    ``capacity`` [D] t REO/month of the nation's mines (their mix weighs the separation
    index), ``reference_price`` [E] USD/kg, ``covered`` [E] the policy's elements."""

    def __init__(self, policy: DomesticPolicy, basket: np.ndarray, capacity: np.ndarray,
                 reference_price: np.ndarray, covered: np.ndarray) -> None:
        self.policy = policy
        value = basket * np.where(covered, reference_price, 0.0)[None, :]  # [D, E] USD/kg REO at reference
        self._weights = np.vstack([value, capacity @ value])  # [D + 1, E]: each deposit, then the nation
        self._reference = self._weights.sum(axis=1)  # [D + 1]
        self._reference_price = reference_price
        self.share = np.ones(len(capacity) + 1)  # [D + 1] mining quotas by deposit, then separation

    @property
    def mining(self) -> np.ndarray:
        """[D] share of each deposit type's capacity its mining quota allows."""
        return self.share[:-1]

    @property
    def separation(self) -> float:
        """Share of the nation's separation capacity its separation quota allows."""
        return float(self.share[-1])

    def index(self, domestic_price: np.ndarray) -> np.ndarray:
        """[D + 1] price index of each quota line at ``domestic_price`` [E] USD/kg (1 at
        reference prices); a line carrying none of the policy's elements reads 1."""
        value = self._weights @ (domestic_price / self._reference_price)
        return np.where(self._reference > 0, value / np.where(self._reference > 0, self._reference, 1.0), 1.0)

    def review(self, month: int, domestic_price: np.ndarray) -> None:
        """Move every quota by one bounded step toward its band in a review month (down
        where its index is below the band and none of its main elements, at least
        ``MAIN_ELEMENT_SHARE`` of its value, is above it; up where its index is above the
        band); and, in any month, release the whole quota of a line one of whose main
        elements is above the band (a glut of Nd does not hold back the ore a Pr
        shortage needs)."""
        policy = self.policy
        if month < policy.start:
            return
        main = self._weights >= MAIN_ELEMENT_SHARE * self._reference[:, None]  # [D + 1, E]
        scarce = (main & (domestic_price / self._reference_price > policy.band_high)[None, :]).any(axis=1)
        if (month - policy.start) % policy.review_months == 0:
            index = self.index(domestic_price)
            step = (index > policy.band_high).astype(float) - ((index < policy.band_low) & ~scarce)
            self.share = np.clip(self.share + policy.quota_step * step, policy.min_quota_share, 1.0)
        self.share = np.where(scarce, 1.0, self.share)

    def enforcement(self, month: int) -> float:
        """Share of unofficial supply stopped in ``month``."""
        return self.policy.enforcement if month >= self.policy.enforcement_start else 0.0

    def mine_cap(self, month: int) -> np.ndarray:
        """[D] share of each deposit type's capacity that may run: its quota plus the
        part of the rest illegal mining gets past enforcement."""
        return self.mining + (1.0 - self.mining) * (1.0 - self.enforcement(month))

    def separation_cap(self, month: int) -> float:
        """Share of separation capacity that may run (unlicensed plants past enforcement included)."""
        return self.separation + (1.0 - self.separation) * (1.0 - self.enforcement(month))


def reserve_trade(policy: DomesticPolicy, price: np.ndarray, reference_price: np.ndarray, covered: np.ndarray,
                  monthly_output: np.ndarray, held: float) -> tuple[np.ndarray, np.ndarray]:
    """([E] t the state reserve bids for, [E] t it offers) this month, at last month's
    domestic ``price`` [E] USD/kg: ``reserve_response`` x the relative gap below
    ``band_low`` (above ``band_high``) x ``monthly_output`` [E] t, for the policy's
    ``covered`` [E] elements; the purchases' cost at ``price`` within the monthly budget,
    and what it holds (``held`` t, every element) within ``reserve_capacity_t``."""
    low, high = policy.band_low * reference_price, policy.band_high * reference_price
    below = np.where(covered, np.clip(1.0 - price / low, 0.0, 1.0), 0.0)
    above = np.where(covered, np.clip(price / high - 1.0, 0.0, 1.0), 0.0)
    buy = policy.reserve_response * below * monthly_output
    cost = float(buy @ price) * USD_PER_T_PER_USD_PER_KG
    budget = policy.reserve_usd_per_year / 12.0
    if cost > budget:
        buy = buy * budget / cost
    room = max(policy.reserve_capacity_t - held, 0.0)
    if buy.sum() > room:
        buy = buy * room / buy.sum()
    return buy, policy.reserve_response * above * monthly_output
