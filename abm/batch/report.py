"""From a results store to what a researcher reads: summary tables with confidence
intervals, resilience gained per policy (paired by seed), figures and ``report.md``.

Everything here is computed from ``metrics.parquet`` and ``series.parquet``; no number
is typed in. ``ema_results.tar.gz`` holds the runs as EMA Workbench's
``(experiments, outcomes)`` for scenario discovery (PRIM) and feature scoring when
ema_workbench is installed: every factor, each run's policy and its lever values, every
scalar outcome and the main time series. Outcome names and their labels come from the
metric catalogue ``abm.metrics.METRICS``. A store run over a calibrated ensemble (its runs
carry ``factor.ensemble_member``) also gets each member's resilience gained and ranking
of the policies, and whether that ranking is stable across members.
"""

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from abm.batch.experiment import ENSEMBLE_FACTOR, NO_POLICY  # noqa: E402
from abm.figures import element_grid, save_figure  # noqa: E402
from abm.metrics import (  # noqa: E402
    METRICS, STAGES, bootstrap_mean_ci, metric_label, paired_relative_gain, parse_metric,
)
from abm.output import atomic_write  # noqa: E402
from abm.scenario import Scenario, setting_value  # noqa: E402
from abm.validation.ensemble import member_rank  # noqa: E402

# Headline outcomes: lower is better for all of them.
OUTCOMES = (
    "shortfall_outside_exporter_t", "resilience_loss_months", "shortfall_depth_fraction", "recovery_months",
    "unserved_value_usd", "world_price_volatility_fraction_Dy", "world_price_volatility_fraction_Nd",
    "world_price_peak_ratio_Dy",
)
# The supply chain section: per stage, the share of importers' supply made in the
# exporter and the new capacity outside it; the shortfall at magnet users and at the
# other end uses (t of product).
SUPPLY_CHAIN_OUTCOMES = (
    *(m.name(stage) for stage in STAGES for m in METRICS.values() if m.per == "stage"),
    *(m.name() for m in METRICS.values() if m.unit == "tproduct" and m.total),
)
# The negotiated deals section (abm.negotiation): months under a deal, breaks, what the
# party paid, and the guaranteed shares of the elements the 2025 licences cover first.
DEAL_OUTCOMES = ("deal_months", "deal_breaks_count", "deal_transfer_usd", "deal_share_fraction_Dy",
                 "deal_share_fraction_Tb")
# Outcomes whose sensitivity indices the report shows.
SENSITIVITY_OUTCOMES = ("world_price_volatility_fraction_Dy", "shortfall_outside_exporter_t", "resilience_loss_months")
RESAMPLES = 2000
# Across the calibrated ensemble, policies are ranked by their fall in this outcome.
HEADLINE = "shortfall_outside_exporter_t"
MEMBER_COLUMN = f"factor.{ENSEMBLE_FACTOR}"


def _factor_columns(metrics: pd.DataFrame) -> list[str]:
    return [c for c in metrics.columns if c.startswith("factor.")]


def summarise(metrics: pd.DataFrame, rng: np.random.Generator, outcomes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean and 95 % bootstrap interval (``<outcome>_mean``, ``_low``, ``_high``) of each
    of ``outcomes`` (default: OUTCOMES and policy cost), per design point and policy."""
    rows = []
    keys = ["point_id", "policy"]
    for (point, policy), group in metrics.groupby(keys, sort=True):
        row = {"point_id": point, "policy": policy, "runs": len(group)}
        row.update({c: group[c].iloc[0] for c in _factor_columns(group)})
        for outcome in (*OUTCOMES, "policy_cost_usd") if outcomes is None else outcomes:
            values = group[outcome].to_numpy(dtype=float)
            low, high = bootstrap_mean_ci(values, rng, RESAMPLES)
            row.update({f"{outcome}_mean": values.mean(), f"{outcome}_low": low, f"{outcome}_high": high})
        rows.append(row)
    summary = pd.DataFrame(rows)
    return summary.sort_values([*_factor_columns(summary), "policy"], ignore_index=True)


def supply_chain_summary(metrics: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame | None:
    """``summarise`` of the SUPPLY_CHAIN_OUTCOMES the runs report, per design point and
    policy, with the same bootstrap intervals; None for a store made before they existed."""
    outcomes = tuple(name for name in SUPPLY_CHAIN_OUTCOMES if name in metrics.columns)
    return summarise(metrics, rng, outcomes) if outcomes else None


def resilience_gained(metrics: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Relative fall of each outcome against the no-policy arm, paired by design point and
    replication (the same seeds), with a bootstrap interval over the pairs."""
    rows = []
    keys = ["point_id", "replication"]
    base = metrics.loc[metrics["policy"] == NO_POLICY, [*keys, *OUTCOMES]]
    for policy, group in metrics[metrics["policy"] != NO_POLICY].groupby("policy", sort=True):
        paired = group.merge(base, on=keys, how="inner", suffixes=("", "_base"))
        row = {"policy": policy, "pairs": len(paired), "policy_cost_usd_mean": paired["policy_cost_usd"].mean()}
        for outcome in OUTCOMES:
            gain, low, high = paired_relative_gain(paired[f"{outcome}_base"], paired[outcome], rng, RESAMPLES)
            row.update({f"{outcome}_gain": gain, f"{outcome}_gain_low": low, f"{outcome}_gain_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def ensemble_gained(metrics: pd.DataFrame, gained: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame | None:
    """[members x policies] each policy's resilience gained in ``HEADLINE`` within each
    ensemble member (``resilience_gained`` of the member's runs, so paired with the same
    member's no-policy arm): columns member, policy, ``<HEADLINE>_gain`` with ``_low`` and
    ``_high`` (fractions), ``rank`` among the policies in the member and ``pooled_rank``
    in ``gained`` (all members together); 1 is the largest fall, and a policy with no fall
    to measure (NaN: no shortfall without policy) ranks last. Members in rank order. None
    for a store without an ensemble or without policies."""
    if MEMBER_COLUMN not in metrics.columns or gained.empty:
        return None
    gain = f"{HEADLINE}_gain"
    columns = ["policy", gain, f"{gain}_low", f"{gain}_high"]
    members = sorted(metrics[MEMBER_COLUMN].unique(), key=member_rank)
    parts = [resilience_gained(metrics[metrics[MEMBER_COLUMN] == member], rng) for member in members]
    table = pd.concat(
        [part[columns].assign(member=member) for member, part in zip(members, parts, strict=True) if not part.empty],
        ignore_index=True,
    )
    ranking = {"ascending": False, "method": "min", "na_option": "bottom"}
    table["rank"] = table.groupby("member", sort=False)[gain].rank(**ranking).astype(int)
    table["pooled_rank"] = table["policy"].map(gained.set_index("policy")[gain].rank(**ranking).astype(int))
    return table[["member", *columns, "rank", "pooled_rank"]]


def ranking_stability(table: pd.DataFrame) -> pd.DataFrame:
    """Per member of ``ensemble_gained``: its best policy (rank 1; the first of a tie) and
    Kendall's tau between its ranking and the pooled one (1 = the same order, -1 the
    reverse; NaN with one policy, or when a ranking is all ties)."""
    def one(group: pd.DataFrame) -> pd.Series:
        tau = kendalltau(group["rank"], group["pooled_rank"]).statistic if len(group) > 1 else np.nan
        return pd.Series({"best_policy": group.loc[group["rank"].idxmin(), "policy"], "kendall_tau": float(tau)})

    return table.groupby("member", sort=False)[["policy", "rank", "pooled_rank"]].apply(one).reset_index()


def plot_fan_charts(series: pd.DataFrame, metrics: pd.DataFrame, path: Path, policy: str = NO_POLICY) -> None:
    """World and exporter-zone price per element: median, 50 % and 90 % bands over runs."""
    runs = set(metrics.loc[metrics["policy"] == policy, "run_id"])
    prices = series[(series["variable"] == "price") & series["run_id"].isin(runs)]
    zones = [z for z in ("world", "CN") if z in set(prices["region"])]
    prices, elements, figure, axes = element_grid(prices, "price")
    for ax, element in zip(axes, elements, strict=True):
        for zone, colour in zip(zones, ("tab:red", "tab:blue"), strict=False):
            table = prices[(prices["element"] == element) & (prices["region"] == zone)].pivot(
                index="step", columns="run_id", values="value"
            )
            q = table.quantile([0.05, 0.25, 0.5, 0.75, 0.95], axis=1).T
            ax.fill_between(q.index, q[0.05], q[0.95], color=colour, alpha=0.15, lw=0)
            ax.fill_between(q.index, q[0.25], q[0.75], color=colour, alpha=0.3, lw=0)
            ax.plot(q.index, q[0.5], color=colour, lw=1.3, label=f"{zone} median")
        ax.set_yscale("log")
        ax.set_title(f"{element} oxide, policy: {policy}")
        ax.set_ylabel("USD/kg")
    axes[0].legend(fontsize=8)
    save_figure(figure, path, dpi=100)


def _bars(ax, labels, means, lows, highs, title, ylabel) -> None:
    positions = np.arange(len(labels))
    errors = np.vstack([np.asarray(means) - np.asarray(lows), np.asarray(highs) - np.asarray(means)])
    ax.bar(positions, means, yerr=np.clip(errors, 0, None), capsize=3, color="tab:gray")
    ax.set_xticks(positions, labels, rotation=35, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", lw=0.6)


def plot_policies(summary: pd.DataFrame, gained: pd.DataFrame, folder: Path) -> list[Path]:
    """Shortfall by policy and resilience gained with 95 % intervals."""
    written = []
    by_policy = summary.groupby("policy", sort=True).mean(numeric_only=True).reset_index()
    figure, ax = plt.subplots(figsize=(9, 4.5))
    _bars(ax, by_policy["policy"], by_policy["shortfall_outside_exporter_t_mean"],
          by_policy["shortfall_outside_exporter_t_low"], by_policy["shortfall_outside_exporter_t_high"],
          "Cumulative shortfall outside the exporter (mean, 95 % CI)", "t REO")
    written.append(folder / "shortfall_by_policy.png")
    save_figure(figure, written[-1], dpi=100)
    if not gained.empty:
        figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        for ax, outcome, title in zip(
            axes, ("shortfall_outside_exporter_t", "world_price_volatility_fraction_Dy"),
            ("Resilience gained: shortfall outside the exporter", "Volatility reduction: world Dy price"), strict=True,
        ):
            _bars(ax, gained["policy"], 100 * gained[f"{outcome}_gain"], 100 * gained[f"{outcome}_gain_low"],
                  100 * gained[f"{outcome}_gain_high"], title, "% fall vs no policy (paired, 95 % CI)")
        written.append(folder / "resilience_gained.png")
        save_figure(figure, written[-1], dpi=100)
    return written


def plot_quota_response(summary: pd.DataFrame, path: Path) -> bool:
    """Volatility and shortfall against the quota cut, one line per shock duration."""
    if "factor.quota_cut" not in summary.columns:
        return False
    data = summary[summary["policy"] == NO_POLICY]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = data.groupby("factor.shock_months") if "factor.shock_months" in data.columns else [("all", data)]
    for months, group in groups:
        group = group.sort_values("factor.quota_cut")
        for ax, outcome in zip(axes, ("world_price_volatility_fraction_Dy", "shortfall_outside_exporter_t"), strict=True):
            ax.errorbar(100 * group["factor.quota_cut"], group[f"{outcome}_mean"],
                        yerr=[group[f"{outcome}_mean"] - group[f"{outcome}_low"], group[f"{outcome}_high"] - group[f"{outcome}_mean"]],
                        capsize=3, marker="o", label=f"{months} months")
    axes[0].set_title("World Dy price volatility (annualised)")
    axes[1].set_title("Cumulative shortfall outside the exporter (t)")
    for ax in axes:
        ax.set_xlabel("export quota cut, %")
    axes[0].legend(title="shock length", fontsize=8)
    save_figure(figure, path, dpi=100)
    return True


def sensitivity_indices(metrics: pd.DataFrame, experiment) -> pd.DataFrame | None:
    """Morris (mu*, its confidence interval, sigma) or Sobol (S1, ST and their confidence
    intervals) indices of SENSITIVITY_OUTCOMES, from the design rows in order, each row's
    outcome averaged over replications (and the ensemble members the runs name) of the
    no-policy arm. The ``_conf`` columns are SALib's half-widths of the 95 % bootstrap
    interval; Sobol rows carry ``unconverged`` (see ``flag_unconverged``). SALib's
    warnings are kept out of the output."""
    if experiment is None or experiment.design not in ("morris", "sobol"):
        return None
    from abm.batch.plan import member_point, salib_problem, design_matrix, point_id

    problem = salib_problem(experiment)
    rows = design_matrix(experiment)
    base = metrics[metrics["policy"] == NO_POLICY].groupby("point_id").mean(numeric_only=True)
    matrix = np.array([[row[f.name] for f in experiment.factors] for row in rows], dtype=float)
    members = list(metrics[MEMBER_COLUMN].unique()) if MEMBER_COLUMN in metrics.columns else []
    ids = [[point_id(member_point(row, m)) for m in members] or [point_id(row)] for row in rows]
    records = []
    for outcome in SENSITIVITY_OUTCOMES:
        y = np.array([base.loc[points, outcome].mean() for points in ids], dtype=float)
        with warnings.catch_warnings():  # e.g. a constant outcome: 0/0 indices, reported as NaN
            warnings.simplefilter("ignore")
            if experiment.design == "morris":
                from SALib.analyze import morris

                result = morris.analyze(problem, matrix, y, num_levels=4, seed=experiment.seed)
                columns = ("mu_star", "mu_star_conf", "sigma")
            else:
                from SALib.analyze import sobol

                result = sobol.analyze(problem, y, calc_second_order=False, seed=experiment.seed)
                columns = ("S1", "S1_conf", "ST", "ST_conf")
        for k, name in enumerate(problem["names"]):
            records.append({"outcome": outcome, "factor": name, **{c: float(result[c][k]) for c in columns}})
    indices = pd.DataFrame(records)
    return flag_unconverged(indices) if experiment.design == "sobol" else indices


def flag_unconverged(indices: pd.DataFrame) -> pd.DataFrame:
    """``indices`` with a boolean column ``unconverged``: a Sobol index (S1 or ST) lies
    outside [0, 1] by more than its confidence half-width (``S1_conf``, ``ST_conf``),
    which a converged estimate cannot; more samples are needed. A NaN width counts as 0."""
    flagged = pd.Series(False, index=indices.index)
    for index in ("S1", "ST"):
        value, width = indices[index], indices[f"{index}_conf"].fillna(0.0).abs()
        flagged |= (value + width < 0.0) | (value - width > 1.0)
    return indices.assign(unconverged=flagged)


def plot_sensitivity(indices: pd.DataFrame, path: Path) -> None:
    value = "mu_star" if "mu_star" in indices.columns else "ST"
    outcomes = list(dict.fromkeys(indices["outcome"]))
    figure, axes = plt.subplots(1, len(outcomes), figsize=(5 * len(outcomes), 4.5), squeeze=False)
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        data = indices[indices["outcome"] == outcome].sort_values(value)
        ax.barh(data["factor"], data[value], color="tab:gray")
        ax.set_title(f"{outcome}\n({'Morris mu*' if value == 'mu_star' else 'Sobol total index'})", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    save_figure(figure, path, dpi=100)


def lever_values(metrics: pd.DataFrame, experiment) -> pd.DataFrame:
    """[runs, levers] the effective value, in each run, of every setting some policy sets
    (a lever keyword such as ``stockpile_months``): the policy's value, or the base
    scenario's for runs of policies that leave it alone (never NaN). Settings that are
    also factors are left out (their factor column holds them). Empty without the experiment."""
    if experiment is None:
        return pd.DataFrame(index=metrics.index)
    factors = {f.name for f in experiment.factors}
    names = list(dict.fromkeys(k for settings in experiment.policies.values() for k in settings if k not in factors))
    effective = {
        policy: {name: setting_value(experiment.scenario.with_settings(settings), name) for name in names}
        for policy, settings in experiment.policies.items()
    }
    return pd.DataFrame([effective[policy] for policy in metrics["policy"]], index=metrics.index, columns=names)


def scalar_outcomes(metrics: pd.DataFrame) -> list[str]:
    """The columns of ``metrics`` that are run metrics of the catalogue, in order."""
    names = []
    for column in metrics.columns:
        try:
            parse_metric(column)
        except KeyError:
            continue
        names.append(column)
    return names


def time_series_outcomes(metrics: pd.DataFrame, series: pd.DataFrame, exporter: str) -> dict[str, np.ndarray]:
    """[runs, recorded steps] per element: the world price (``world_price_series_<element>``,
    USD/kg) and the shortfall of importers outside ``exporter``
    (``shortfall_outside_exporter_series_<element>``, t/month), for the runs of ``metrics``
    in order, with ``TIME`` (the recorded months) as EMA Workbench expects. A variable the
    store did not record (or a store without series) gives no outcome; a step a run did
    not reach is NaN."""
    if series.empty:
        return {}
    series = series[series["run_id"].isin(set(metrics["run_id"]))]
    steps = np.sort(series["step"].unique())
    wanted = {
        "world_price_series": (series["variable"] == "price") & (series["region"] == "world"),
        "shortfall_outside_exporter_series": (series["variable"] == "shortfall") & (series["region"] != exporter),
    }
    outcomes: dict[str, np.ndarray] = {}
    for prefix, rows in wanted.items():
        table = series[rows].groupby(["element", "run_id", "step"], observed=True)["value"].sum()
        for element in dict.fromkeys(series.loc[rows, "element"]):  # in the model's order
            runs = table.loc[element].unstack("step").reindex(index=metrics["run_id"], columns=steps)
            outcomes[f"{prefix}_{element}"] = runs.to_numpy(dtype=float)
    if outcomes:
        outcomes["TIME"] = np.tile(steps.astype(float), (len(metrics), 1))
    return outcomes


def write_ema(metrics: pd.DataFrame, path: Path, experiment=None, series: pd.DataFrame | None = None) -> bool:
    """The runs that succeeded as EMA Workbench results (``ema_workbench.load_results``):
    experiments with every factor (its name without ``factor.``), each run's lever values
    (``lever_values``), policy, replication and seed; outcomes with every scalar metric
    (``ScalarOutcome``) and the time series of ``time_series_outcomes``
    (``TimeSeriesOutcome``; shortfall outside the experiment's exporter, the default
    scenario's without the experiment). False without ema_workbench."""
    try:
        with warnings.catch_warnings():  # it warns about optional parallel back-ends at import
            warnings.simplefilter("ignore")
            from ema_workbench import ScalarOutcome, TimeSeriesOutcome, save_results
            from ema_workbench.em_framework.outcomes import register
    except ImportError:
        return False
    ok = metrics[metrics["status"] == "ok"].reset_index(drop=True)
    experiments = ok[_factor_columns(ok)].rename(columns=lambda c: c.removeprefix("factor."))
    experiments = pd.concat([experiments, lever_values(ok, experiment), ok[["policy", "replication", "seed"]]], axis=1)
    experiments["policy"] = experiments["policy"].astype("category")
    outcomes = {name: ok[name].to_numpy(dtype=float) for name in scalar_outcomes(ok)}
    exporter = (experiment.scenario if experiment is not None else Scenario()).shock.exporter
    series_outcomes = time_series_outcomes(ok, pd.DataFrame() if series is None else series, exporter)
    # save_results serialises each outcome as the kind EMA's register holds for its name.
    # The register is global (a user's own ArrayOutcome of the same name would clash), so
    # the kinds are set for this export only and the user's restored after it.
    kinds = {**dict.fromkeys(outcomes, ScalarOutcome), **dict.fromkeys(series_outcomes, TimeSeriesOutcome)}
    before = {name: register.outcomes[name] for name in kinds if name in register.outcomes}
    register.outcomes.update(kinds)
    tmp = path.with_name(f".{path.name}.tmp.tar.gz")
    try:
        with warnings.catch_warnings():  # EMA warns that its time-series serialisation is new
            warnings.simplefilter("ignore")
            save_results((experiments, {**outcomes, **series_outcomes}), str(tmp))
    finally:
        for name in kinds:
            register.outcomes.pop(name)
        register.outcomes.update(before)
    tmp.replace(path)
    return True


def format_number(value: float, digits: int = 3) -> str:
    """A number as people read it, never in scientific notation: thousands with
    separators (``2,514``, ``4,000,000``), smaller values to ``digits`` significant
    digits (``0.164``, ``12.3``), values that round to zero as ``0``, NaN as ``n/a``."""
    if not np.isfinite(value):
        return "n/a" if np.isnan(value) else ("∞" if value > 0 else "−∞")
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    if abs(value) < 0.5 * 10 ** -(digits + 1):
        return "0"
    decimals = digits - 1 - int(np.floor(np.log10(abs(value))))
    return f"{value:.{max(decimals, 0)}f}"


def markdown_table(frame: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> str:
    """A markdown table of ``columns`` (name -> header) of ``frame``; numbers through
    ``format_number``, flags as yes/no."""
    head = "| " + " | ".join(columns.values()) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, (bool, np.bool_)):
                cells.append("yes" if value else "no")
            else:
                cells.append(format_number(value, digits) if isinstance(value, (float, np.floating)) else str(value))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def write_report(folder: Path, experiment=None) -> list[Path]:
    """Summary CSVs, figures and report.md for the store in ``folder``."""
    metrics = pd.read_parquet(folder / "metrics.parquet")
    # A fresh clone keeps only the metrics: figures of series are then skipped.
    series = pd.read_parquet(folder / "series.parquet") if (folder / "series.parquet").exists() else pd.DataFrame()
    manifest = json.loads((folder / "manifest.json").read_text())
    ok = metrics[metrics["status"] == "ok"]
    rng = np.random.default_rng(manifest.get("root_seed", 0))
    written = []
    summary = summarise(ok, rng)
    gained = resilience_gained(ok, rng)
    figures = folder / "figures"
    supply = supply_chain_summary(ok, rng)  # after the others: their intervals keep their random numbers
    deals = summarise(ok, rng, DEAL_OUTCOMES) if _negotiating(ok, experiment) else None
    across = ensemble_gained(ok, gained, rng)  # last: without an ensemble, no number above changes
    atomic_write(folder / "summary.csv", lambda h: summary.to_csv(h, index=False))
    written.append(folder / "summary.csv")
    if not gained.empty:
        atomic_write(folder / "resilience_gained.csv", lambda h: gained.to_csv(h, index=False))
        written.append(folder / "resilience_gained.csv")
    if supply is not None:
        atomic_write(folder / "supply_chain.csv", lambda h: supply.to_csv(h, index=False))
        written.append(folder / "supply_chain.csv")
    if deals is not None:
        atomic_write(folder / "deals.csv", lambda h: deals.to_csv(h, index=False))
        written.append(folder / "deals.csv")
    if across is not None:
        atomic_write(folder / "ensemble_gained.csv", lambda h: across.to_csv(h, index=False))
        written.append(folder / "ensemble_gained.csv")
    if "price" in set(series.get("variable", pd.Series(dtype=str))):
        plot_fan_charts(series, ok, figures / "price_fan_none.png")
        written.append(figures / "price_fan_none.png")
    written += plot_policies(summary, gained, figures)
    if plot_quota_response(summary, figures / "quota_response.png"):
        written.append(figures / "quota_response.png")
    indices = sensitivity_indices(ok, experiment)
    if indices is not None:
        atomic_write(folder / "sensitivity_indices.csv", lambda h: indices.to_csv(h, index=False))
        plot_sensitivity(indices, figures / "sensitivity.png")
        written += [folder / "sensitivity_indices.csv", figures / "sensitivity.png"]
    if write_ema(metrics, folder / "ema_results.tar.gz", experiment, series):
        written.append(folder / "ema_results.tar.gz")
    figures_written = [p for p in written if p.suffix == ".png"]
    report = _report_text(manifest, metrics, summary, gained, indices, figures_written, folder, supply, deals, across)
    atomic_write(folder / "report.md", lambda h: h.write(report))
    written.append(folder / "report.md")
    return written


def _negotiating(metrics: pd.DataFrame, experiment) -> bool:
    """Whether a store's runs negotiated: its scenario or a factor turns [negotiation] on,
    or a run held a deal."""
    if "deal_months" not in metrics:
        return False  # a store made before negotiation existed
    on_in_file = experiment is not None and experiment.scenario.negotiation.enabled
    return on_in_file or any(c.startswith("factor.negotiation.") for c in metrics) or bool(metrics["deal_months"].gt(0).any())


def _report_text(
    manifest, metrics, summary, gained, indices, figures, folder: Path, supply=None, deals=None, across=None
) -> str:
    failed = int((metrics["status"] != "ok").sum()) if "status" in metrics else 0
    lines = [
        f"# {manifest.get('experiment')}: batch report",
        "",
        f"Made by `ree report` from `{Path(manifest.get('experiment_file', '')).name}` "
        f"(design {manifest.get('design')}, {manifest.get('replications')} replications, root seed "
        f"{manifest.get('root_seed')}, {len(metrics)} runs, {failed} failed; git {str(manifest.get('git_commit'))[:10]}; "
        f"mesa {manifest.get('versions', {}).get('mesa')}). Every number below is computed from "
        "`metrics.parquet`; intervals are 95 % bootstrap intervals of the mean over replications.",
        "",
        "Outcomes are for importers outside the dominant exporter: cumulative shortfall (t REO), "
        "resilience loss (months of full service lost, value-weighted at 2024 prices), deepest monthly "
        "loss of service, months to recover to 95 % service (right-censored at the horizon), annualised "
        "volatility of the world price.",
        "",
    ]
    shortfall, loss, volatility, peak = (
        "shortfall_outside_exporter_t", "resilience_loss_months", "world_price_volatility_fraction_Dy",
        "world_price_peak_ratio_Dy",
    )
    if not gained.empty:
        lines += [
            "## Resilience gained against the no-policy arm (paired by seed)",
            "",
            markdown_table(gained, {
                "policy": "policy",
                f"{shortfall}_gain": f"fall in {metric_label(shortfall)}",
                f"{shortfall}_gain_low": "low",
                f"{shortfall}_gain_high": "high",
                f"{loss}_gain": f"fall in {metric_label(loss)}",
                f"{volatility}_gain": f"fall in {metric_label(volatility)}",
                "policy_cost_usd_mean": metric_label("policy_cost_usd"),
            }),
            "A positive fall is an improvement (0.25 = 25 % less than with no policy).",
            "",
        ]
    if across is not None:
        lines += _ensemble_text(across)
    columns = {"policy": "policy", "runs": "runs"}
    columns.update({c: c.removeprefix("factor.") for c in summary.columns if c.startswith("factor.")})
    columns.update({
        f"{shortfall}_mean": metric_label(shortfall),
        f"{shortfall}_low": "low",
        f"{shortfall}_high": "high",
        f"{volatility}_mean": metric_label(volatility),
        f"{peak}_mean": metric_label(peak),
        "recovery_months_mean": metric_label("recovery_months"),
    })
    lines += ["## Summary by design point and policy", "", markdown_table(summary, columns), ""]
    if supply is not None:
        lines += _supply_chain_text(supply)
    if deals is not None:
        lines += _deals_text(deals)
    if indices is not None:
        lines += _sensitivity_text(indices)
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.relative_to(folder).as_posix()})" for p in figures] + [""]
    return "\n".join(lines)


def _interval_table(summary: pd.DataFrame, outcomes: tuple[str, ...]) -> str:
    """A markdown table of ``summarise`` output: each of ``outcomes`` it holds as ``mean
    [low, high]``, per design point and policy."""
    outcomes = [name for name in outcomes if f"{name}_mean" in summary.columns]
    cells = summary[["policy", "runs", *_factor_columns(summary)]].copy()
    for name in outcomes:
        cells[name] = [
            f"{format_number(mean)} [{format_number(low)}, {format_number(high)}]"
            for mean, low, high in summary[[f"{name}_mean", f"{name}_low", f"{name}_high"]].itertuples(index=False)
        ]
    columns = {"policy": "policy", "runs": "runs"}
    columns.update({c: c.removeprefix("factor.") for c in _factor_columns(summary)})
    columns.update({name: metric_label(name) for name in outcomes})
    return markdown_table(cells, columns)


def _ensemble_text(across: pd.DataFrame) -> list[str]:
    """The section across the calibrated ensemble: ``ensemble_gained`` per member and
    policy, each member's best policy and Kendall's tau, and the verdict."""
    gain = f"{HEADLINE}_gain"
    stability = ranking_stability(across)
    return [
        "## Across the calibrated ensemble",
        "",
        "Every design point ran once with each member of the calibrated ensemble (the market parameters "
        "`ree calibrate` found, in the folder the experiment file names). Per member: each policy's fall in "
        f"{metric_label(HEADLINE)} against the same member's no-policy arm (paired by seed, 95 % bootstrap "
        "interval), its rank among the policies in that member (1 = the largest fall) and in all members "
        "pooled (the table above); `ensemble_gained.csv` has the numbers.",
        "",
        markdown_table(across, {
            "member": "member", "policy": "policy", gain: f"fall in {metric_label(HEADLINE)}",
            f"{gain}_low": "low", f"{gain}_high": "high", "rank": "rank in member", "pooled_rank": "pooled rank",
        }),
        markdown_table(stability, {
            "member": "member", "best_policy": "best policy", "kendall_tau": "Kendall's tau with the pooled ranking",
        }),
        stability_verdict(stability),
        "",
    ]


def stability_verdict(stability: pd.DataFrame) -> str:
    """One line on whether the policies' ranking holds across the members of
    ``ranking_stability``: every member in the pooled order, only the best policy the
    same in every member, or a best policy that depends on the member."""
    taus, best = stability["kendall_tau"].dropna(), stability["best_policy"]
    if taus.empty:
        return "**No ranking to compare:** one policy against the no-policy arm, or ties in every member."
    low, high = format_number(taus.min()), format_number(taus.max())
    spread = "Kendall's tau between each member's ranking and the pooled one " + (
        f"{low} in every member" if low == high else f"from {low} to {high}"
    )
    if len(taus) == len(stability) and (taus == 1.0).all():
        return (f"**Stable:** every member ranks the policies in the pooled order ({spread}); "
                f"{best.iloc[0]} is best in every member.")
    if best.nunique() == 1:
        return (f"**Best policy stable, order not:** {best.iloc[0]} is best in every member, but the others "
                f"change places ({spread}).")
    by_member = ", ".join(f"{row.member}: {row.best_policy}" for row in stability.itertuples())
    return f"**Not stable:** the best policy depends on the member ({by_member}); {spread}."


def _deals_text(deals: pd.DataFrame) -> list[str]:
    """The negotiated deals section (``DEAL_OUTCOMES`` per design point and policy)."""
    return [
        "## Negotiated deals: the bargaining channel",
        "",
        "What the negotiating party's deals with the dominant exporter were (abm.negotiation, docs/ODD.md "
        "§7.28): months under a deal, deals broken before their term, what the party paid for them (the "
        "concessions, USD), and the mean share of its need of Dy and Tb a deal guaranteed. A policy that "
        "lowers what the party pays, or raises what it is guaranteed, against the no-policy arm at the same "
        "design point buys bargaining power: the bargaining channel of resilience, apart from the physical "
        "channel of the tables above. Each cell is the mean over replications and its 95 % bootstrap "
        "interval [low, high]; `deals.csv` has the numbers.",
        "",
        _interval_table(deals, DEAL_OUTCOMES),
        "",
    ]


def _supply_chain_text(supply: pd.DataFrame) -> list[str]:
    """The supply chain section: each outcome of ``supply_chain_summary`` as ``mean [low,
    high]``, per design point and policy."""
    return [
        "## Supply chain: where importers' supply is made, and shortfall by end use",
        "",
        "For the importing regions outside the dominant exporter together: the share of what their buyers "
        "(plants and end users) received of each stage's products over the run that was made in the exporter "
        "(re-exports traced to their maker; receipts of untraced origin count in the total), the new capacity of "
        "each stage that private investment has running outside the exporter at the horizon (t a year), and the "
        "cumulative shortfall at magnet users (t of magnets) and at the other end uses (t of oxide). Each cell is the mean "
        "over replications and its 95 % bootstrap interval [low, high]; `supply_chain.csv` has the numbers.",
        "",
        _interval_table(supply, SUPPLY_CHAIN_OUTCOMES),
        "",
    ]


def _sensitivity_text(indices: pd.DataFrame) -> list[str]:
    """The sensitivity section: the indices with their confidence intervals and, for
    Sobol, which indices have not converged, in words."""
    table = indices.assign(outcome=indices["outcome"].map(metric_label))
    lines = [
        "## Sensitivity indices",
        "",
        "Each `_conf` column is SALib's half-width of the 95 % confidence interval of the index to its left.",
        "",
        markdown_table(table, {c: c for c in table.columns}),
    ]
    if "unconverged" in indices and indices["unconverged"].any():
        bad = indices[indices["unconverged"]]
        which = ", ".join(f"{row.factor} on {row.outcome}" for row in bad.itertuples())
        lines += [
            f"**Not converged:** {len(bad)} of {len(indices)} factor-outcome pairs have a Sobol index outside "
            f"[0, 1] by more than its confidence interval ({which}). A Sobol index is a share of variance, so "
            "these are sampling noise, not estimates: rerun with more samples (the next powers of 2) before "
            "reading them.",
            "",
        ]
    return lines
