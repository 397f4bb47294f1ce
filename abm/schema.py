"""Validation primitives for scenario sections: the vocabulary of the calibration, the
checks a value must pass, and the builder that turns a TOML table into a frozen
dataclass or one line saying what is wrong.

A section is a frozen dataclass whose fields carry their check in ``metadata``; a
default read from ``abm/data/parameters.csv`` keeps every number next to its source.
Each value is first coerced to its field's type by a pydantic ``TypeAdapter`` (strict:
a TOML string is never turned into a number; numbers must be finite; numpy scalars count
as the matching Python type), then checked against its field's range.

The ranges refuse what makes no sense (negative tonnes, shares above 1, non-finite
numbers) and magnitudes no question needs (``MAX_MONTHS``, ``MAX_TONNES_PER_YEAR``,
``MAX_USD``); the low/high columns of parameters.csv are plausibility ranges for
sensitivity analysis, not validity bounds.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import AllowInfNan, BeforeValidator, Strict, StrictStr, TypeAdapter, ValidationError

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


class _NotShown:
    """Stands for a value an error must not echo (an unknown key's, which may be a secret)."""

    def __repr__(self) -> str:
        return "<not shown>"


NOT_SHOWN = _NotShown()


class ScenarioError(ValueError):
    """Bad scenario input; its message is the one line a user sees. Pass ``NOT_SHOWN`` as
    ``value`` when the value must not be printed."""

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


# Upper bounds on magnitudes: far beyond any question the model answers, and far from
# float overflow. 1200 months (100 years) bounds horizons, start months, durations and
# delays; world mine production is about 0.39 Mt REO/yr (mines.csv); USD amounts are
# capped at 1e15 (about ten years of world GDP).
MAX_MONTHS = 1200
MAX_TONNES_PER_YEAR = 1e8
MAX_USD = 1e15


def months_from(low: float = 0.0) -> Check:
    """A number of months from ``low`` up to ``MAX_MONTHS``."""
    return between(low, MAX_MONTHS)


SHARE = between(0.0, 1.0)
MONTHS = months_from(0.0)
TONNES_PER_YEAR = between(0.0, MAX_TONNES_PER_YEAR)
USD = between(0.0, MAX_USD)
NON_NEGATIVE = at_least(0.0)
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


def _plain(value: Any) -> Any:
    """A numpy scalar (``np.int64``, ``np.float64``, ``np.bool_``, ``np.str_``) as the
    Python value it holds: what EMA Workbench and SALib pass for plain numbers."""
    return value.item() if isinstance(value, np.generic) else value


def _sequence(value: Any) -> Any:
    """A tuple as a list (defaults and Python callers use tuples, TOML gives lists)."""
    return list(value) if isinstance(value, tuple) else value


_Plain = BeforeValidator(_plain)
# The type adapter of each field type, and what a value that fails it should have been.
_ADAPTERS: dict[Any, tuple[TypeAdapter, str]] = {
    bool: (TypeAdapter(Annotated[bool, _Plain, Strict()]), "true or false"),
    int: (TypeAdapter(Annotated[int, _Plain, Strict()]), "a whole number"),
    float: (TypeAdapter(Annotated[float, _Plain, Strict(), AllowInfNan(False)]), "a number"),
    str: (TypeAdapter(Annotated[str, _Plain, Strict()]), "a string"),
    tuple[str, ...]: (
        TypeAdapter(Annotated[list[Annotated[StrictStr, _Plain]], BeforeValidator(_sequence), Strict()]),
        "a list of strings",
    ),
}


def _coerced(kind: Any, value: Any) -> tuple[Any, str | None]:
    """``value`` as ``kind`` where TOML's types allow it, or what was expected instead."""
    adapter, expected = _ADAPTERS[kind]
    try:
        value = adapter.validate_python(value)
    except ValidationError as error:
        finite = any(e["type"] == "finite_number" for e in error.errors())
        return value, "a finite number" if finite else expected
    return (tuple(value) if kind == tuple[str, ...] else value), None


_UNSAFE_NAME = re.compile(r"[/\\:\x00-\x1f\x7f]")


def plain_name(value: str) -> str | None:
    """None when ``value`` can name a folder under ``results/`` without leaving it: no path
    separators, drive colons or control characters, not ``.``/``..``, no leading dot."""
    if value and value == value.strip() and not value.startswith(".") and not _UNSAFE_NAME.search(value):
        return None
    return "a plain folder name (no path separators, colons or control characters, no leading dot or space)"


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
        if key in getattr(cls, "RETIRED", {}):
            raise ScenarioError(source, where + key, NOT_SHOWN, cls.RETIRED[key])
        if key not in known:
            raise ScenarioError(source, where + key, NOT_SHOWN, f"a key among {', '.join(known)}")
        values[key] = checked(cls, key, value, where + key, source)
    missing = [
        n for n, f in known.items()
        if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ScenarioError(source, where + missing[0], None, "a value (the key is required)")
    return cls(**values)
