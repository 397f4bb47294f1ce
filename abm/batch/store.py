"""The results store of one experiment, ``results/<experiment>/``: safe to kill at any time.

Each finished run is written as its own Parquet parts (series and, when the experiment
records agents, agent series first, then metrics, each through a temporary file and a
rename), so a run is finished exactly
when its metrics part exists: a SIGKILL loses only runs in flight and can never leave
a half-written or duplicated row. A part damaged anyway (a truncated file, a disk that
lost its tail) is found by its Parquet footer at the start of the next batch, or when
it cannot be read while consolidating, and is moved to ``parts/quarantine/`` so that its
run is made again. ``consolidate`` joins the parts of the planned runs into
``metrics.parquet`` (one row per run, joined to its design point and policy),
``series.parquet`` and ``agents.parquet`` (only when agents are recorded); ``manifest.json`` records what made the store; ``status.log`` is a
line per run for people (the parts are the truth); ``.lock`` is held by the one batch
writing the store.
"""

import fcntl
import json
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from abm.output import atomic_write
from abm.scenario import ScenarioError

PARTS = "parts"
QUARANTINE = "quarantine"
LOCK = ".lock"
TEMPORARY = ".*.tmp"  # what atomic_write leaves behind when killed mid-write
PARQUET_MAGIC = b"PAR1"
KINDS = ("metrics", "series", "agents", "failed")  # <run id>.<kind>.parquet


def store_error(folder: Path, error: OSError) -> ScenarioError:
    """An operating-system failure writing ``folder`` (read-only, disk full, ...) as the one
    line a user sees."""
    return ScenarioError(folder, "store", str(folder), f"a writable folder with free space ({error.strerror or error})")


def is_whole_parquet(path: Path) -> bool:
    """Whether ``path`` has Parquet's magic at both ends and a footer that fits in the file
    (a cheap check of 12 bytes: truncation always fails it)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
            handle.seek(max(size - 8, 0))
            tail = handle.read(8)
    except OSError:
        return False
    footer = int.from_bytes(tail[:4], "little") if len(tail) == 8 else size
    return size >= 12 and head == PARQUET_MAGIC and tail[4:] == PARQUET_MAGIC and footer + 12 <= size


def _run_id(part: Path) -> str:
    return part.name.split(".")[0]


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts = folder / PARTS
        self.quarantine = self.parts / QUARANTINE

    def exists(self) -> bool:
        return (self.folder / "manifest.json").exists()

    def check_folder(self) -> None:
        """Refuse a store path that is an existing file."""
        if self.folder.exists() and not self.folder.is_dir():
            raise ScenarioError("--out", "out", str(self.folder), "a folder for the results (this is an existing file)")

    def manifest(self) -> dict[str, Any]:
        """What made the store ({} when there is none); a damaged manifest is refused."""
        if not self.exists():
            return {}
        path = self.folder / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            manifest = None
        if not isinstance(manifest, dict):
            raise ScenarioError(path, "manifest", str(path), "a manifest.json written by ree batch (delete the folder or use another --out)")
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.folder / "manifest.json", lambda h: json.dump(manifest, h, indent=2, sort_keys=True, default=str))

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store for one batch; a second batch on it is refused (one line). The
        operating system releases the lock when the process ends, however it ends."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = (self.folder / LOCK).open("a")
        except OSError as error:
            raise store_error(self.folder, error) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ScenarioError(
                    self.folder, "store", str(self.folder),
                    "a store no other batch is writing (wait for that batch to end, or use another --out)",
                ) from None
            yield

    def clear_unfinished_writes(self) -> None:
        """Remove temporary files a killed batch or report left behind (they were never
        parts or tables)."""
        for folder in (self.folder, self.parts, self.folder / "figures"):
            for temporary in folder.glob(TEMPORARY):
                temporary.unlink(missing_ok=True)

    def quarantine_damaged(self) -> list[Path]:
        """Move every part whose Parquet footer is not whole, with the other parts of its
        run, to ``parts/quarantine/``; return the damaged parts (where they were)."""
        damaged = [part for part in sorted(self.parts.glob("*.parquet")) if not is_whole_parquet(part)]
        return self._quarantine(damaged)

    def _quarantine(self, damaged: list[Path]) -> list[Path]:
        """Move the parts of every run with a damaged part aside (stamped, so a part
        quarantined twice keeps both copies); return ``damaged``."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for run_id in dict.fromkeys(_run_id(part) for part in damaged):
            self.quarantine.mkdir(exist_ok=True)
            for kind in KINDS:
                part = self.parts / f"{run_id}.{kind}.parquet"
                if part.exists():
                    part.replace(self.quarantine / f"{part.name}.{stamp}")
        return damaged

    def _parts(self, kind: str, run_ids: Collection[str] | None = None) -> dict[str, Path]:
        """The ``kind`` part of each run (of ``run_ids``, default all), by run id."""
        parts = {_run_id(part): part for part in sorted(self.parts.glob(f"*.{kind}.parquet"))}
        return parts if run_ids is None else {rid: part for rid, part in parts.items() if rid in run_ids}

    def finished(self) -> set[str]:
        """Ids of runs whose results are safely on disk (succeeded; failed runs are retried)."""
        return set(self._parts("metrics"))

    def write_run(self, record: dict[str, Any], series: pd.DataFrame | None, agents: pd.DataFrame | None = None) -> None:
        """Persist one finished run: its series and agent series (when given) first, its
        metrics last. A failed run is kept as a FAILED record (its own part, which a
        later success replaces) and is retried by the next rerun."""
        self.parts.mkdir(parents=True, exist_ok=True)
        run_id, row = record["run_id"], pd.DataFrame([record])
        if record["status"] == "ok":
            for kind, table in (("series", series), ("agents", agents)):
                if table is not None:
                    atomic_write(self.parts / f"{run_id}.{kind}.parquet", lambda h, t=table: t.to_parquet(h, index=False), binary=True)
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

    def failures(self, run_ids: Collection[str] | None = None) -> pd.DataFrame:
        """The latest record of every run (of ``run_ids``, default all) that failed and has
        not since succeeded."""
        path = self.folder / "status.log"
        if not path.exists():
            return pd.DataFrame(columns=["run_id", "error"])
        entries = []
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
        latest = {e["run_id"]: e for e in entries if run_ids is None or e["run_id"] in run_ids}
        done = self.finished()
        return pd.DataFrame([e for rid, e in latest.items() if e["status"] != "ok" and rid not in done])

    def consolidate(self, run_ids: Collection[str] | None = None) -> list[Path]:
        """Join the parts of ``run_ids`` (default: every run in the store) into the tables
        (atomic writes; parts stay for resuming). ``metrics.parquet`` holds every such run
        that ended: succeeded, or FAILED with its error; ``series.parquet`` (and
        ``agents.parquet``, when there are agent parts) the series of those that
        succeeded. A part that cannot be read is quarantined and its run left out of every
        table; returns those parts (where they were; empty when all were whole)."""
        done = self._parts("metrics", run_ids)
        failed = [part for rid, part in self._parts("failed", run_ids).items() if rid not in done]
        metrics, damaged = _read_parts([*done.values(), *failed])
        tables = {"metrics": metrics}
        for kind in ("series", "agents"):
            tables[kind], damaged_parts = _read_parts([part for rid, part in self._parts(kind, run_ids).items() if rid in done])
            damaged += damaged_parts
        if damaged:
            runs = {_run_id(part) for part in damaged}
            tables = {kind: t[~t["run_id"].isin(runs)] if "run_id" in t else t for kind, t in tables.items()}
        if not tables["metrics"].empty:
            tables["metrics"] = tables["metrics"].drop_duplicates("run_id").sort_values(
                ["point_id", "policy", "replication"], ignore_index=True
            )
        for kind, table in tables.items():
            if kind != "agents" or not table.empty:  # agents.parquet only from an experiment that records agents
                atomic_write(self.folder / f"{kind}.parquet", lambda h, t=table: t.to_parquet(h, index=False), binary=True)
        return self._quarantine(damaged)


def _read_parts(parts: list[Path]) -> tuple[pd.DataFrame, list[Path]]:
    """The parts joined into one table, and the parts that could not be read."""
    frames, damaged = [], []
    for part in parts:
        try:
            frames.append(pd.read_parquet(part))
        except (pa.ArrowException, OSError):
            damaged.append(part)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), damaged
