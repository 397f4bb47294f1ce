"""Speed of the batch engine: runs per second on each executor, our engine against
``mesa.batch_run`` for the same full-factorial sweep (time and peak memory), and the
size of a results store per 1,000 runs.

Run with ``.venv/bin/python benchmarks/batch_benchmarks.py``; it prints a markdown table
and writes it to ``benchmarks/BATCH_RESULTS.md``. The sweep is 2 quota cuts x 2 shock
lengths x 6 replications over 240 months (24 runs), small enough to run in
a few minutes on two cores. Timings start after imports (both engines pay process start-up
for their workers); the report step of ``ree batch`` is not included.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).with_name("BATCH_RESULTS.md")
EXPERIMENT = """
name = "bench"
scenario = "{scenario}"
replications = 6
seed = 5
record_every = 1
series = ["price", "shortfall", "demand", "strategic_stock", "policy_cost"]
[factors]
quota_cut = [0.2, 0.6]
shock_months = [6, 24]
horizon_months = [240]
"""

ENGINE = """
import sys, time, resource
from pathlib import Path
from abm.batch import load_experiment, run_batch
experiment = load_experiment(sys.argv[1])
start = time.perf_counter()
run_batch(experiment, Path(sys.argv[2]), executor=sys.argv[3], workers=int(sys.argv[4]), progress=False)
seconds = time.perf_counter() - start
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(seconds, peak)
"""

MESA = """
import sys, time, resource
import mesa
from abm import RareEarthModel
start = time.perf_counter()
rows = mesa.batch_run(RareEarthModel, parameters={{"quota_cut": [0.2, 0.6], "shock_months": [6, 24], "horizon_months": 240}},
                      iterations=6, number_processes={workers}, max_steps=300, display_progress=False, data_collection_period=1)
seconds = time.perf_counter() - start
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(seconds, peak)
"""


def _measure(code: str, *args: str) -> tuple[float, float]:
    """Seconds and peak resident memory (MiB, the largest process) of a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, check=True)
    seconds, peak_kib = done.stdout.split()[-2:]
    return float(seconds), float(peak_kib) / 1024


def main() -> None:
    runs = 24
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        experiment = Path(folder) / "bench.toml"
        experiment.write_text(EXPERIMENT.format(scenario=(ROOT / "experiments" / "quota_shock.toml").as_posix()))
        for executor, workers in (("serial", 1), ("processes", 1), ("processes", 2), ("dask", 2)):
            out = Path(folder) / f"{executor}{workers}"
            seconds, peak = _measure(ENGINE, str(experiment), str(out), executor, str(workers))
            rows.append((f"ree batch, {executor}, {workers} worker(s)", seconds, runs / seconds, peak))
            if executor == "serial":
                size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and "parts" not in p.parts)
        for workers in (1, 2):
            seconds, peak = _measure(MESA.format(workers=workers))
            rows.append((f"mesa.batch_run, {workers} process(es)", seconds, runs / seconds, peak))
    serial = rows[0][2]
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}. {runs} runs of 240 months each "
        "(model, data collection and storage included; wall time after imports, worker start-up included).",
        "",
        "| engine | seconds | runs/s | parallel efficiency vs serial | peak memory of one process, MiB |",
        "|---|---|---|---|---|",
    ]
    for name, seconds, rate, peak in rows:
        workers = 2 if ("2 " in name) else 1
        lines.append(f"| {name} | {seconds:.1f} | {rate:.2f} | {rate / serial / workers:.0%} | {peak:.0f} |")
    lines += ["", f"Store size (tables, report, figures; per-step series at every month): "
              f"{size / 1e6:.2f} MB for {runs} runs = {size / runs * 1000 / 1e6:.0f} MB per 1,000 runs "
              "(240-month runs)."]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.write_text("# Batch benchmark figures (written by benchmarks/batch_benchmarks.py)\n\n" + text)


if __name__ == "__main__":
    main()
