"""What a target measures in one simulated run: one pure function per kind of target.

Months are counted from January of the scenario's start year; a target's ``start`` and
``end`` are read as in ``abm/data/history/targets.csv``. Kinds that follow one price
read the target's zone (``export``: the world market outside the exporter;
``domestic``: inside it); ratios to "the base" divide by the world price in month 0,
the base-year reference price.
"""

import numpy as np

from abm.data import month_index
from abm.model import RareEarthModel
from abm.validation.history import Target, load_targets
from abm.validation.replay import Replay, replay_of


def simulated_value(target: Target, run: Replay, start_year: int) -> float:
    """The simulated counterpart of ``target`` in ``run``."""
    first, last = month_index(target.start, start_year), month_index(target.end, start_year)
    export = run.export_price
    if target.element != "all":
        e = run.elements.index(target.element)
        price = (export if target.zone == "export" else run.domestic_price)[:, e]
    if target.kind == "peak_months_after_start":
        # months from `start` to the highest price up to `end`
        return float(np.argmax(price[first : last + 1]))
    if target.kind == "peak_ratio":
        # highest price from `start` to `end` over the base-year price
        return float(price[first : last + 1].max() / export[0, e])
    if target.kind == "mean_ratio":
        # mean price from `start` to `end` over the base-year price
        return float(price[first : last + 1].mean() / export[0, e])
    if target.kind == "price_ratio":
        # price in `end` over that in `start`
        return float(price[last] / price[first])
    if target.kind == "export_to_domestic":
        # export price in `end` over the exporter's domestic price in `start`
        return float(export[last, e] / run.domestic_price[first, e])
    if target.kind == "basket_peak_ratio":
        # highest quarterly mean of the value-weighted export basket after `start`, over `start`
        index = (export / export[0]) @ run.basket_weight / run.basket_weight.sum()
        quarters = [index[month : month + 3].mean() for month in range(first + 1, last + 1, 3)]
        return float(max(quarters) / index[first])
    if target.kind == "quota_fill":
        # exports over the quota from `start` to `end`, element-months under a quota only
        # (month m is recorded at row m + 1)
        months = slice(first + 1, last + 2)
        quota, exports = run.quota[months], run.exports[months]
        under = ~np.isnan(quota)
        if not under.any():
            raise ValueError(f"{target.name}: no quota in force from {target.start} to {target.end}")
        return float(exports[under].sum() / quota[under].sum())
    raise ValueError(f"unknown target kind {target.kind!r}")


def target_metrics(model: RareEarthModel, seed: int, half: str) -> dict[str, float]:
    """``target.<name>`` -> the simulated value of every target of ``half`` in a finished
    run: the metrics a calibration batch records beside the run's own."""
    run = replay_of(model, seed)
    start_year = model.spec.start_year
    return {f"target.{t.name}": simulated_value(t, run, start_year) for t in load_targets(half)}
