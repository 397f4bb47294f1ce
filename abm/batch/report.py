"""From a results store to what a researcher reads: summary tables with confidence
intervals, resilience gained per policy (paired by seed), figures and ``report.md``.

Everything here is computed from ``metrics.parquet`` and ``series.parquet``; no number
is typed in. ``ema_results.tar.gz`` holds the runs as EMA Workbench's
``(experiments, outcomes)`` for scenario discovery (PRIM) when ema_workbench is installed.
"""

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from abm.batch.experiment import NO_POLICY  # noqa: E402
from abm.figures import save_figure  # noqa: E402
from abm.metrics import bootstrap_mean_ci, paired_relative_gain  # noqa: E402
from abm.output import atomic_write  # noqa: E402

# Headline outcomes: lower is better for all of them.
OUTCOMES = (
    "shortfall_outside_exporter_t", "resilience_loss_months", "shortfall_depth", "recovery_months",
    "unserved_value_usd", "world_price_volatility_Dy", "world_price_volatility_Nd", "world_price_peak_ratio_Dy",
)
RESAMPLES = 2000


def _factor_columns(metrics: pd.DataFrame) -> list[str]:
    return [c for c in metrics.columns if c.startswith("factor.")]


def summarise(metrics: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Mean and 95 % bootstrap interval of each outcome and of policy cost, per design point and policy."""
    rows = []
    keys = ["point_id", "policy"]
    for (point, policy), group in metrics.groupby(keys, sort=True):
        row = {"point_id": point, "policy": policy, "runs": len(group)}
        row.update({c: group[c].iloc[0] for c in _factor_columns(group)})
        for outcome in (*OUTCOMES, "policy_cost_usd"):
            values = group[outcome].to_numpy(dtype=float)
            low, high = bootstrap_mean_ci(values, rng, RESAMPLES)
            row.update({f"{outcome}_mean": values.mean(), f"{outcome}_low": low, f"{outcome}_high": high})
        rows.append(row)
    summary = pd.DataFrame(rows)
    return summary.sort_values([*_factor_columns(summary), "policy"], ignore_index=True)


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


def plot_fan_charts(series: pd.DataFrame, metrics: pd.DataFrame, path: Path, policy: str = NO_POLICY) -> None:
    """World and exporter-zone price per element: median, 50 % and 90 % bands over runs."""
    runs = set(metrics.loc[metrics["policy"] == policy, "run_id"])
    prices = series[(series["variable"] == "price") & series["run_id"].isin(runs)]
    zones = [z for z in ("world", "CN") if z in set(prices["region"])]
    elements = list(dict.fromkeys(prices["element"].astype(str)))
    figure, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True, squeeze=False)
    for ax, element in zip(axes.ravel(), elements):
        for zone, colour in zip(zones, ("tab:red", "tab:blue")):
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
    axes[0, 0].legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("month")
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
            axes, ("shortfall_outside_exporter_t", "world_price_volatility_Dy"),
            ("Resilience gained: shortfall outside the exporter", "Volatility reduction: world Dy price"),
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
        for ax, outcome in zip(axes, ("world_price_volatility_Dy", "shortfall_outside_exporter_t")):
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
    """Morris (mu*, sigma) or Sobol (S1, ST) indices of the headline outcomes, from the
    design rows in order, each row's outcome averaged over replications (no-policy arm)."""
    if experiment is None or experiment.design not in ("morris", "sobol"):
        return None
    from abm.batch.plan import salib_problem, design_matrix, point_id

    problem = salib_problem(experiment)
    rows = design_matrix(experiment)
    base = metrics[metrics["policy"] == NO_POLICY].groupby("point_id").mean(numeric_only=True)
    matrix = np.array([[row[f.name] for f in experiment.factors] for row in rows], dtype=float)
    records = []
    for outcome in ("world_price_volatility_Dy", "shortfall_outside_exporter_t", "resilience_loss_months"):
        y = np.array([base.loc[point_id(row), outcome] for row in rows], dtype=float)
        if experiment.design == "morris":
            from SALib.analyze import morris

            result = morris.analyze(problem, matrix, y, num_levels=4, seed=experiment.seed)
            for name, mu_star, sigma in zip(problem["names"], result["mu_star"], result["sigma"]):
                records.append({"outcome": outcome, "factor": name, "mu_star": mu_star, "sigma": sigma})
        else:
            from SALib.analyze import sobol

            result = sobol.analyze(problem, y, calc_second_order=False, seed=experiment.seed)
            for name, s1, st in zip(problem["names"], result["S1"], result["ST"]):
                records.append({"outcome": outcome, "factor": name, "S1": s1, "ST": st})
    return pd.DataFrame(records)


def plot_sensitivity(indices: pd.DataFrame, path: Path) -> None:
    value = "mu_star" if "mu_star" in indices.columns else "ST"
    outcomes = list(dict.fromkeys(indices["outcome"]))
    figure, axes = plt.subplots(1, len(outcomes), figsize=(5 * len(outcomes), 4.5), squeeze=False)
    for ax, outcome in zip(axes[0], outcomes):
        data = indices[indices["outcome"] == outcome].sort_values(value)
        ax.barh(data["factor"], data[value], color="tab:gray")
        ax.set_title(f"{outcome}\n({'Morris mu*' if value == 'mu_star' else 'Sobol total index'})", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    save_figure(figure, path, dpi=100)


def write_ema(metrics: pd.DataFrame, path: Path) -> bool:
    """The runs as EMA Workbench results: experiments (factors, policy, seed) and outcomes."""
    try:
        with warnings.catch_warnings():  # it warns about optional parallel back-ends at import
            warnings.simplefilter("ignore")
            from ema_workbench import ScalarOutcome, save_results
    except ImportError:
        return False
    ok = metrics[metrics["status"] == "ok"].reset_index(drop=True)
    experiments = ok[[*_factor_columns(ok), "policy", "replication", "seed"]].rename(
        columns=lambda c: c.removeprefix("factor.")
    )
    experiments["policy"] = experiments["policy"].astype("category")
    outcomes = {name: ok[name].to_numpy(dtype=float) for name in (*OUTCOMES, "policy_cost_usd")}
    for name in outcomes:
        ScalarOutcome(name)  # EMA serialises only outcomes it has been told about
    tmp = path.with_name(f".{path.name}.tmp.tar.gz")
    save_results((experiments, outcomes), str(tmp))
    tmp.replace(path)
    return True


def markdown_table(frame: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> str:
    head = "| " + " | ".join(columns.values()) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            cells.append(f"{value:.{digits}g}" if isinstance(value, (float, np.floating)) else str(value))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def write_report(folder: Path, experiment=None) -> list[Path]:
    """Summary CSVs, figures and report.md for the store in ``folder``."""
    metrics = pd.read_parquet(folder / "metrics.parquet")
    series = pd.read_parquet(folder / "series.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    ok = metrics[metrics["status"] == "ok"]
    rng = np.random.default_rng(manifest.get("root_seed", 0))
    written = []
    summary = summarise(ok, rng)
    gained = resilience_gained(ok, rng)
    figures = folder / "figures"
    atomic_write(folder / "summary.csv", lambda h: summary.to_csv(h, index=False))
    written.append(folder / "summary.csv")
    if not gained.empty:
        atomic_write(folder / "resilience_gained.csv", lambda h: gained.to_csv(h, index=False))
        written.append(folder / "resilience_gained.csv")
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
    if write_ema(metrics, folder / "ema_results.tar.gz"):
        written.append(folder / "ema_results.tar.gz")
    report = _report_text(manifest, metrics, summary, gained, indices, [p for p in written if p.suffix == ".png"], folder)
    atomic_write(folder / "report.md", lambda h: h.write(report))
    written.append(folder / "report.md")
    return written


def _report_text(manifest, metrics, summary, gained, indices, figures, folder: Path) -> str:
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
    if not gained.empty:
        lines += [
            "## Resilience gained against the no-policy arm (paired by seed)",
            "",
            markdown_table(gained, {
                "policy": "policy",
                "shortfall_outside_exporter_t_gain": "shortfall fall",
                "shortfall_outside_exporter_t_gain_low": "low",
                "shortfall_outside_exporter_t_gain_high": "high",
                "resilience_loss_months_gain": "resilience-loss fall",
                "world_price_volatility_Dy_gain": "Dy volatility fall",
                "policy_cost_usd_mean": "policy cost, USD",
            }),
            "A positive fall is an improvement (0.25 = 25 % less than with no policy).",
            "",
        ]
    columns = {"policy": "policy", "runs": "runs"}
    columns.update({c: c.removeprefix("factor.") for c in summary.columns if c.startswith("factor.")})
    columns.update({
        "shortfall_outside_exporter_t_mean": "shortfall t",
        "shortfall_outside_exporter_t_low": "low",
        "shortfall_outside_exporter_t_high": "high",
        "world_price_volatility_Dy_mean": "Dy volatility",
        "world_price_peak_ratio_Dy_mean": "Dy peak ratio",
        "recovery_months_mean": "recovery months",
    })
    lines += ["## Summary by design point and policy", "", markdown_table(summary, columns), ""]
    if indices is not None:
        lines += ["## Sensitivity indices", "", markdown_table(indices, {c: c for c in indices.columns}), ""]
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.relative_to(folder).as_posix()})" for p in figures] + [""]
    return "\n".join(lines)
