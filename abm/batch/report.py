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

from abm.batch.effects import (  # noqa: E402
    FOREGONE, MEMBER_COLUMN, by_design_point, design_columns, interactions, paired_by_point, policy_effects, present,
)
from abm.batch.effect_figures import plot_cost_resilience, plot_effects, point_label  # noqa: E402
from abm.batch.effects_text import effects_text  # noqa: E402
from abm.batch.experiment import NO_POLICY  # noqa: E402
from abm.batch.fans import FAN_POINTS, plot_price_fans, too_many_points  # noqa: E402
from abm.batch.tables import format_number, format_usd, markdown_table  # noqa: E402
from abm.figures import save_figure  # noqa: E402
from abm.metrics import (  # noqa: E402
    METRICS, STAGES, bootstrap_mean_ci, metric_label, paired_relative_gain, parse_metric,
)
from abm.output import atomic_write  # noqa: E402
from abm.scenario import Scenario, setting_value  # noqa: E402
from abm.validation.ensemble import member_rank  # noqa: E402

# Headline outcomes: lower is better for all of them.
OUTCOMES = (
    "demand_foregone_outside_exporter_t", "shortfall_outside_exporter_t", "resilience_loss_months", "shortfall_depth_fraction", "recovery_months",
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
HEADLINE = FOREGONE


def _factor_columns(metrics: pd.DataFrame) -> list[str]:
    return [c for c in metrics.columns if c.startswith("factor.")]


def summarise(metrics: pd.DataFrame, rng: np.random.Generator, outcomes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean and 95 % bootstrap interval (``<outcome>_mean``, ``_low``, ``_high``) of each
    of ``outcomes`` (default: OUTCOMES and policy cost), per design point (its factors;
    over a calibrated ensemble, every member's runs of the point together) and policy."""
    rows = []
    for policy in sorted(set(metrics["policy"])):
        for point, group in by_design_point(metrics[metrics["policy"] == policy], design_columns(metrics)):
            rows.append(_summary_row(point, policy, group, rng, outcomes))
    summary = pd.DataFrame(rows)
    return summary.sort_values([*_factor_columns(summary), "policy"], ignore_index=True)


def _summary_row(point: dict, policy: str, group: pd.DataFrame, rng: np.random.Generator,
                 outcomes: tuple[str, ...] | None) -> dict:
    """One row of ``summarise``: the point's factors, policy, runs and each outcome's mean
    and interval over ``group``'s runs."""
    row = {**point, "policy": policy, "runs": len(group)}
    for outcome in present((*OUTCOMES, "policy_cost_usd") if outcomes is None else outcomes, group):
        values = group[outcome].to_numpy(dtype=float)
        low, high = bootstrap_mean_ci(values, rng, RESAMPLES)
        row.update({f"{outcome}_mean": values.mean(), f"{outcome}_low": low, f"{outcome}_high": high})
    return row


def supply_chain_summary(metrics: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame | None:
    """``summarise`` of the SUPPLY_CHAIN_OUTCOMES the runs report, per design point and
    policy, with the same bootstrap intervals; None for a store made before they existed."""
    outcomes = tuple(name for name in SUPPLY_CHAIN_OUTCOMES if name in metrics.columns)
    return summarise(metrics, rng, outcomes) if outcomes else None


def resilience_gained(metrics: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Relative fall of each outcome against the no-policy arm per design point (its
    factors other than the ensemble member) and policy, paired by point and replication
    (the same seeds), with a bootstrap interval over the pairs; never pooled across
    design points. Columns: the design point's factors, policy, pairs,
    ``policy_cost_usd_mean`` and ``<outcome>_gain`` with ``_low`` and ``_high``."""
    rows = []
    outcomes = present(OUTCOMES, metrics)
    for point, policy, paired in paired_by_point(metrics, outcomes):
        row = {**point, "policy": policy, "pairs": len(paired), "policy_cost_usd_mean": paired["policy_cost_usd"].mean()}
        for outcome in outcomes:
            gain, low, high = paired_relative_gain(paired[f"{outcome}_base"], paired[outcome], rng, RESAMPLES)
            row.update({f"{outcome}_gain": gain, f"{outcome}_gain_low": low, f"{outcome}_gain_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def ensemble_gained(metrics: pd.DataFrame, gained: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame | None:
    """[members x design points x policies] each policy's resilience gained in
    ``HEADLINE`` within each ensemble member (``resilience_gained`` of the member's runs,
    so paired with the same member's no-policy arm): columns member, the design point's
    factors, policy, ``<HEADLINE>_gain`` with ``_low`` and ``_high`` (fractions), ``rank``
    among the policies in the member at that point and ``pooled_rank`` at that point in
    ``gained`` (all members together); 1 is the largest fall, and a policy with no fall to
    measure (NaN: no loss without policy) ranks last. Members in rank order. None for a
    store without an ensemble or without policies."""
    if MEMBER_COLUMN not in metrics.columns or gained.empty or f"{HEADLINE}_gain" not in gained:
        return None
    gain = f"{HEADLINE}_gain"
    design = design_columns(metrics)
    columns = [*design, "policy", gain, f"{gain}_low", f"{gain}_high"]
    members = sorted(metrics[MEMBER_COLUMN].unique(), key=member_rank)
    parts = [resilience_gained(metrics[metrics[MEMBER_COLUMN] == member], rng) for member in members]
    table = pd.concat(
        [part[columns].assign(member=member) for member, part in zip(members, parts, strict=True) if not part.empty],
        ignore_index=True,
    )
    ranking = {"ascending": False, "method": "min", "na_option": "bottom"}
    table["rank"] = table.groupby(["member", *design], sort=False, dropna=False)[gain].rank(**ranking).astype(int)
    pooled = gained[[*design, "policy", gain]].copy()
    pooled["pooled_rank"] = (pooled.groupby(design, sort=False, dropna=False)[gain] if design else pooled[gain]).rank(**ranking)
    table = table.merge(pooled[[*design, "policy", "pooled_rank"]], on=[*design, "policy"], how="left")
    table["pooled_rank"] = table["pooled_rank"].astype(int)
    return table[["member", *columns, "rank", "pooled_rank"]]


def ranking_stability(table: pd.DataFrame) -> pd.DataFrame:
    """Per member (and design point) of ``ensemble_gained``: its best policy (rank 1; the
    first of a tie) and Kendall's tau between its ranking and the pooled one at the same
    point (1 = the same order, -1 the reverse; NaN with one policy, or when a ranking is
    all ties)."""
    def one(group: pd.DataFrame) -> pd.Series:
        tau = kendalltau(group["rank"], group["pooled_rank"]).statistic if len(group) > 1 else np.nan
        return pd.Series({"best_policy": group.loc[group["rank"].idxmin(), "policy"], "kendall_tau": float(tau)})

    keys = ["member", *design_columns(table)]
    return table.groupby(keys, sort=False, dropna=False)[["policy", "rank", "pooled_rank"]].apply(one).reset_index()


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
    for stale in [*figures.glob("*.png"), *figures.glob("*.svg")]:  # an earlier report's, possibly of other points
        stale.unlink()
    supply = supply_chain_summary(ok, rng)  # after the others: their intervals keep their random numbers
    deals = summarise(ok, rng, DEAL_OUTCOMES) if _negotiating(ok, experiment) else None
    across = ensemble_gained(ok, gained, rng)  # after the others: without an ensemble, no number above changes
    effects = policy_effects(ok, rng) if FOREGONE in ok.columns else pd.DataFrame()
    combined = interactions(ok, experiment.policies, rng) if experiment is not None and not effects.empty else None
    tables = {"summary": summary, "resilience_gained": gained, "supply_chain": supply, "deals": deals,
              "ensemble_gained": across, "effects": effects, "interactions": combined}
    for name, table in tables.items():
        if table is not None and not table.empty:
            atomic_write(folder / f"{name}.csv", lambda h, table=table: table.to_csv(h, index=False))
            written.append(folder / f"{name}.csv")
    if not effects.empty:
        written += plot_effects(effects, figures / "effects.png") + plot_cost_resilience(effects, figures / "cost_resilience.png")
    fan_note = ""
    if "price" in set(series.get("variable", pd.Series(dtype=str))):
        fans = plot_price_fans(series, ok, figures, experiment.scenario if experiment is not None else None)
        written += fans
        if too_many_points(ok):
            fan_note = (f"No price fan charts: the store has more than {FAN_POINTS} design points, and a fan pooled "
                        "over them would mix them (`series.parquet` has every run's prices).")
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
    report = _report_text(manifest, metrics, summary, gained, indices, figures_written, folder, supply, deals, across,
                          effects, combined, fan_note)
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
    manifest, metrics, summary, gained, indices, figures, folder: Path, supply=None, deals=None, across=None,
    effects=None, combined=None, fan_note: str = "",
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
    if effects is not None and not effects.empty:
        lines += effects_text(effects, combined)
    if not gained.empty:
        headline = HEADLINE if f"{HEADLINE}_gain" in gained else shortfall  # a store made before demand foregone
        falls = {f"{name}_gain": f"fall in {_fall_label(name)}" for name in (shortfall, loss, volatility)}
        lines += [
            "## Resilience gained against the no-policy arm (paired by seed, per design point)",
            "",
            markdown_table(gained.assign(policy_cost_usd_mean=gained["policy_cost_usd_mean"].map(format_usd)), {
                **{c: c.removeprefix("factor.") for c in design_columns(gained)},
                "policy": "policy",
                f"{headline}_gain": f"fall in {_fall_label(headline)}",
                f"{headline}_gain_low": "low",
                f"{headline}_gain_high": "high",
                **{column: label for column, label in falls.items() if column != f"{headline}_gain"},
                "policy_cost_usd_mean": metric_label("policy_cost_usd"),
            }),
            "A positive fall is an improvement (0.25 = 25 % less than with no policy); n/a where the no-policy "
            "arm has no loss to fall from.",
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
    lines += ["## Figures", "", *([fan_note, ""] if fan_note else [])]
    lines += [f"![{p.stem}]({p.relative_to(folder).as_posix()})" for p in figures] + [""]
    return "\n".join(lines)


def _fall_label(name: str) -> str:
    """The header of a relative fall in metric ``name``: its label and suffix, as a share."""
    metric, suffix = parse_metric(name)
    return f"{metric.label}{' ' + suffix if suffix else ''} (share)"


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
    """The section across the calibrated ensemble: per design point, each member's best
    policy and Kendall's tau with the ranking of all members together, and the verdict
    (``ensemble_gained.csv`` has every member's fall per policy)."""
    stability = ranking_stability(across)
    design = design_columns(stability)
    columns = {"member": "member", **{c: c.removeprefix("factor.") for c in design}, "best_policy": "best policy",
               "kendall_tau": "Kendall's tau with the pooled ranking"}
    verdicts = [f"- {point_label(point)}: {stability_verdict(rows)}" if point else stability_verdict(rows)
                for point, rows in by_design_point(stability, design)]
    return [
        "## Across the calibrated ensemble",
        "",
        "Every design point ran with each member of the calibrated ensemble (the market parameters "
        "`ree calibrate` found, in the folder the experiment file names). Within each member and design point, "
        f"the policies are ranked by their fall in {metric_label(HEADLINE)} against the same member's no-policy "
        "arm (paired by seed; 1 = the largest fall), and that ranking is compared with the one of all members "
        "together at the same point. `ensemble_gained.csv` has each member's fall per policy, with its 95 % "
        "bootstrap interval and both ranks.",
        *([] if (across[f"{HEADLINE}_gain_low"] != across[f"{HEADLINE}_gain_high"]).any() else [
            "", "With one replication per member, each member's fall at a point is one pair of runs (its interval "
            "is that pair), so a member's ranking carries that pair's seed as well as the member's parameters: "
            "read the order below the best policy as indicative."]),
        "",
        markdown_table(stability, columns),
        *verdicts,
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
