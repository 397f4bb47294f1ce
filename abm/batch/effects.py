"""What each policy buys at each design point: paired differences against the no-policy
arm, never pooled across design points, with BCa bootstrap intervals and what a unit of
avoided loss costs.

A policy's run and the no-policy run of the same design point and replication (and,
over a calibrated ensemble, the same member) share their random numbers, so their
difference is the policy's effect on that draw of the world. Per design point (the
factors of the experiment other than the ensemble member) and policy:

- ``<outcome>_avoided`` [outcome's unit]: the mean over pairs of no-policy minus policy
  (positive is better, since every outcome here is a loss), with ``_low`` and ``_high``,
  the 95 % BCa interval of ``scipy.stats.bootstrap`` (paired, resampling pairs), and
  ``<outcome>_base``, the no-policy mean;
- ``usd_per_t_avoided``: the policy's mean cost over the mean demand foregone it avoided
  (USD per t REO), with a paired BCa interval of that ratio; NaN (and a note) when the
  policy avoided nothing on average or its interval reaches zero avoided;
- ``usd_per_volatility_point``: the mean cost over the mean fall of the world Dy price's
  annualised volatility in percentage points, likewise.

BCa needs pairs that differ: where every pair gives the same difference (no effect at
all, or one pair), the interval is that value at both ends; where BCa cannot make an
interval (nearly constant pairs) its ends are NaN, and no effect is claimed.
"""

import warnings

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from abm.batch.experiment import ENSEMBLE_FACTOR, NO_POLICY

# Losses a policy may avoid, each lower-is-better: demand foregone (priced out or not
# delivered), shortfall, resilience loss, Dy price volatility outside the exporter.
FOREGONE = "demand_foregone_outside_exporter_t"
VOLATILITY = "world_price_volatility_fraction_Dy"
EFFECT_OUTCOMES = (FOREGONE, "shortfall_outside_exporter_t", "resilience_loss_months", VOLATILITY)
COST = "policy_cost_usd"
LEVEL = 0.95
MEMBER_COLUMN = f"factor.{ENSEMBLE_FACTOR}"
PAIR = ["point_id", "replication"]  # runs with these in common share their seed


def present(outcomes: tuple[str, ...], metrics: pd.DataFrame) -> tuple[str, ...]:
    """The ``outcomes`` a store's runs report (a store made by an older model lacks some)."""
    return tuple(name for name in outcomes if name in metrics.columns)


def design_columns(metrics: pd.DataFrame) -> list[str]:
    """The factor columns that make a design point (the ensemble member is not one: the
    members are the model's parameter uncertainty, over which effects are taken)."""
    return [c for c in metrics.columns if c.startswith("factor.") and c != MEMBER_COLUMN]


def by_design_point(frame: pd.DataFrame, design: list[str]):
    """(factor values {column: value}, rows) for each design point of ``frame``, in order;
    the whole frame as one point when there are no factors."""
    if not design:
        yield {}, frame
        return
    for values, group in frame.groupby(design, sort=True, dropna=False):
        yield dict(zip(design, values if isinstance(values, tuple) else (values,), strict=True)), group


def parts_of(policies: dict[str, dict]) -> dict[str, list[str]]:
    """{combined policy: its parts}: the policies whose every setting a combined policy
    holds with the same value, for each policy that holds two or more others (the
    portfolio and its levers)."""
    parts = {}
    for whole, settings in policies.items():
        inside = [name for name, own in policies.items()
                  if name != whole and own and all(settings.get(key) == value for key, value in own.items())]
        if len(inside) >= 2:
            parts[whole] = sorted(inside)
    return parts


def interactions(metrics: pd.DataFrame, policies: dict[str, dict], rng: np.random.Generator,
                 resamples: int = 2000) -> pd.DataFrame:
    """Per design point and combined policy (``parts_of``): the demand foregone it
    avoided (``whole_t``), the sum of what its parts avoided alone (``parts_t``) and their
    difference per pair of seeds, ``interaction_t`` with ``_low`` and ``_high`` (95 % BCa
    over the pairs; negative when the levers get in each other's way, positive when they
    reinforce each other), t REO. Every policy's run of a point and replication shares its
    seed, so the difference is taken within each seed. Empty without a combined policy.
    ``metrics``: the store's ok runs."""
    rows = []
    design = design_columns(metrics)
    loss = metrics.pivot_table(index=PAIR, columns="policy", values=FOREGONE) if FOREGONE in metrics else None
    for whole, parts in parts_of(policies).items():
        if loss is None or not {whole, NO_POLICY, *parts} <= set(loss.columns):
            continue
        avoided = loss[NO_POLICY].to_numpy()[:, None] - loss[[whole, *parts]].to_numpy()
        pairs = pd.DataFrame({"whole": avoided[:, 0], "parts": avoided[:, 1:].sum(axis=1)}, index=loss.index)
        pairs = pairs.join(metrics.drop_duplicates(PAIR).set_index(PAIR)[design]).dropna(subset=["whole", "parts"])
        for point, group in by_design_point(pairs, design):
            difference = (group["whole"] - group["parts"]).to_numpy()
            mean, low, high = mean_interval(difference, rng, resamples)
            rows.append({**point, "policy": whole, "parts": ", ".join(parts), "pairs": len(group),
                         "whole_t": group["whole"].mean(), "parts_t": group["parts"].mean(),
                         "interaction_t": mean, "interaction_t_low": low, "interaction_t_high": high})
    return pd.DataFrame(rows)


def paired_pairs(metrics: pd.DataFrame, policy: str, outcomes: tuple[str, ...]) -> pd.DataFrame:
    """The runs of ``policy`` joined to the no-policy run with the same point and
    replication: columns of ``metrics`` for the policy, ``<outcome>_base`` for the arm."""
    base = metrics.loc[metrics["policy"] == NO_POLICY, [*PAIR, *outcomes]]
    runs = metrics[metrics["policy"] == policy]
    return runs.merge(base, on=PAIR, how="inner", suffixes=("", "_base"))


def paired_by_point(metrics: pd.DataFrame, outcomes: tuple[str, ...]):
    """(design point {factor column: value}, policy, pairs) for each policy other than the
    no-policy arm, in name order, and each of its design points: ``paired_pairs`` of the
    point's runs."""
    design = design_columns(metrics)
    for policy in sorted(set(metrics["policy"]) - {NO_POLICY}):
        for point, group in by_design_point(paired_pairs(metrics, policy, outcomes), design):
            yield point, policy, group


def mean_interval(values: np.ndarray, rng: np.random.Generator, resamples: int) -> tuple[float, float, float]:
    """Mean of ``values`` [pairs] and its 95 % BCa interval (scipy.stats.bootstrap)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if values.size else float("nan")
    if values.size < 2 or np.ptp(values) == 0:
        return mean, mean, mean
    result = _bootstrap((values,), np.mean, rng, resamples, paired=False)
    return mean, *map(float, result.confidence_interval)  # NaN where BCa cannot make one


def ratio_interval(
    cost: np.ndarray, avoided: np.ndarray, rng: np.random.Generator, resamples: int
) -> tuple[float, float, float]:
    """mean(cost) / mean(avoided) over pairs [pairs] and its paired 95 % BCa interval; NaN
    where the mean avoided is not positive or a bootstrap resample of it is not (a unit
    cost of an effect that may be nil is unbounded)."""
    cost, avoided = np.asarray(cost, dtype=float), np.asarray(avoided, dtype=float)
    nan = (float("nan"),) * 3
    if avoided.size == 0 or avoided.mean() <= 0:
        return nan
    ratio = float(cost.mean() / avoided.mean())
    if avoided.size < 2 or (np.ptp(avoided) == 0 and np.ptp(cost) == 0):
        return ratio, ratio, ratio
    if _bootstrap((avoided,), np.mean, rng, resamples, paired=False).bootstrap_distribution.min() <= 0:
        return nan  # some resample avoids nothing: the unit cost is unbounded

    def statistic(c: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(c, axis=axis) / np.mean(a, axis=axis)

    result = _bootstrap((cost, avoided), statistic, rng, resamples, paired=True)
    return ratio, *map(float, result.confidence_interval)


def _bootstrap(data: tuple, statistic, rng: np.random.Generator, resamples: int, paired: bool):
    with warnings.catch_warnings():  # degenerate jackknife (near-constant pairs): the interval is NaN
        warnings.simplefilter("ignore")
        return bootstrap(data, statistic, n_resamples=resamples, confidence_level=LEVEL, method="BCa",
                         paired=paired, vectorized=True, rng=rng)


def policy_effects(metrics: pd.DataFrame, rng: np.random.Generator, resamples: int = 2000) -> pd.DataFrame:
    """[design points x policies] the columns of the module docstring, with the design
    point's factor columns, ``pairs`` and the policy's mean cost ``policy_cost_usd``; rows
    sorted by design point and policy. Empty without a no-policy arm or other policies.
    ``metrics``: the store's ok runs (``metrics.parquet``)."""
    outcomes = present(EFFECT_OUTCOMES, metrics)
    rows = []
    for point, policy, group in paired_by_point(metrics, outcomes):
        row = {**point, "policy": policy, "pairs": len(group), COST: group[COST].mean()}
        avoided = {o: (group[f"{o}_base"] - group[o]).to_numpy(dtype=float) for o in outcomes}
        for outcome, values in avoided.items():
            mean, low, high = mean_interval(values, rng, resamples)
            row.update({f"{outcome}_base": group[f"{outcome}_base"].mean(),
                        f"{outcome}_avoided": mean, f"{outcome}_avoided_low": low, f"{outcome}_avoided_high": high})
        cost = group[COST].to_numpy(dtype=float)
        for name, outcome, scale in (("usd_per_t_avoided", FOREGONE, 1.0), ("usd_per_volatility_point", VOLATILITY, 100.0)):
            if outcome in avoided:
                interval = ratio_interval(cost, scale * avoided[outcome], rng, resamples)
                row.update(zip((name, f"{name}_low", f"{name}_high"), interval, strict=True))
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values([*design_columns(metrics), "policy"], ignore_index=True)
