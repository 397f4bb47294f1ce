"""Geopolitical tension and the export rules it drives: pure functions, no Mesa.

Tension is one number in [0, 1] per ordered pair ``"A-X"``: how strained the relation
is in which exporter X could restrict sales to A. Rules turn it into restrictions:
above ``quota_threshold`` the exporter cuts its export quota on every element, in
proportion to how far its mean tension is above the threshold; above
``ban_threshold`` it bans exports of ``ban_elements`` to that partner. Scripted events
(the scenario's shock and ``[[events]]``) add restrictions, export taxes and mine
outages on fixed months. The strictest rule in force wins: cuts and taxes combine by
maximum, bans by union; every tonnage quota in force caps its own elements, so an element
under two gets the tighter cap.
"""

from dataclasses import dataclass

import numpy as np

from abm.scenario import Scenario, TensionParameters


def evolve_tension(
    tension: np.ndarray, params: TensionParameters, rng: np.random.Generator, mean: np.ndarray | None = None
) -> np.ndarray:
    """One month of a mean-reverting process with escalation jumps, clipped to [0, 1].

    ``T' = T + reversion * (mean - T) + volatility * N(0, 1) + jump_size * Bernoulli(jump_probability)``

    ``mean`` (per pair) defaults to ``params.mean``; an agreement lowers it for its partners.

    Both random arrays are always drawn, so a run consumes the same random numbers
    whatever the tension does: two scenarios with one seed see one tension path.
    """
    noise = rng.standard_normal(tension.shape)
    jumps = rng.random(tension.shape) < params.jump_probability
    drift = params.reversion * ((params.mean if mean is None else mean) - tension)
    return np.clip(tension + drift + params.volatility * noise + params.jump_size * jumps, 0.0, 1.0)


def tension_quota_cut(mean_tension: float, params: TensionParameters) -> float:
    """Share of exports an exporter withholds at this tension (0 below the threshold)."""
    excess = (mean_tension - params.quota_threshold) / max(1.0 - params.quota_threshold, 1e-12)
    return params.max_tension_cut * float(np.clip(excess, 0.0, 1.0))


@dataclass(frozen=True)
class ExportRules:
    """Restrictions and disruptions in force this month."""

    quota_cut: np.ndarray  # [R, E] share of its reference exports each region withholds
    banned: np.ndarray  # [R, E, R] exporter, element, destination
    outage: np.ndarray  # [R, D] share of each nation's output of each deposit type lost
    tonnage_quotas: tuple[tuple[int, float, np.ndarray], ...]  # (region, t REO / month, [E] elements covered)
    export_tax: np.ndarray  # [R, E] ad valorem tax on exports


def _active(start: int, months: int, month: int) -> bool:
    return start <= month < start + months


def export_rules(
    scenario: Scenario,
    month: int,
    tension: np.ndarray,
    regions: tuple[str, ...],
    elements: tuple[str, ...],
    deposits: tuple[str, ...],
    guaranteed_share: float = 0.0,
) -> ExportRules:
    """The quota cuts, bans and mine outages in force in ``month`` given this month's tension.

    An agreement in force guarantees ``guaranteed_share`` of the dominant exporter's
    reference exports: its cut can then remove at most the rest.
    """
    cut = np.zeros((len(regions), len(elements)))
    banned = np.zeros((len(regions), len(elements), len(regions)), dtype=bool)
    outage = np.zeros((len(regions), len(deposits)))
    tonnage: list[tuple[int, float, np.ndarray]] = []
    tax = np.zeros((len(regions), len(elements)))
    element_index = {e: i for i, e in enumerate(elements)}

    def mask(names: tuple[str, ...]) -> np.ndarray:
        return np.isin(np.arange(len(elements)), [element_index[n] for n in names])

    shock = scenario.shock
    if shock.quota_cut > 0 and _active(shock.start, shock.months, month):
        row = regions.index(shock.exporter)
        cut[row] = np.maximum(cut[row], shock.quota_cut * mask(shock.elements))
    for event in scenario.events:
        if not _active(event.start, event.months, month):
            continue
        row = regions.index(event.nation)
        if event.kind == "quota" and event.tonnes_per_year > 0:
            tonnage.append((row, event.tonnes_per_year / 12.0, mask(event.elements)))
        elif event.kind == "quota":
            cut[row] = np.maximum(cut[row], event.cut * mask(event.elements))
        elif event.kind == "export_tax":
            tax[row] = np.maximum(tax[row], event.rate * mask(event.elements))
        elif event.kind == "ban":
            banned[row, :, regions.index(event.destination)] |= mask(event.elements)
        else:
            column = deposits.index(event.deposit)
            outage[row, column] = max(outage[row, column], event.cut)

    params = scenario.tension
    pairs = params.parsed_pairs
    for exporter in {exporter for _, exporter in pairs}:
        own = [i for i, (_, x) in enumerate(pairs) if x == exporter]
        row = regions.index(exporter)
        cut[row] = np.maximum(cut[row], tension_quota_cut(float(tension[own].mean()), params))
        for i in own:
            if tension[i] > params.ban_threshold:
                banned[row, :, regions.index(pairs[i][0])] |= mask(params.ban_elements)
    exporter = regions.index(shock.exporter)
    cut[exporter] = np.minimum(cut[exporter], 1.0 - guaranteed_share)
    return ExportRules(
        quota_cut=cut, banned=banned, outage=outage, tonnage_quotas=tuple(tonnage), export_tax=tax,
    )
