"""Speed of the clearing kernel (abm/clearing.py) on markets of the supply chain's size.

Run with ``.venv/bin/python benchmarks/clearing_benchmark.py``; it prints a markdown table
and writes it to ``benchmarks/CLEARING_RESULTS.md``. One call clears 17 products in 8
zones (the v2 chain's products and the model's regions); each row is the median over
random markets of the time per call, cold (no previous month) or warm (starting from the
previous month's clearing of a market whose curves moved by a few per cent, as they do
from one month to the next).
"""

import statistics
import time
from pathlib import Path

import numpy as np

from abm.clearing import Bids, Links, Offers, clear
from run_benchmarks import write_figures

PRODUCTS, ZONES, MARKETS, MONTHS = 17, 8, 30, 12
OUT = Path(__file__).with_name("CLEARING_RESULTS.md")


def market(rng: np.random.Generator, ban: bool, quota: bool):
    """Random curves of the chain's shape; one exporter (zone 0) holds most of the stock."""
    shape = (PRODUCTS, ZONES)
    stock = rng.uniform(1, 20, shape)
    stock[:, 0] *= 20
    quantity = rng.uniform(5, 60, shape)
    expected = rng.uniform(1, 500, (PRODUCTS, 1)) * rng.uniform(0.9, 1.1, shape)
    offers = Offers(stock, 0.3 * stock, expected, 0.3 * expected, 1.0)
    bids = Bids(quantity, expected * rng.uniform(0.95, 1.05, shape), -0.3, 2.0)
    banned = np.zeros((PRODUCTS, ZONES, ZONES), dtype=bool)
    if ban:
        banned[:4, 0, 1] = True  # four products banned from the exporter to one destination
    cap = np.full(shape, np.inf)
    if quota:
        cap[:, 0] = 0.5 * stock[:, 0]
    links = Links(rng.uniform(0.02, 0.06, PRODUCTS), np.zeros(shape), banned, cap)
    return offers, bids, links


def per_call(ban: bool, quota: bool, warm: bool) -> float:
    rng = np.random.default_rng(1)
    timings = []
    for _ in range(MARKETS):
        offers, bids, links = market(rng, ban, quota)
        previous = clear(offers, bids, links) if warm else None
        for _ in range(MONTHS):
            nudge = rng.uniform(0.97, 1.03, offers.stock.shape)
            moved = Offers(offers.stock * nudge, offers.keep, offers.expected, offers.cost, offers.holdback)
            start = time.perf_counter()
            result = clear(moved, bids, links, previous)
            timings.append(time.perf_counter() - start)
            previous = result if warm else None
    return statistics.median(timings)


def main() -> None:
    rows = []
    for name, ban, quota in (("open trade", False, False), ("export quota on zone 0", False, True),
                             ("ban zone 0 -> zone 1 in 4 products", True, False)):
        for warm in (False, True):
            rows.append((f"{name}, {'warm' if warm else 'cold'}", per_call(ban, quota, warm) * 1e3))
    write_figures(OUT, "Clearing kernel figures", ("market", "median ms per call"),
                  [(name, f"{ms:.2f}") for name, ms in rows], notes=(f"{PRODUCTS} products x {ZONES} zones per call.",))

if __name__ == "__main__":
    main()
