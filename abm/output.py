"""Writing a run's outputs so that a crash never leaves a half-written file behind."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from abm.run import RunResult


def atomic_write(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write through a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb" if binary else "w") as handle:
            write(handle)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; outputs are for sharing
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_run(result: RunResult, out: Path) -> list[Path]:
    """One run into ``out``: the element series (``series.parquet``, ``series.csv``:
    ``abm.run.tidy_series``), the product series (``product_series.parquet``:
    ``abm.run.tidy_product_series``), each region's supply by origin per stage
    (``import_dependency.csv``: ``abm.run.import_dependency``), the metrics
    (``metrics.json``) and figures."""
    from abm.figures import plot_prices, plot_shortfall, plot_supply_by_origin

    series = result.series
    written = [
        out / "series.parquet", out / "series.csv", out / "product_series.parquet", out / "import_dependency.csv",
        out / "metrics.json",
    ]
    atomic_write(written[0], lambda h: series.to_parquet(h, index=False), binary=True)
    atomic_write(written[1], lambda h: series.to_csv(h, index=False))
    atomic_write(written[2], lambda h: result.product_series.to_parquet(h, index=False), binary=True)
    atomic_write(written[3], lambda h: result.import_dependency.to_csv(h, index=False))
    summary = {"scenario": result.scenario.name, "seed": result.seed, "metrics": result.metrics}
    atomic_write(written[4], lambda h: json.dump(summary, h, indent=2, sort_keys=True))
    for name, plot in (
        ("prices.png", plot_prices),
        ("supply_by_origin.png", plot_supply_by_origin),
        ("shortfall.png", plot_shortfall),
    ):
        plot(series, out / name)
        written.append(out / name)
    return written
