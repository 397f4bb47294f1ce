"""The holdout report: the predicted headline numbers, the report text and every file
``ree validate --holdout`` writes.

Every number comes from the runs passed in; nothing here reads an observed outcome.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from abm.batch.tables import markdown_table
from abm.output import atomic_write
from abm.scenario import Scenario
from abm.validation.ensemble import Member
from abm.validation.holdout import HoldoutRun, Licences
from abm.validation.holdout_figures import (
    HEAVY, LIGHT, MAGNET_USER_REGIONS, POOLED, holdout_figures, plot_figure, series_table,
)
from abm.validation.report import _dates
from abm.validation.scoring import BAND


@dataclass(frozen=True)
class Holdout:
    """What one holdout ran: its year, the scenario (as run, and its file as the report
    shows it), its licences, the ensemble (members and folder as shown), the seeds every
    member ran and the command line."""

    year: int
    scenario: Scenario
    scenario_path: str
    licences: Licences
    members: tuple[Member, ...]
    ensemble_path: str
    seeds: tuple[int, ...]
    command: str


@dataclass(frozen=True)
class Headline:
    """One predicted number of a run: its name, unit, and ``value`` of a run; ``month``
    marks a month index (0 = January of the start year), shown with its date."""

    name: str
    unit: str
    value: Callable[[HoldoutRun], float]
    month: bool = False


def _peak_ratio(k: int, run: HoldoutRun) -> float:
    return float(np.max(run.world_price[:, k] / run.nation_price[:, k]))


def _peak_ratio_month(k: int, run: HoldoutRun) -> float:
    return float(np.argmax(run.world_price[:, k] / run.nation_price[:, k]))


def _peak_over(k: int, before: int, run: HoldoutRun) -> float:
    return float(run.world_price[before:, k].max() / run.world_price[before, k])


def _shortfall_months(r: int, run: HoldoutRun) -> float:
    return float(np.count_nonzero(run.magnet_shortfall[:, r] > 0))


def _shortfall_total(r: int, run: HoldoutRun) -> float:
    return float(run.magnet_shortfall[:, r].sum())


def _exports_in(columns: list[int], months: np.ndarray, run: HoldoutRun) -> float:
    return float(run.exports[np.ix_(months, columns)].sum())


def headlines(run: HoldoutRun, licences: Licences, start_year: int) -> list[Headline]:
    """The headline numbers for runs shaped like ``run``: for Dy and Tb the peak ratio of
    the world price to the licensing nation's and its month; for Dy, Tb, Nd and Pr the
    peak world price from the month before the first licence, over that month's; per
    magnet-user region the months with any magnet shortfall and the total; per licensed
    element the t of its oxide the nation exported in the covered products while a
    licence was in force."""
    nation, first = licences.nation, licences.windows[0][0]
    before = max(first - 1, 0)
    month = str(_dates(start_year, before + 1)[before])
    rows = []
    for element in (e for e in HEAVY if e in run.elements):
        k = run.elements.index(element)
        rows += [
            Headline(f"peak {element} price ratio outside / inside {nation}", "ratio", partial(_peak_ratio, k)),
            Headline("month of that peak", "month", partial(_peak_ratio_month, k), month=True),
        ]
    for element in (e for e in (*HEAVY, *LIGHT) if e in run.elements):
        k = run.elements.index(element)
        rows.append(Headline(f"peak world {element} price from {month} on, over its {month} level", "ratio",
                             partial(_peak_over, k, before)))
    for region in (r for r in MAGNET_USER_REGIONS if r in run.regions):
        r = run.regions.index(region)
        rows += [
            Headline(f"months with magnet shortfall in {region}", "months", partial(_shortfall_months, r)),
            Headline(f"magnet shortfall in {region}, all months", "t magnets", partial(_shortfall_total, r)),
        ]
    horizon = run.exports.shape[0]
    licensed = np.concatenate([np.arange(a, min(b, horizon)) for a, b in licences.windows])
    for element in dict.fromkeys(e for e, _ in run.export_columns):
        columns = [k for k, (e, _) in enumerate(run.export_columns) if e == element]
        rows.append(Headline(f"{nation}'s {element} exports in licensed products, licence months", "t oxide",
                             partial(_exports_in, columns, licensed)))
    return rows


def _cell(value: float, headline: Headline, start_year: int) -> float | str:
    """A month index with its date when whole, otherwise the number."""
    if headline.month and float(value).is_integer():
        return f"{int(value)} ({_dates(start_year, int(value) + 1)[-1]})"
    return float(value)


def headline_table(runs: dict[str, list[HoldoutRun]], licences: Licences, start_year: int) -> pd.DataFrame:
    """One row per headline: ``quantity``, ``unit``, the median, 5 % and 95 % points over
    every run (``median``, ``low``, ``high``) and each member's median over its runs (a
    column per member, named as the member)."""
    first = next(iter(runs.values()))[0]
    rows = []
    for headline in headlines(first, licences, start_year):
        by_member = {name: np.array([headline.value(run) for run in member]) for name, member in runs.items()}
        pooled = np.concatenate(list(by_member.values()))
        low, median, high = np.percentile(pooled, [BAND[0], 50.0, BAND[1]])
        row = {"quantity": headline.name, "unit": headline.unit}
        row |= {k: _cell(v, headline, start_year) for k, v in (("median", median), ("low", low), ("high", high))}
        row |= {name: _cell(np.median(values), headline, start_year) for name, values in by_member.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def _ensemble_table(members: tuple[Member, ...]) -> str:
    names = list(dict.fromkeys(name for member in members for name in member.settings))
    frame = pd.DataFrame([{"member": m.name, **{n: f"{m.settings[n]:.4g}" if n in m.settings else "" for n in names}}
                          for m in members])
    return markdown_table(frame, {"member": "member", **{n: f"`{n}`" for n in names}})


def _months(count: int) -> str:
    return f"{count} month" if count == 1 else f"{count} months"


def _licence_lines(holdout: Holdout) -> list[str]:
    lines = []
    for event in holdout.licences.events:
        end = _dates(holdout.scenario.start_year, event.start + event.months)[-1]
        lines.append(
            f"- months {event.start}-{event.start + event.months - 1} (to {end}): {event.nation} licences "
            f"{', '.join(event.elements)} in {', '.join(event.stages)}; review {_months(event.delay_months)}, "
            f"approval share {event.approval_share:g}"
        )
    return lines


def _figure_notes(licences: Licences) -> list[str]:
    nation = licences.nation
    return [
        f"- **prices_dy_tb**, **prices_nd_pr**: the recorded `price` (oxide price by zone, USD/kg) on the "
        f"world market (the importers outside {nation}) and in {nation}'s zone, and per run the ratio of "
        "the two (the band is of the ratios, not a ratio of bands). Nd and Pr are not licensed.",
        f"- **exports**: {nation}'s shipments abroad (recorded `product_flow` from {nation} to every other "
        f"region, t of product) of the products its licences cover ({', '.join(licences.products)}), each "
        "weighted by its content of the row's element (t oxide per t, the supply chain's `content`) and "
        "summed over the covered products of the column's stage: t of the element's oxide leaving in "
        f"those products. Together, over all products, these flows are {nation}'s recorded `exports`; "
        "a (element, stage) without any covered product carrying the element is not drawn.",
        "- **shortfall**: the recorded `product_shortfall` (t of product that end users needed and did not "
        "get from stock or purchases) of the magnet grades, summed, in each region. Only magnet users buy "
        "magnets, so this is the shortfall of all magnet end uses of the region together; the model "
        "records shortfall per region and product, not per end use.",
    ]


def report_text(holdout: Holdout, table: pd.DataFrame, figures: list[Path]) -> str:
    """holdout_<year>.md: what it is, provenance, the ensemble, the headline table, figures."""
    scenario, members = holdout.scenario, holdout.members
    columns = {"quantity": "quantity", "unit": "unit", "median": "median", "low": "5 %", "high": "95 %"}
    columns |= {m.name: f"{m.name} median" for m in members}
    runs = len(members) * len(holdout.seeds)
    return "\n".join([
        f"# Holdout {holdout.year}: predicted {scenario.name}",
        "",
        f"Generated by `{holdout.command}`; do not edit by hand.",
        "",
        f"**This is a prediction.** No parameter was tuned to the {holdout.year} episode: the market "
        "parameters are the calibrated ensemble's, searched on the build-up of the 2010-2011 quota crisis (January 2009 - June 2011) only "
        "(docs/ODD.md §9), and the scenario states the episode's rules, not its outcome. No observed "
        f"outcome of {holdout.year} is compared here.",
        "",
        f"Scenario `{holdout.scenario_path}` ({scenario.description}): base year {scenario.base_year}, "
        f"{scenario.horizon_months} months from January {scenario.start_year} (month 0). Licences:",
        "",
        *_licence_lines(holdout),
        "",
        f"Covered products: {', '.join(holdout.licences.products)}.",
        "",
        f"Ensemble `{holdout.ensemble_path}`, {len(members)} members, each member's `[market]` settings "
        "applied over the scenario's:",
        "",
        _ensemble_table(members),
        f"{len(holdout.seeds)} replications per member, the same seeds for every member ({runs} runs); "
        "bands are 5-95 % over all runs of all members pooled.",
        "",
        "## Predicted headline numbers",
        "",
        "Months count from January of the start year (month 0); a shortfall month is one with any "
        "magnet shortfall (more than 0 t).",
        "",
        markdown_table(table, columns),
        "## Figures",
        "",
        "Each panel: median (thick) and 90 % band over all runs, each member's median (thin), the "
        "licence months shaded. The numbers plotted are in "
        f"`holdout_{holdout.year}_series.csv` (member `{POOLED}`: the pooled median and band).",
        "",
        *_figure_notes(holdout.licences),
        "",
        *[f"![{path.stem}]({path.name})" for path in figures],
        "",
    ])


def write_holdout(holdout: Holdout, runs: dict[str, list[HoldoutRun]], out: Path) -> list[Path]:
    """holdout_<year>_series.csv, one PNG per figure and holdout_<year>.md into ``out``."""
    stem = f"holdout_{holdout.year}"
    start_year = holdout.scenario.start_year
    figures = holdout_figures(next(iter(runs.values()))[0], holdout.licences.nation)
    table = series_table([p for figure in figures for p in figure.panels], runs, start_year)
    written = [out / f"{stem}_series.csv"]
    atomic_write(written[0], lambda h: table.to_csv(h, index=False))
    paths = []
    for figure in figures:
        paths.append(out / f"{stem}_{figure.name}.png")
        plot_figure(table, figure, holdout.licences.windows, start_year, paths[-1])
    text = report_text(holdout, headline_table(runs, holdout.licences, start_year), paths)
    atomic_write(out / f"{stem}.md", lambda h: h.write(text))
    return [*written, *paths, out / f"{stem}.md"]
