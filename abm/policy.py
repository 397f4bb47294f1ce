"""Geopolitical tension and the export rules it drives: pure functions, no Mesa.

Tension is one number in [0, 1] per ordered pair ``"A-X"``: how strained the relation
is in which exporter X could restrict sales to A. Rules turn it into restrictions:
above ``quota_threshold`` the exporter cuts its export quota on every element, in
proportion to how far its mean tension is above the threshold; above
``ban_threshold`` it bans exports of ``ban_elements`` to that partner. Scripted events
(the scenario's shock and ``[[events]]``) add restrictions, export taxes and mine
outages on fixed months, and export licences (approval share, processing delay). The
strictest rule in force wins: cuts and taxes combine by maximum, bans by union; every
tonnage quota and every licence in force caps its own products, so a product under two
gets the tighter cap. A restriction raises the tension of the pairs it hits in the month
it is announced (``notice_months`` before its start, or at its start).
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from abm.data.chain import STAGES
from abm.scenario import Scenario, TensionParameters, continued_licence


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
    licences: tuple["Licence", ...]
    announced: np.ndarray  # [pairs] tension added this month by announcements
    re_export_banned: np.ndarray  # [R, E] bans whose goods third countries may not re-export to the banned


@dataclass(frozen=True)
class Licence:
    """An export licence in force: ``region`` grants ``approval_share`` of the
    applications to the ``destinations`` [R] for products of ``stages`` carrying the
    ``elements`` mask [E], each ``delay_months`` after it was filed (the model keeps the
    queue: ``RareEarthModel._licensed_flows``). A quota on one destination is a licence
    granting ``1 - cut`` at once. ``restrict_re_export``: third countries may not
    re-export the products it covers to its destinations. ``denied_end_uses``: the
    applications of these magnet end uses in its destinations are refused."""

    region: int
    approval_share: float
    delay_months: int
    elements: np.ndarray
    stages: tuple[str, ...]
    destinations: np.ndarray
    restrict_re_export: bool
    denied_end_uses: tuple[str, ...]


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
    counterfactual: bool = False,
    trailing_exports: np.ndarray | None = None,
) -> ExportRules:
    """The quota cuts, bans and mine outages in force in ``month`` given this month's tension.

    An agreement in force guarantees ``guaranteed_share`` of the dominant exporter's
    reference exports: its cut can then remove at most the rest. ``counterfactual``: the
    rules of the run the percentage cuts and licences are measured against
    (``abm.counterfactual``): everything but those, and their announcements.

    An announcement raises the tension of each pair a restriction hits by
    ``announcement_jump`` times its severity (``_severity``), so a vanishing cut moves
    nothing; ``trailing_exports`` [R, E] t/month (the exporters' recent exports) measures
    a tonnage quota's severity.
    """
    cut = np.zeros((len(regions), len(elements)))
    banned = np.zeros((len(regions), len(elements), len(regions)), dtype=bool)
    re_export_banned = np.zeros((len(regions), len(elements)), dtype=bool)
    outage = np.zeros((len(regions), len(deposits)))
    tonnage: list[tuple[int, float, np.ndarray]] = []
    licences: list[Licence] = []
    tax = np.zeros((len(regions), len(elements)))
    element_index = {e: i for i, e in enumerate(elements)}

    def mask(names: tuple[str, ...]) -> np.ndarray:
        return np.isin(np.arange(len(elements)), [element_index[n] for n in names])

    params = scenario.tension
    shock = scenario.shock
    events = tuple(e for e in scenario.events if not (counterfactual and _measured(e)))
    cutting = shock.quota_cut > 0 and shock.months > 0 and not counterfactual
    announced = _announcements(scenario, events, cutting, month, regions, mask, trailing_exports)
    if cutting and _active(shock.start, shock.months, month):
        row = regions.index(shock.exporter)
        cut[row] = np.maximum(cut[row], shock.quota_cut * mask(shock.elements))
    for event in events:
        if not _active(event.start, event.months, month):
            continue
        row = regions.index(event.nation)
        if event.kind == "licence":
            licences.append(Licence(row, event.approval_share, event.delay_months, mask(event.elements),
                                    event.stages, _destinations(event, regions), event.restrict_re_export,
                                    event.denied_end_uses))
        elif event.kind == "quota" and event.destination:
            licences.append(Licence(row, 1.0 - event.cut, 0, mask(event.elements), STAGES,
                                    _destinations(event, regions), event.restrict_re_export, ()))
        elif event.kind == "quota" and event.tonnes_per_year > 0:
            tonnage.append((row, event.tonnes_per_year / 12.0, mask(event.elements)))
        elif event.kind == "quota":
            cut[row] = np.maximum(cut[row], event.cut * mask(event.elements))
        elif event.kind == "export_tax":
            tax[row] = np.maximum(tax[row], event.rate * mask(event.elements))
        elif event.kind == "ban":
            banned[row, :, regions.index(event.destination)] |= mask(event.elements)
            re_export_banned[row] |= mask(event.elements) & event.restrict_re_export
        else:
            column = deposits.index(event.deposit)
            outage[row, column] = max(outage[row, column], event.cut)

    _tension_rules(cut, banned, tension, params, regions, mask(params.ban_elements), counterfactual)
    exporter = regions.index(shock.exporter)
    cut[exporter] = np.minimum(cut[exporter], 1.0 - guaranteed_share)
    return ExportRules(
        quota_cut=cut, banned=banned, outage=outage, tonnage_quotas=tuple(tonnage), export_tax=tax,
        licences=tuple(licences), announced=announced, re_export_banned=re_export_banned,
    )


def with_deal(rules: ExportRules, exporter: int, party: np.ndarray, elements: np.ndarray, share: float) -> ExportRules:
    """The rules under a deal (``abm.negotiation``): ``exporter`` lets at least ``share``
    of its applications from the ``party`` [R] for products carrying the deal's
    ``elements`` [E] through.

    Each of its licences that grants the party less on those elements is split: the rest
    of its destinations and elements keep its terms, the party's licence on the deal's
    elements grants ``share`` (after the licence's own delay). A percentage cut on the
    deal's elements becomes a licence on every destination granting ``1 - cut`` at once
    (against the same counterfactual exports), split likewise. Split licences grant by
    destination, so while the deal holds every destination of them ships per link, its
    share of its own counterfactual flow, rather than all sharing one cap: third
    countries' supply can move a little (docs/ODD.md §7.28). Bans and tonnage quotas
    stay. ``share`` 0: the rules unchanged."""
    if share <= 0:
        return rules
    cut = rules.quota_cut.copy()
    covered = elements & (cut[exporter] > 0)
    others = np.arange(len(party)) != exporter
    licences = list(rules.licences) + [
        Licence(exporter, 1.0 - value, 0, covered & (cut[exporter] == value), STAGES, others, False, ())
        for value in np.unique(cut[exporter][covered])
    ]
    cut[exporter] = np.where(covered, 0.0, cut[exporter])
    dealt: list[Licence] = []
    for licence in licences:
        hit, on = licence.destinations & party, licence.elements & elements
        if licence.region != exporter or not hit.any() or not on.any() or licence.approval_share >= share:
            dealt.append(licence)
            continue
        if (licence.destinations & ~party).any():
            dealt.append(dataclasses.replace(licence, destinations=licence.destinations & ~party))
        if (licence.elements & ~elements).any():
            dealt.append(dataclasses.replace(licence, destinations=hit, elements=licence.elements & ~elements))
        dealt.append(dataclasses.replace(licence, destinations=hit, elements=on, approval_share=share))
    return dataclasses.replace(rules, quota_cut=cut, licences=tuple(dealt))


def party_fill(rules: ExportRules, exporter: int, party: np.ndarray) -> np.ndarray:
    """[members of ``party``, E] the share of its applications ``exporter``'s rules let
    through to each member of the party, element by element: 1 less its percentage cut,
    the lowest approval share of its licences on the member, 0 where it bans the member."""
    fill = np.repeat((1.0 - rules.quota_cut[exporter])[None, :], int(party.sum()), axis=0)
    members = np.flatnonzero(party)
    for licence in rules.licences:
        if licence.region == exporter:
            applies = licence.destinations[members][:, None] & licence.elements[None, :]
            fill = np.where(applies, np.minimum(fill, licence.approval_share), fill)
    return np.where(rules.banned[exporter][:, members].T, 0.0, fill)


def _tension_rules(cut: np.ndarray, banned: np.ndarray, tension: np.ndarray, params: TensionParameters,
                   regions: tuple[str, ...], ban_elements: np.ndarray, counterfactual: bool) -> None:
    """Add to ``cut`` [R, E] and ``banned`` [R, E, R] what tension drives: each exporter's
    quota cut from its mean tension (not in a counterfactual run) and its bans of
    ``ban_elements`` [E] to partners above the ban threshold."""
    pairs = params.parsed_pairs
    for exporter in {exporter for _, exporter in pairs}:
        own = [i for i, (_, x) in enumerate(pairs) if x == exporter]
        row = regions.index(exporter)
        if not counterfactual:
            cut[row] = np.maximum(cut[row], tension_quota_cut(float(tension[own].mean()), params))
        for i in own:
            if tension[i] > params.ban_threshold:
                banned[row, :, regions.index(pairs[i][0])] |= ban_elements


def _announcements(scenario: Scenario, events, cutting: bool, month: int, regions: tuple[str, ...], mask,
                   trailing_exports: np.ndarray | None) -> np.ndarray:
    """[pairs] tension added this month: ``announcement_jump`` times the severity of each
    restriction announced now (the shock if ``cutting``, ``events``) on each pair it hits.
    A restriction in force from month 0 is the standing policy the run starts from (as
    the spin-up's export taxes), not news: it announces nothing; a licence continuing
    another announces only how much tighter it is."""
    pairs = scenario.tension.parsed_pairs
    shock = scenario.shock
    announced = np.zeros(len(pairs))
    if cutting and shock.start > 0 and month == shock.start - shock.notice_months:
        announced += shock.quota_cut * _hit_pairs(pairs, shock.exporter, "")
    for event in events:
        if event.kind != "outage" and event.start > 0 and month == event.start - event.notice_months:
            recent = None if trailing_exports is None else trailing_exports[regions.index(event.nation)] @ mask(event.elements)
            severity = _severity(event, recent)
            if event.kind == "licence" and (before := continued_licence(event, scenario.events)) is not None:
                severity = max(0.0, severity - _severity(before, recent))  # news is only a tightening
            hit = _destinations(event, regions) if event.kind == "licence" else None
            announced += severity * _hit_pairs(pairs, event.nation, event.destination, hit, regions)
    return scenario.tension.announcement_jump * np.minimum(announced, 1.0)


def _measured(event) -> bool:
    """Whether an event is one a counterfactual run leaves out: a percentage cut or a licence."""
    return event.kind == "licence" or (event.kind == "quota" and event.tonnes_per_year <= 0)  # destination quotas too


def _destinations(event, regions: tuple[str, ...]) -> np.ndarray:
    """[R] the destinations a licence or a destination quota applies to."""
    if event.destination:
        return np.array([r == event.destination for r in regions])
    return np.array([r != event.nation and r not in event.general_licence for r in regions])


def _severity(event, recent_exports: float | None) -> float:
    """How much of its exports a restriction withholds, in [0, 1]: a quota's cut, or the
    share of ``recent_exports`` (t/month of the elements it covers) a tonnage quota
    leaves out; a ban's 1; an export tax's rate (at most 1); a licence's share of a
    year's applications not shipped within the year, ``1 - approval_share x (12 -
    delay_months) / 12``."""
    if event.kind == "quota" and event.tonnes_per_year > 0:
        if not recent_exports:
            return 0.0
        return 1.0 - min(1.0, event.tonnes_per_year / 12.0 / recent_exports)
    if event.kind == "quota":
        return event.cut
    if event.kind == "export_tax":
        return min(event.rate, 1.0)
    if event.kind == "licence":
        return 1.0 - event.approval_share * (12 - event.delay_months) / 12
    return 1.0


def _hit_pairs(pairs: tuple[tuple[str, str], ...], exporter: str, destination: str,
               destinations: np.ndarray | None = None, regions: tuple[str, ...] = ()) -> np.ndarray:
    """[pairs] 1 where a restriction by ``exporter`` hits the pair: on ``destination``
    only if set, on the ``destinations`` mask [R] over ``regions`` if given, else every partner."""
    if destinations is not None:
        hit = {r for r, on in zip(regions, destinations, strict=True) if on}
        return np.array([float(x == exporter and partner in hit) for partner, x in pairs])
    return np.array([float(x == exporter and destination in ("", partner)) for partner, x in pairs])
