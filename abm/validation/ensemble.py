"""The calibrated ensemble: the best candidates of ``ree calibrate``, as scenario files.

``ree calibrate`` writes one scenario file per member into a folder (by default
``experiments/calibrated/``): each ``extends`` the historical scenario it was calibrated
on and states, in its ``[market]`` table, every searched setting at full precision, so
that replaying a member with the same seeds reproduces its scores exactly. Forward
experiments name the folder (``ensemble = "calibrated"``) and run every design point
once per member with the member's ``[market]`` settings over their own scenario: the
market's behavioural parameters travel, the history's quotas and base year do not.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from abm.output import atomic_write
from abm.scenario import ScenarioError, load_scenario, read_toml, setting_value

MEMBER_PREFIX = "member_"
SECTION = "market"  # the only section a member may state settings in


@dataclass(frozen=True)
class Member:
    """One calibrated parameter set: its name (``member_1`` is the best), file and
    settings as ``section.key`` -> value."""

    name: str
    path: Path
    settings: dict[str, float]


def member_rank(name: str) -> int:
    """The rank in a member's name (1 for ``member_1``, the best)."""
    return int(name.removeprefix(MEMBER_PREFIX))


def member_paths(folder: Path) -> list[Path]:
    """The member files of ``folder`` in rank order (``member_1.toml``, ``member_2.toml``, ...)."""
    paths = [p for p in folder.glob(f"{MEMBER_PREFIX}*.toml") if p.stem.removeprefix(MEMBER_PREFIX).isdigit()]
    return sorted(paths, key=lambda path: member_rank(path.stem))


def load_ensemble(folder: str | Path, source: str | Path = "ensemble") -> tuple[Member, ...]:
    """Every member of the ensemble in ``folder``, best first. Each file must load as a
    scenario and state its settings in ``[market]`` only; a missing or empty folder is a
    ScenarioError on ``source``'s ``ensemble`` key."""
    folder = Path(folder)
    paths = member_paths(folder) if folder.is_dir() else []
    if not paths:
        raise ScenarioError(
            source, "ensemble", str(folder), f"a folder of {MEMBER_PREFIX}<n>.toml files written by `ree calibrate`"
        )
    members = []
    for path in paths:
        load_scenario(path)  # the member must be a valid scenario as it stands
        table = read_toml(path, path, "file")
        settings = table.get(SECTION, {})
        members.append(Member(path.stem, path, {f"{SECTION}.{key}": float(value) for key, value in settings.items()}))
    return tuple(members)


def scenario_member(path: Path, names: list[str]) -> Member:
    """A scenario file taken as a one-member ensemble, with its values of ``names``
    (``section.key``) as its settings."""
    scenario = load_scenario(path)
    return Member(path.stem, path, {name: float(setting_value(scenario, name)) for name in names})


def _member_text(base: Path, folder: Path, rank: int, total: int, settings: dict[str, float], origin: str) -> str:
    parent = Path(os.path.relpath(base.resolve(), folder.resolve())).as_posix()
    lines = [
        f"# Calibrated ensemble member {rank} of {total}, written by `ree calibrate` from {origin};",
        "# do not edit by hand (rerun the calibration). Settings at full precision, so that a",
        "# replay with the same seeds reproduces the scores of results/validation/.",
        f'extends = "{parent}"',
        f'name = "{base.stem}_{MEMBER_PREFIX}{rank}"',
        "",
        f"[{SECTION}]",
    ]
    for name, value in settings.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} = {value} is not a finite calibrated value")
        lines.append(f"{name.partition('.')[2]} = {value!r}")
    return "\n".join(lines) + "\n"


def write_ensemble(
    table: pd.DataFrame, searched: list[str], base: Path, folder: Path, members: int, origin: str
) -> list[Path]:
    """Write the first ``members`` rows of the calibration ``table`` (best first) as
    member files in ``folder``, each extending ``base``; member files of an earlier,
    larger ensemble are removed so that the folder holds exactly this one."""
    outside = [name for name in searched if not name.startswith(f"{SECTION}.")]
    if outside:
        raise ValueError(f"ensemble members state [{SECTION}] settings only, not {outside}")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    chosen = table.head(members)
    for rank, (_, row) in enumerate(chosen.iterrows(), start=1):
        path = folder / f"{MEMBER_PREFIX}{rank}.toml"
        text = _member_text(base, folder, rank, len(chosen), {name: float(row[name]) for name in searched}, origin)
        atomic_write(path, lambda h, text=text: h.write(text))
        written.append(path)
    for stale in member_paths(folder)[len(chosen):]:
        stale.unlink()
    return written
