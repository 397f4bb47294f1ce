"""The report's section on what each policy buys (``abm.batch.effects.policy_effects``):
per design point, a table and a paragraph generated from its numbers."""

import numpy as np
import pandas as pd

from abm.batch.effect_figures import point_label
from abm.batch.effects import COST, FOREGONE, VOLATILITY, by_design_point, design_columns
from abm.batch.tables import format_number, format_usd, markdown_table

SHORTFALL = "shortfall_outside_exporter_t"


def _interval(mean: float, low: float, high: float, scale: float = 1.0) -> str:
    return f"{format_number(mean / scale)} [{format_number(low / scale)}, {format_number(high / scale)}]"


def _usd_interval(mean: float, low: float, high: float) -> str:
    return "n/a" if not np.isfinite(mean) else f"{format_usd(mean)} [{format_usd(low)}, {format_usd(high)}]"


def point_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The cells of one design point's table, policies by demand foregone avoided."""
    rows = rows.sort_values(f"{FOREGONE}_avoided", ascending=False)
    base = rows[f"{FOREGONE}_base"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(base > 0, 100.0 * rows[f"{FOREGONE}_avoided"].to_numpy() / base, np.nan)
    cells = pd.DataFrame({
        "policy": rows["policy"].to_numpy(),
        "pairs": rows["pairs"].to_numpy(),
        "foregone": [_interval(*r, scale=1e3) for r in rows[[f"{FOREGONE}_avoided", f"{FOREGONE}_avoided_low",
                                                              f"{FOREGONE}_avoided_high"]].itertuples(index=False)],
        "share": [f"{format_number(v)} %" if np.isfinite(v) else "n/a" for v in share],
        "cost": [format_usd(v) for v in rows[COST]],
        "per_t": [_usd_interval(*r) for r in rows[["usd_per_t_avoided", "usd_per_t_avoided_low",
                                                    "usd_per_t_avoided_high"]].itertuples(index=False)],
    })
    if f"{SHORTFALL}_avoided" in rows:
        cells["shortfall"] = [_interval(*r) for r in rows[[f"{SHORTFALL}_avoided", f"{SHORTFALL}_avoided_low",
                                                           f"{SHORTFALL}_avoided_high"]].itertuples(index=False)]
    if f"{VOLATILITY}_avoided" in rows:
        cells["volatility"] = [_interval(*r, scale=0.01) for r in rows[[
            f"{VOLATILITY}_avoided", f"{VOLATILITY}_avoided_low", f"{VOLATILITY}_avoided_high"]].itertuples(index=False)]
    return cells


def what_it_says(rows: pd.DataFrame) -> str:
    """One paragraph on one design point, from its numbers only: the loss without policy,
    the policy that avoids the most, which policies help or harm beyond their interval,
    and the cheapest tonne avoided."""
    avoided, low, high = (rows[f"{FOREGONE}_avoided{s}"] for s in ("", "_low", "_high"))
    base = rows[f"{FOREGONE}_base"].iloc[0]
    best = rows.loc[avoided.idxmax()]
    helps = rows.loc[low > 0, "policy"].tolist()
    harms = rows.loc[high < 0, "policy"].tolist()
    text = [f"Without a policy, importers outside the exporter forgo {format_number(base / 1e3)} kt REO over the run "
            "(the shock's months and the others together)."]
    if best[f"{FOREGONE}_avoided"] > 0:
        share = f" ({format_number(100.0 * best[f'{FOREGONE}_avoided'] / base)} % of that)" if base > 0 else ""
        text.append(f"{best['policy']} avoids the most: {format_number(best[f'{FOREGONE}_avoided'] / 1e3)} kt{share}.")
    else:
        text.append("No policy avoids any of it on average.")
    text.append(f"{len(helps)} of {len(rows)} policies avoid a loss whose 95 % interval excludes zero"
                + (f" ({', '.join(helps)})" if helps else "") + ".")
    if harms:
        text.append(f"{', '.join(harms)} make{'s' if len(harms) == 1 else ''} it worse, beyond the interval.")
    priced = rows[np.isfinite(rows["usd_per_t_avoided"])]
    if not priced.empty:
        cheapest = priced.loc[priced["usd_per_t_avoided"].idxmin()]
        per_t = cheapest["usd_per_t_avoided"]
        text.append(f"The cheapest tonne avoided is {cheapest['policy']}'s, at {format_usd(per_t)} a tonne"
                    + (" (a net gain: the programme sold for more than it spent)." if per_t < 0 else "."))
    return " ".join(text)


COLUMNS = {
    "policy": "policy", "pairs": "pairs", "foregone": "demand foregone avoided (kt REO) [95 % CI]",
    "share": "share of the no-policy run's foregone demand", "shortfall": "shortfall avoided (t REO) [95 % CI]",
    "volatility": "Dy volatility cut (points) [95 % CI]", "cost": "policy cost", "per_t": "cost per t avoided [95 % CI]",
}


def interactions_text(table: pd.DataFrame) -> list[str]:
    """The interactions subsection: each combined policy against the sum of its parts,
    per design point with the 95 % interval of the difference, and one sentence per
    combined policy from the numbers."""
    if table.empty:
        return []
    lines = ["### Interactions: each combination against the sum of its parts", ""]
    for whole, rows in table.groupby("policy", sort=True):
        worse, better = int((rows["interaction_t_high"] < 0).sum()), int((rows["interaction_t_low"] > 0).sum())
        lines.append(
            f"{whole} combines {rows['parts'].iloc[0]}. Against the sum of what these avoid one by one, it avoids "
            f"less beyond the 95 % interval at {worse} of {len(rows)} design points (the levers get in each other's "
            f"way) and more at {better}; elsewhere the difference is within the interval (docs/ODD.md §7.22.11).")
    cells = table.assign(
        whole_t=table["whole_t"].map(lambda v: format_number(v / 1e3)),
        parts_t=table["parts_t"].map(lambda v: format_number(v / 1e3)),
        interaction_t=[_interval(*r, scale=1e3) for r in table[["interaction_t", "interaction_t_low",
                                                                 "interaction_t_high"]].itertuples(index=False)])
    columns = {c: c.removeprefix("factor.") for c in design_columns(table)}
    columns.update({"policy": "combination", "pairs": "pairs", "whole_t": "avoided together (kt REO)",
                    "parts_t": "sum of the parts alone (kt REO)", "interaction_t": "difference (kt REO) [95 % CI]"})
    return [*lines, "", markdown_table(cells, columns), ""]


def effects_text(effects: pd.DataFrame, interactions: pd.DataFrame | None = None) -> list[str]:
    """The section: an explanation, then per design point its paragraph and table, then
    the interactions of combined policies (``abm.batch.effects.interactions``)."""
    lines = [
        "## What each policy buys, per design point",
        "",
        "Each policy's effect is the mean over pairs of runs that share their random numbers (the same design "
        "point, replication and ensemble member) of the no-policy run's loss less the policy run's; it is "
        "never pooled across design points. Demand foregone is what importers outside the exporter would "
        "have used at reference prices and did not, whether prices priced it out or it was not delivered "
        "(`demand_foregone_outside_exporter_t`). Intervals are 95 % BCa bootstrap intervals over the pairs "
        "(`scipy.stats.bootstrap`); the cost per tonne avoided is the mean cost over the mean tonnes avoided, "
        "with its paired BCa interval, and n/a where the tonnes avoided may be nil. The volatility cut is in "
        "percentage points of the world Dy price's annualised volatility. `effects.csv` has every number.",
        "",
    ]
    for point, rows in by_design_point(effects, design_columns(effects)):
        cells = point_table(rows)
        lines += [f"### {point_label(point)}", "", what_it_says(rows), "",
                  markdown_table(cells, {c: h for c, h in COLUMNS.items() if c in cells}), ""]
    return lines + interactions_text(pd.DataFrame() if interactions is None else interactions)
