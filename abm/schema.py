"""Validation primitives for scenario sections: the vocabulary of the calibration, the
checks a value must pass, and the builder that turns a TOML table into a frozen
dataclass or one line saying what is wrong.

A section is a frozen dataclass whose fields carry their check in ``metadata``; a
default read from ``abm/data/parameters.csv`` keeps every number next to its source.
"""

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from pathlib import Path
from typing import Any

from abm.data import BASE_YEARS, load_calibration

CALIBRATION = load_calibration()
ELEMENTS: tuple[str, ...] = CALIBRATION.elements
REGIONS: tuple[str, ...] = CALIBRATION.regions
DEPOSITS: tuple[str, ...] = CALIBRATION.deposits
for _other in map(load_calibration, BASE_YEARS):
    if (_other.elements, _other.regions, _other.deposits) != (ELEMENTS, REGIONS, DEPOSITS):
        raise ValueError(f"base year {_other.base_year}: elements, regions and deposits must match base year 2024's")
# Regions that mine or separate in some base year: only they have exports to restrict.
# A scenario is checked against its own base year's producers (scenario.py).
PRODUCERS: tuple[str, ...] = tuple(
    r for r in REGIONS if any(r in load_calibration(year).producers for year in BASE_YEARS)
)


class ScenarioError(ValueError):
    """Bad scenario input; its message is the one line a user sees."""

    def __init__(self, source: str | Path, key: str, value: Any, expected: str) -> None:
        self.source, self.key, self.value, self.expected = str(source), key, value, expected
        super().__init__(f"{source}: {key} = {value!r}: expected {expected}")


# A check returns None when the value is acceptable, otherwise what was expected.
Check = Callable[[Any], str | None]


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"a number in [{low:g}, {high:g}]"


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"a number >= {low:g}"


def at_most(high: float) -> Check:
    return lambda v: None if v <= high else f"a number <= {high:g}"


def members(allowed: tuple[str, ...], what: str) -> Check:
    return lambda v: (
        None if all(x in allowed for x in v) else f"a list of {what} from {', '.join(allowed)}"
    )


def one_of(allowed: tuple[str, ...], what: str) -> Check:
    return lambda v: None if v in allowed else f"{what}, one of {', '.join(allowed)}"


def optional(check: Check) -> Check:
    """The check, or an empty string meaning 'not set'."""
    return lambda v: None if v == "" else check(v)


SHARE = between(0.0, 1.0)
NON_NEGATIVE = at_least(0.0)
POSITIVE = at_least(1e-12)
ELEMENT_LIST = members(ELEMENTS, "elements")
REGION = one_of(REGIONS, "a region")
REGION_LIST = members(REGIONS, "regions")
PRODUCER = one_of(PRODUCERS, "a region that mines or separates")
DEPOSIT = one_of(DEPOSITS, "a deposit type")


def spec(check: Check | None = None, **kwargs: Any) -> Any:
    """A dataclass field with its check."""
    return field(metadata={"check": check}, **kwargs)


def csv_default(section: str, name: str, check: Check | None = None) -> Any:
    """A field whose default is the row (section, name) of parameters.csv."""
    return spec(check, default=CALIBRATION.parameter_defaults(section)[name])


def _coerced(kind: Any, value: Any) -> tuple[Any, str | None]:
    """``value`` as ``kind`` where TOML's types allow it, or what was expected instead."""
    if kind is bool:
        return value, None if isinstance(value, bool) else "true or false"
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        return value, "a number"
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return value, "a whole number"
    if kind is str:
        return value, None if isinstance(value, str) else "a string"
    if kind == tuple[str, ...]:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value), None
        return value, "a list of strings"
    raise TypeError(f"no coercion for {kind}")


def checked(cls: type, name: str, value: Any, key: str, source: str | Path) -> Any:
    """``value`` for field ``name`` of section ``cls``, coerced and checked."""
    spec_ = next(f for f in fields(cls) if f.name == name)
    value, problem = _coerced(spec_.type, value)
    check = spec_.metadata.get("check")
    if problem is None and check is not None:
        problem = check(value)
    if problem is not None:
        raise ScenarioError(source, key, value, problem)
    return value


def build(cls: type, table: Mapping[str, Any], where: str, source: str | Path) -> Any:
    """A section from a TOML table: unknown keys, bad values and missing required keys
    are refused with the key's full name (``where`` is its prefix, e.g. ``market.``)."""
    if not isinstance(table, Mapping):
        raise ScenarioError(source, where.rstrip("."), table, "a table")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in known:
            raise ScenarioError(source, where + key, value, f"a key among {', '.join(known)}")
        values[key] = checked(cls, key, value, where + key, source)
    missing = [
        n for n, f in known.items()
        if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ScenarioError(source, where + missing[0], None, "a value (the key is required)")
    return cls(**values)
