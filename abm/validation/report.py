"""Simulated against observed: the summary table, the report and the price figures.

Every number written here is computed from the replications passed in (scored by
``abm.validation.scoring``); the observed side comes from ``abm/data/history/``.
"""

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from abm.figures import save_figure  # noqa: E402
from abm.output import atomic_write  # noqa: E402
from abm.batch.tables import format_number, markdown_table  # noqa: E402
from abm.validation.ensemble import Member  # noqa: E402
from abm.validation.history import CALIBRATION_END, HALVES, ObservedPrice, load_observed_prices, load_targets  # noqa: E402
from abm.validation.replay import Replay  # noqa: E402
from abm.validation.scoring import (  # noqa: E402
    BAND, FACTOR, TIMING_MONTHS, TargetResult, calibration_loss, evaluate_targets, group_of, joint_hold_share,
)

VALIDATION_COLUMNS = [
    "target", "half", "group", "observed", "observed_low", "observed_high", "simulated_median", "simulated_low",
    "simulated_high", "covered", "accepted", "within", "interval_score", "crps",
]


def validation_table(results: list[TargetResult]) -> pd.DataFrame:
    """One row per target: observed value and range, simulated median and band, the
    two-sided verdict (covered, accepted, within) and the proper scores."""
    return pd.DataFrame(
        [
            {
                "target": r.target.name, "half": r.target.half, "group": group_of(r.target),
                "observed": r.target.observed, "observed_low": r.target.low, "observed_high": r.target.high,
                "simulated_median": r.median, "simulated_low": r.low, "simulated_high": r.high,
                "covered": r.covered, "accepted": r.accepted, "within": r.within,
                "interval_score": r.interval_score, "crps": r.crps,
            }
            for r in results
        ],
        columns=VALIDATION_COLUMNS,
    )


def group_table(results: list[TargetResult]) -> pd.DataFrame:
    """One row per half and group of targets: how many hold, the mean scores, and the
    share of replications in which all of the group's targets hold together."""
    rows = []
    for (half, group), members in _grouped(results).items():
        rows.append({
            "half": half, "group": group, "targets": len(members), "within": sum(r.within for r in members),
            "joint": joint_hold_share(members), "interval_score": float(np.mean([r.interval_score for r in members])),
            "crps": float(np.mean([r.crps for r in members])),
        })
    return pd.DataFrame(rows)


def _grouped(results: list[TargetResult]) -> dict[tuple[str, str], list[TargetResult]]:
    groups: dict[tuple[str, str], list[TargetResult]] = {}
    for result in results:
        groups.setdefault((result.target.half, group_of(result.target)), []).append(result)
    return groups


def _dates(start_year: int, months: int) -> np.ndarray:
    return np.datetime64(f"{start_year}-01", "M") + np.arange(months)


def plot_element(
    element: str, runs: list[Replay], observed: tuple[ObservedPrice, ...], start_year: int, path: Path
) -> None:
    """Export (FOB, world market) and domestic (inside the exporter) prices of one
    element: simulated median and 90 % band, observed points with their ranges."""
    e = runs[0].elements.index(element)
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
    for ax, zone, attribute in ((axes[0], "export", "export_price"), (axes[1], "domestic", "domestic_price")):
        paths = np.stack([getattr(run, attribute)[:, e] for run in runs])
        dates = _dates(start_year, paths.shape[1]).astype("datetime64[D]")
        low, median, high = np.percentile(paths, [BAND[0], 50.0, BAND[1]], axis=0)
        ax.fill_between(dates, low, high, color="tab:blue", alpha=0.25, label="simulated 90 % band")
        ax.plot(dates, median, color="tab:blue", label="simulated median")
        points = [p for p in observed if p.element == element and p.zone == zone]
        for point in points:
            when = np.datetime64(point.date, "M").astype("datetime64[D]") + 14
            lower_bound = point.low is not None and point.high is None
            errors = None
            if point.low is not None and point.high is not None:
                errors = [[point.price - point.low], [point.high - point.price]]
            ax.errorbar(
                [when], [point.price], yerr=errors, fmt="^" if lower_bound else "o", color="black",
                markersize=5, capsize=2,
            )
        if points:
            ax.plot([], [], "ko", label="observed (^: a lower bound)")
        split = np.datetime64(CALIBRATION_END, "M") + 1
        ax.axvspan(split.astype("datetime64[D]"), dates[-1], color="0.85", alpha=0.5, zorder=0, label="validation half")
        ax.set_yscale("log")
        ax.set_title(f"{element} oxide, {'export (FOB China)' if zone == 'export' else 'domestic (China)'}")
        ax.set_ylabel("USD/kg")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper right", fontsize=8)
    save_figure(figure, path, dpi=100)


def _describe(result: TargetResult) -> str:
    target = result.target
    if result.within:
        return "holds"
    if target.kind == "peak_months_after_start":
        miss = result.median - (target.high if result.median > target.high else target.low)
        where = f"median {abs(miss):g} months {'late' if miss > 0 else 'early'}"
    else:
        factor = result.median / target.observed
        where = f"median {factor:.2g}x the observed"
    return where if result.covered else f"{where}; band misses the observed"


@dataclass(frozen=True)
class SearchedRange:
    """A calibrated setting and the range the calibration searched (from its experiment
    file, within the documented range and source in abm/data/parameters.csv)."""

    name: str  # section.key
    low: float
    high: float
    source: str


@dataclass(frozen=True)
class Provenance:
    """Where a validation comes from: the command line, the ensemble folder, the
    searched settings and the calibration table the members should equal."""

    command: str
    ensemble: str
    searched: tuple[SearchedRange, ...]
    calibration_table: Path


NEAR_BOUND = 0.05  # a setting within 5 % of its searched range's width of an end "lands on the bound"


def on_bound(value: float, searched: SearchedRange) -> bool:
    """Whether ``value`` lies within ``NEAR_BOUND`` of the searched range's width of one of its ends."""
    position = (value - searched.low) / (searched.high - searched.low)
    return min(position, 1.0 - position) < NEAR_BOUND


def _members_check(members: list[Member], provenance: Provenance) -> str:
    """Whether each member's settings are the calibration table's row of its rank, exactly
    (the files are written by ``ree calibrate``; no value is copied by hand)."""
    path = provenance.calibration_table
    if not path.exists():
        return f"**No calibration table `{path.name}` beside this report to check the members against.**"
    table = pd.read_csv(path)
    differ = [
        member.name for rank, member in enumerate(members)
        if rank >= len(table) or any(
            not np.isclose(member.settings.get(r.name, np.nan), table.iloc[rank][r.name], rtol=1e-12, atol=0.0)
            for r in provenance.searched
        )
    ]
    if differ:
        return f"**Members that differ from their row of `{path.name}`: {', '.join(differ)}.**"
    return f"Every member's settings equal its row of `{path.name}` (member k is row k), to full precision."


def ensemble_table(members: list[Member], provenance: Provenance) -> pd.DataFrame:
    """One row per member: its settings, each flagged ``(bound)`` when it lands within
    ``NEAR_BOUND`` of an end of its searched range."""
    rows = []
    for member in members:
        row = {"member": member.name}
        for r in provenance.searched:
            value = member.settings[r.name]
            row[r.name] = f"{format_number(value)}{' (bound)' if on_bound(value, r) else ''}"
        rows.append(row)
    return pd.DataFrame(rows)


def _headline(half: str, results: list[TargetResult]) -> str:
    chosen = [r for r in results if r.target.half == half]
    within = sum(r.within for r in chosen)
    covered = sum(r.covered for r in chosen)
    close = sum(abs(np.log(max(r.ratio, 1e-12))) <= np.log(1.5) for r in chosen if r.target.kind != "peak_months_after_start")
    ratios = sum(r.target.kind != "peak_months_after_start" for r in chosen)
    return (
        f"- **{half} half: {within} of {len(chosen)} targets hold** (band reaches the observed range and the "
        f"median within a factor {FACTOR:g} of it, {TIMING_MONTHS:g} months for timing); the observed value is inside "
        f"the 90 % band for {covered}; the median is within a factor 1.5 of the observed for {close} of {ratios} "
        f"ratios. Loss {format_number(calibration_loss(chosen))}, mean interval score "
        f"{format_number(float(np.mean([r.interval_score for r in chosen])))}, mean CRPS "
        f"{format_number(float(np.mean([r.crps for r in chosen])))}."
    )


def _member_summary(per_member: dict[str, list[TargetResult]]) -> pd.DataFrame:
    rows = []
    for name, results in per_member.items():
        row = {"member": name}
        for half in HALVES:
            chosen = [r for r in results if r.target.half == half]
            row[f"{half}_within"] = f"{sum(r.within for r in chosen)} of {len(chosen)}"
            row[f"{half}_loss"] = calibration_loss(chosen)
        rows.append(row)
    return pd.DataFrame(rows)


def report_text(
    name: str,
    members: list[Member],
    results: list[TargetResult],
    per_member: dict[str, list[TargetResult]],
    defaults: list[TargetResult],
    replications: int,
    figures: list[Path],
    provenance: Provenance,
) -> str:
    """validation.md: provenance, the ensemble, the headline of each half, the groups,
    the target tables and the figures."""
    table = validation_table(results)
    table["bound"] = [r.target.bound for r in results]
    table["ratio"] = [r.ratio for r in results]
    table["verdict"] = [_describe(r) for r in results]
    table["range"] = [
        format_number(r.target.observed) if r.target.low == r.target.high
        else f"{format_number(r.target.observed)} ({format_number(r.target.low)}-{format_number(r.target.high)})"
        for r in results
    ]
    columns = {
        "target": "target", "bound": "observed is", "range": "observed (range)", "simulated_median": "median",
        "simulated_low": "5 %", "simulated_high": "95 %", "ratio": "median / observed", "interval_score": "interval score",
        "crps": "CRPS", "verdict": "verdict",
    }
    groups = group_table(results)
    flagged = [f"`{r.name}` in {m.name}" for m in members for r in provenance.searched if on_bound(m.settings[r.name], r)]
    lines = [
        f"# Historical validation: {name}, over the calibrated ensemble",
        "",
        f"Generated by `{provenance.command}`; do not edit by hand. {len(members)} members of the calibrated "
        f"ensemble in `{provenance.ensemble}` x {replications} replications each, the same seeds in every member. "
        "Observed values, their ranges and sources: `abm/data/history/targets.csv` and `observed_prices.csv`; "
        "the method and what the model leaves out: docs/ODD.md §9.",
        "",
        "The record is split in time. The **calibration** half (observed January 2009 - June 2011, the build-up) "
        "is all `ree calibrate` saw: its runs stop in June 2011. The **validation** half (observed from July 2011, "
        "the peak and the decline) was never used to choose a parameter: it is what the model predicts.",
        "",
        "## Headline",
        "",
        *[_headline(half, results) for half in HALVES],
        "- With every market parameter at its default in `abm/data/parameters.csv` instead (same seeds): "
        + "; ".join(
            f"{half} {sum(r.within for r in defaults if r.target.half == half)} of "
            f"{sum(r.target.half == half for r in defaults)} hold, loss "
            f"{format_number(calibration_loss([r for r in defaults if r.target.half == half]))}"
            for half in HALVES
        ) + ".",
        "",
        "## The ensemble",
        "",
        f"The {len(members)} best candidates of the calibration (by loss on the calibration half). "
        f"{_members_check(members, provenance)} Searched ranges (each within the documented range and source in "
        "`abm/data/parameters.csv`): "
        + "; ".join(f"`{r.name}` {format_number(r.low)}-{format_number(r.high)}" for r in provenance.searched) + ".",
        "",
        markdown_table(ensemble_table(members, provenance), {"member": "member", **{r.name: r.name for r in provenance.searched}}),
        ("**Settings that land on a bound of their searched range** (within 5 % of its width): "
         + ", ".join(flagged) + ". Their ranges are the sourced ones of `abm/data/parameters.csv`; a fit that wants "
         "to leave them says the model lacks something, not that the range is wrong, so they are not widened.")
        if flagged else "No setting lands on a bound of its searched range.",
        "",
        "Each member on its own (same seeds):",
        "",
        markdown_table(
            _member_summary(per_member),
            {"member": "member", **{f"{h}_within": f"{h}: hold" for h in HALVES}, **{f"{h}_loss": f"{h}: loss" for h in HALVES}},
        ),
        "## Groups of targets",
        "",
        "All of a group hold together: the share of replications in which every target of the group holds at once "
        "(each run's own value inside its acceptance range).",
        "",
        markdown_table(groups, {
            "half": "half", "group": "group", "targets": "targets", "within": "hold", "joint": "all hold together",
            "interval_score": "mean interval score", "crps": "mean CRPS",
        }),
    ]
    for half in HALVES:
        chosen = table[table["half"] == half]
        lines += [f"## Targets: {half} half", "", markdown_table(chosen, columns)]
    lines += [
        "Scores on the loss's scale (natural log of a ratio; years for timing): the interval score of the 90 % "
        "band (Gneiting and Raftery 2007) and the ensemble CRPS; lower is better.",
        "",
        "## Figures",
        "",
        "Observed prices as points (bars: the source's range; triangles: lower bounds) over the simulated median "
        "and 90 % band of the whole ensemble, export and domestic zones apart; the shaded months are the "
        "validation half.",
        "",
        *[f"![{path.stem}]({path.name})" for path in figures],
        "",
    ]
    return "\n".join(lines)


def write_validation(
    name: str,
    start_year: int,
    members: list[Member],
    runs: dict[str, list[Replay]],
    default_runs: list[Replay],
    out: Path,
    provenance: Provenance,
) -> list[Path]:
    """validation.csv (the ensemble pooled), members.csv (each member alone), one figure
    per element and validation.md, into ``out``; ``runs`` maps each member's name to its
    replays, ``default_runs`` are the same seeds with the default market parameters."""
    targets = load_targets()
    pooled = [run for member in members for run in runs[member.name]]
    results = evaluate_targets(targets, pooled, start_year)
    per_member = {m.name: evaluate_targets(targets, runs[m.name], start_year) for m in members}
    defaults = evaluate_targets(targets, default_runs, start_year)
    written = [out / "validation.csv", out / "members.csv"]
    atomic_write(written[0], lambda h: validation_table(results).to_csv(h, index=False))
    by_member = pd.concat(
        [validation_table(r).assign(member=name) for name, r in per_member.items()], ignore_index=True
    )
    atomic_write(written[1], lambda h: by_member.to_csv(h, index=False))
    figures = []
    for element in pooled[0].elements:
        path = out / f"prices_{element}.png"
        plot_element(element, pooled, load_observed_prices(), start_year, path)
        figures.append(path)
    replications = len(runs[members[0].name])
    text = report_text(name, members, results, per_member, defaults, replications, figures, provenance)
    atomic_write(out / "validation.md", lambda h: h.write(text))
    return [*written, *figures, out / "validation.md"]
