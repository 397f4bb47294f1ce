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
from abm.scenario import Scenario  # noqa: E402
from abm.validation.history import ObservedPrice  # noqa: E402
from abm.validation.replay import Replay  # noqa: E402
from abm.validation.scoring import BAND, TargetResult, calibration_loss  # noqa: E402

VALIDATION_COLUMNS = ["target", "observed", "simulated_median", "simulated_low", "simulated_high", "within"]


def validation_table(results: list[TargetResult]) -> pd.DataFrame:
    """One row per target: observed, simulated median and band, and whether it is within."""
    return pd.DataFrame(
        [
            {
                "target": r.target.name, "observed": r.target.observed, "simulated_median": r.median,
                "simulated_low": r.low, "simulated_high": r.high, "within": r.within,
            }
            for r in results
        ],
        columns=VALIDATION_COLUMNS,
    )


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
        ax.set_yscale("log")
        ax.set_title(f"{element} oxide, {'export (FOB China)' if zone == 'export' else 'domestic (China)'}")
        ax.set_ylabel("USD/kg")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper right", fontsize=8)
    save_figure(figure, path, dpi=100)


def _describe(result: TargetResult) -> str:
    target = result.target
    if result.within:
        return "observed value inside the simulated 90 % band" if target.bound == "value" else "band reaches the bound"
    if target.kind == "peak_months_after_start":
        return f"peak {abs(result.median - target.observed):g} months {'late' if result.median > target.observed else 'early'}"
    factor = result.median / target.observed
    return f"median {factor:.2g}x the observed ({'too high' if factor > 1 else 'too low'})"


@dataclass(frozen=True)
class Provenance:
    """Where a validation comes from: the scenario file and command line, and the
    calibration it claims to use (the searched settings and, if present, the table of
    candidates whose first row they should equal)."""

    scenario_path: str
    command: str
    searched: tuple[str, ...]  # section.key of each calibrated setting
    calibration_table: Path | None


def _setting(scenario: Scenario, name: str) -> float:
    section, _, key = name.partition(".")
    return float(getattr(getattr(scenario, section), key))


def _calibration_check(scenario: Scenario, provenance: Provenance) -> str:
    """Whether the replay's settings are the calibration's best candidate, to the three
    significant figures the scenario file keeps."""
    path = provenance.calibration_table
    if path is None or not path.exists():
        return "No calibration table beside this report to check them against."
    best = pd.read_csv(path).iloc[0]
    differ = [
        name for name in provenance.searched
        if name not in best or float(f"{best[name]:.3g}") != float(f"{_setting(scenario, name):.3g}")
    ]
    if differ:
        return f"**They differ from the best candidate in `{path.name}`** for: {', '.join(differ)}."
    return f"They equal the best candidate in `{path.name}` (first row) to three significant figures."


def report_text(
    scenario: Scenario,
    results: list[TargetResult],
    runs: list[Replay],
    figures: list[Path],
    provenance: Provenance,
    uncalibrated: list[TargetResult],
) -> str:
    """validation.md: provenance, the headline, the target table and the figures."""
    from abm.batch.report import markdown_table

    table = validation_table(results)
    table.insert(1, "bound", [r.target.bound for r in results])
    table["ratio"] = [r.ratio for r in results]
    table["verdict"] = [_describe(r) for r in results]
    hits = int(table["within"].sum())
    settings = ", ".join(f"`{name}` = {_setting(scenario, name):g}" for name in provenance.searched)
    lines = [
        f"# Historical validation: {scenario.name}",
        "",
        f"Generated by `{provenance.command}`; do not edit by hand. {len(runs)} replications of "
        f"`{provenance.scenario_path}` ({scenario.description}), base year {scenario.base_year}, "
        f"months from January {scenario.start_year}. Observed values and their sources: "
        "`abm/data/history/targets.csv` and `observed_prices.csv`; the method and what the "
        "model leaves out: docs/ODD.md §9.",
        "",
        f"Calibrated settings of this replay: {settings}. {_calibration_check(scenario, provenance)}",
        "",
        f"**{hits} of {len(results)} targets within** (observed inside the simulated 5-95 % band; "
        "for a lower bound, the band reaches it; a wide band makes a hit easy, so read the "
        "median/observed ratio too). Calibration loss (mean over kinds of target of the squared "
        "miss of the median: log ratio, or years for peak timing): "
        f"{calibration_loss(results):.3f}. With every market "
        "parameter at its default in `abm/data/parameters.csv` instead (same seeds): loss "
        f"{calibration_loss(uncalibrated):.3f}, {sum(r.within for r in uncalibrated)} of "
        f"{len(uncalibrated)} targets within.",
        "",
        markdown_table(
            table,
            {
                "target": "target", "bound": "observed is", "observed": "observed",
                "simulated_median": "simulated median", "simulated_low": "5 %", "simulated_high": "95 %",
                "ratio": "median / observed", "within": "within", "verdict": "verdict",
            },
        ),
        "## Figures",
        "",
        "Observed prices as points (bars: the source's range; triangles: lower bounds) over the "
        "simulated median and 90 % band, export and domestic zones apart.",
        "",
        *[f"![{path.stem}]({path.name})" for path in figures],
        "",
    ]
    return "\n".join(lines)


def write_validation(
    scenario: Scenario,
    results: list[TargetResult],
    runs: list[Replay],
    observed: tuple[ObservedPrice, ...],
    out: Path,
    provenance: Provenance,
    uncalibrated: list[TargetResult],
) -> list[Path]:
    """validation.csv, one figure per element and validation.md, into ``out``;
    ``uncalibrated`` is the same replay with the default market parameters."""
    written = [out / "validation.csv"]
    table = validation_table(results)
    atomic_write(written[0], lambda h: table.to_csv(h, index=False))
    figures = []
    for element in runs[0].elements:
        path = out / f"prices_{element}.png"
        plot_element(element, runs, observed, scenario.start_year, path)
        figures.append(path)
    text = report_text(scenario, results, runs, figures, provenance, uncalibrated)
    atomic_write(out / "validation.md", lambda h: h.write(text))
    return [*written, *figures, out / "validation.md"]
