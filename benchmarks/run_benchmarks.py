"""Speed of the model: one 20-year baseline run, and how run time grows with the horizon.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/run_benchmarks.py``); it
prints a markdown table and writes it to ``benchmarks/RESULTS.md`` with the machine it
ran on. Timings are medians of several runs after one warm-up run, model construction
included, data collection included, tidy-table conversion reported apart.
"""

import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from abm import RareEarthModel, Scenario, load_scenario
from abm.run import tidy_series

REPEATS = 7
OUT = Path(__file__).with_name("RESULTS.md")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _run(horizon: int, seed: int, scenario: Scenario | None = None) -> RareEarthModel:
    model = RareEarthModel(rng=seed, scenario=dataclasses.replace(scenario or Scenario(), horizon_months=horizon))
    while model.running:
        model.step()
    return model


def median_seconds(action, repeats: int = REPEATS) -> float:
    action(0)  # warm-up: imports, caches
    timings = []
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        action(seed)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def machine_reference(_seed: int) -> None:
    """A fixed workload of the kind the model's step is made of (Python calls and small
    numpy operations on a [17, 8] array), so that figures taken on a shared machine at
    different times can be compared: divide by it."""
    values = np.linspace(0.0, 1.0, 136).reshape(17, 8)
    for _ in range(20_000):
        values = np.where(values > 0.5, np.exp(-values), values + 0.01)


def main() -> None:
    rows = [("machine reference workload (see machine_reference)", median_seconds(machine_reference)),
            ("one baseline run, 240 months", median_seconds(lambda s: _run(240, s)))]
    model = _run(240, 1)
    rows.append(("tidy series of that run", median_seconds(lambda s: tidy_series(model))))
    for horizon in (60, 120, 480):
        rows.append((f"one baseline run, {horizon} months", median_seconds(lambda s, h=horizon: _run(h, s))))
    shock = load_scenario(EXPERIMENTS / "quota_shock.toml")
    rows.append(("one quota-shock run, 240 months (24 with the counterfactual run, abm.counterfactual)",
                 median_seconds(lambda s: _run(240, s, shock))))
    write_figures(OUT, "Benchmark figures", ("benchmark", "median seconds"),
                  [(name, f"{seconds:.3f}") for name, seconds in rows])


def write_figures(out: Path, title: str, header: tuple[str, str], rows: list[tuple[str, str]],
                  notes: tuple[str, ...] = ()) -> None:
    """Print a markdown table of benchmark figures with the machine they ran on and write
    it to ``out`` under ``title`` (and the script that wrote it)."""
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "",
        *(line for note in notes for line in (note, "")),
        f"| {header[0]} | {header[1]} |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    script = Path(sys.argv[0]).name
    out.write_text(f"# {title} (written by benchmarks/{script})\n\n" + text)

if __name__ == "__main__":
    main()
