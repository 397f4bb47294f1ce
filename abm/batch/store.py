"""The results store of one experiment, ``results/<experiment>/``: safe to kill at any time.

Each finished run is written as its own pair of Parquet parts (series first, then
metrics, each through a temporary file and a rename), so a run is finished exactly
when its metrics part exists: a SIGKILL loses only runs in flight and can never leave
a half-written or duplicated row. ``consolidate`` joins the parts into
``metrics.parquet`` (one row per run, joined to its design point and policy) and
``series.parquet``; ``manifest.json`` records what made the store; ``status.log`` is a
line per run for people (the parts are the truth).
"""

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from abm.output import atomic_write

PARTS = "parts"


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts = folder / PARTS

    def exists(self) -> bool:
        return (self.folder / "manifest.json").exists()

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.folder / "manifest.json").read_text()) if self.exists() else {}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.folder / "manifest.json", lambda h: json.dump(manifest, h, indent=2, sort_keys=True, default=str))

    def clear_unfinished_writes(self) -> None:
        """Remove temporary files a killed batch left behind (they were never parts)."""
        for temporary in self.parts.glob(".*.tmp"):
            temporary.unlink(missing_ok=True)

    def finished(self) -> set[str]:
        """Ids of runs whose results are safely on disk (succeeded; failed runs are retried)."""
        done = set()
        for part in self.parts.glob("*.metrics.parquet"):
            done.add(part.name.split(".")[0])
        return done

    def write_run(self, record: dict[str, Any], series: pd.DataFrame | None) -> None:
        """Persist one finished run. A failed run is kept as a FAILED record (its own
        part, which a later success replaces) and is retried by the next rerun."""
        self.parts.mkdir(parents=True, exist_ok=True)
        run_id, row = record["run_id"], pd.DataFrame([record])
        if record["status"] == "ok":
            if series is not None:
                atomic_write(self.parts / f"{run_id}.series.parquet", lambda h: series.to_parquet(h, index=False), binary=True)
            atomic_write(self.parts / f"{run_id}.metrics.parquet", lambda h: row.to_parquet(h, index=False), binary=True)
            (self.parts / f"{run_id}.failed.parquet").unlink(missing_ok=True)
        else:
            atomic_write(self.parts / f"{run_id}.failed.parquet", lambda h: row.to_parquet(h, index=False), binary=True)
        self.log(record)

    def log(self, record: dict[str, Any]) -> None:
        entry = {k: record.get(k) for k in ("run_id", "policy", "replication", "status", "seconds", "error")}
        entry["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        with (self.folder / "status.log").open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    def failures(self) -> pd.DataFrame:
        """The latest record of every run that failed and has not since succeeded."""
        path = self.folder / "status.log"
        if not path.exists():
            return pd.DataFrame(columns=["run_id", "error"])
        entries = []
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
        latest = {e["run_id"]: e for e in entries}
        done = self.finished()
        return pd.DataFrame([e for rid, e in latest.items() if e["status"] != "ok" and rid not in done])

    def consolidate(self) -> tuple[Path, Path]:
        """Join the parts into the two tables (atomic writes; parts stay for resuming).
        ``metrics.parquet`` holds every planned run that ended: succeeded, or FAILED with
        its error."""
        done = self.finished()
        failed = [p for p in sorted(self.parts.glob("*.failed.parquet")) if p.name.split(".")[0] not in done]
        metrics_parts = sorted(self.parts.glob("*.metrics.parquet")) + failed
        metrics = pd.concat([pd.read_parquet(p) for p in metrics_parts], ignore_index=True) if metrics_parts else pd.DataFrame()
        if not metrics.empty:
            metrics = metrics.drop_duplicates("run_id").sort_values(["point_id", "policy", "replication"], ignore_index=True)
        series_parts = sorted(self.parts.glob("*.series.parquet"))
        series = pd.concat([pd.read_parquet(p) for p in series_parts], ignore_index=True) if series_parts else pd.DataFrame()
        metrics_path, series_path = self.folder / "metrics.parquet", self.folder / "series.parquet"
        atomic_write(metrics_path, lambda h: metrics.to_parquet(h, index=False), binary=True)
        atomic_write(series_path, lambda h: series.to_parquet(h, index=False), binary=True)
        return metrics_path, series_path
