"""The model the browser app builds, and the controls (Mesa ``model_params``) that rebuild it.

SolaraViz's Reset calls the model class with keywords only, one per control. Two things
stop it calling ``RareEarthModel`` directly:

* Mesa 3.5 gives every model a ``model.scenario`` (its own ``mesa.experimental.scenarios.Scenario``)
  and, on Reset, passes a fresh one as ``scenario=`` to any model whose ``__init__`` accepts
  ``scenario`` (``_build_model_init_kwargs``), which would replace the chosen scenario file.
  ``BrowserModel`` therefore takes the file as ``scenario_file`` and has no ``scenario`` keyword.
* The override controls are text boxes (and on/off selects), so that blank can mean "the
  scenario file's value": a slider always holds a number and would override every file.
  ``BrowserModel`` turns their text into the value the model keyword expects, and leaves
  out (and reports) a value the model refuses instead of failing.

Every other keyword of ``RareEarthModel`` passes through unchanged: ``BrowserModel``'s
signature is built from the model's, so a new model keyword becomes a control by adding
one entry to ``model_params`` (``override`` or ``switch``).
"""

import inspect
import logging
import typing
from pathlib import Path
from typing import Any

from abm.model import RareEarthModel
from abm.scenario import ScenarioError, load_scenario

logger = logging.getLogger(__name__)

DEFAULT_SCENARIO = "baseline.toml"
DEFAULT_SEED = "0"
FROM_FILE = "as in the file"  # the choice of an on/off control that keeps the file's value
SOURCE = "browser controls"


def experiments_dir() -> Path:
    """The checkout's experiments/ (the package is installed editable by scripts/setup.sh);
    ./experiments when the package lives elsewhere."""
    checkout = Path(__file__).resolve().parents[2] / "experiments"
    return checkout if checkout.is_dir() else Path.cwd() / "experiments"


def scenario_files(directory: Path | None = None) -> list[str]:
    """Scenario files under ``directory`` (default: experiments/, subfolders included, as
    paths relative to it) that load, the default scenario first. Other TOML files there
    (batch experiment plans, a scenario that does not validate) are left out, so the
    select never offers a choice that cannot be built; the log says why at INFO level,
    and ``ree check FILE`` says it for one file."""
    directory = experiments_dir() if directory is None else Path(directory)
    names = []
    for path in sorted(directory.rglob("*.toml")):
        try:
            load_scenario(path)
        except ScenarioError as error:
            logger.info("not a scenario the app can offer: %s", error)
            continue
        names.append(path.relative_to(directory).as_posix())
    return sorted(names, key=lambda name: (name != DEFAULT_SCENARIO, "/" in name, name))


def scenario_path(name: str) -> Path:
    """The path of a scenario file named in the select (relative to experiments/)."""
    path = Path(name)
    return path if path.is_absolute() else experiments_dir() / path


def _model_keywords() -> dict[str, inspect.Parameter]:
    """RareEarthModel's keywords other than ``scenario``."""
    parameters = inspect.signature(RareEarthModel.__init__).parameters
    return {
        name: parameter
        for name, parameter in parameters.items()
        if name not in ("self", "scenario")
        and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    }


def coerce(name: str, value: Any) -> Any:
    """A control's value as model keyword ``name`` takes it: text from a box becomes an
    int, float or bool per the keyword's annotation; blank text (or ``FROM_FILE``)
    becomes None: the scenario file's value (for ``rng``, a random seed)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in ("", FROM_FILE):
        return None
    annotation = _model_keywords()[name].annotation
    kinds = typing.get_args(annotation) or (annotation,)
    try:
        if bool in kinds:
            return {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}[text.lower()]
        if int in kinds:
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if float in kinds:
            return float(text)
    except (ValueError, KeyError):
        expected = "on or off" if bool in kinds else "a whole number" if int in kinds else "a number"
        blank = "a random seed" if name == "rng" else "the scenario file's value"
        raise ScenarioError(SOURCE, name, value, f"{expected}, or blank for {blank}") from None
    return text


class BrowserModel(RareEarthModel):
    """``RareEarthModel`` as the browser app builds it: ``scenario_file`` names a file in
    experiments/, and every other keyword (seed, overrides) may arrive as text.

    A control the model refuses (text that is no number, a share above 1, ...) is left
    out and the run uses the file's value; ``control_errors`` says which and why, and the
    page shows it, rather than Reset failing with a traceback in place of the page.
    """

    def __init__(self, scenario_file: str = DEFAULT_SCENARIO, **keywords: Any) -> None:
        self.scenario_file = scenario_file
        path = scenario_path(scenario_file)
        accepted, self.control_errors = checked_keywords(path, keywords)
        super().__init__(scenario=path, **accepted)


def _refusal(path: Path, keywords: dict[str, Any]) -> str | None:
    """Why RareEarthModel refuses these keywords with this file, or None."""
    try:
        RareEarthModel(scenario=path, **keywords)
    except ScenarioError as error:
        return str(error)
    return None


def checked_keywords(path: Path, keywords: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The controls' values the model accepts with scenario file ``path`` (as model
    keywords), and a message for each one left out. Each is tried alone, then all
    together (a model is cheap to build); if the combination fails, all overrides go."""
    accepted: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in keywords.items():
        try:
            value = coerce(name, value)
        except ScenarioError as error:
            problems.append(f"Not applied: {error}")
            continue
        problem = _refusal(path, {name: value}) if value is not None and name != "rng" else None
        if problem:
            problems.append(f"Not applied: {problem}")
            continue
        accepted[name] = value
    overrides = {name: value for name, value in accepted.items() if name != "rng"}
    if overrides and (problem := _refusal(path, overrides)):
        problems.append(f"No override applied: {problem}")
        accepted = {name: value for name, value in accepted.items() if name == "rng"}
    return accepted, problems


# What inspect (and so Mesa's parameter checks and Reset) sees: scenario_file plus the
# model's own keywords, named, with no **kwargs, so a control for a keyword the model
# does not take is refused when the page loads.
BrowserModel.__init__.__signature__ = inspect.Signature(
    [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("scenario_file", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_SCENARIO, annotation=str),
        *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in _model_keywords().values()),
    ]
)


def override(label: str) -> dict[str, Any]:
    """A text box for one model keyword; blank keeps the scenario file's value."""
    return {"type": "InputText", "value": "", "label": f"{label} (blank: file's)"}


def switch(label: str) -> dict[str, Any]:
    """An on/off choice for one model keyword, or the scenario file's value."""
    return {"type": "Select", "value": FROM_FILE, "values": [FROM_FILE, "on", "off"], "label": label}


def model_params(scenarios: list[str]) -> dict[str, Any]:
    """SolaraViz ``model_params``: one entry per control, keyed by the model keyword it
    sets; a new model keyword (a lever) is one more ``override(...)`` or ``switch(...)``."""
    default = DEFAULT_SCENARIO if DEFAULT_SCENARIO in scenarios else scenarios[0]
    return {
        "scenario_file": {"type": "Select", "value": default, "values": scenarios, "label": "Scenario (experiments/)"},
        "rng": {"type": "InputText", "value": DEFAULT_SEED, "label": "Seed (blank: random)"},
        # The exporter's quota shock and the tension process.
        "quota_cut": override("Quota cut 0-1"),
        "shock_start": override("Cut starts, month"),
        "shock_months": override("Cut lasts, months"),
        "tension_volatility": override("Tension volatility"),
        # Diversification levers (docs/ODD.md; each off in the baseline).
        "stockpile_months": override("Stockpile, months of use"),
        "recycling_rate": override("Recycling, share of scrap"),
        "recycling_subsidy": override("Recycling subsidy, USD/kg"),
        "contract_share": override("Contracts, share of need"),
        "max_origin_share": override("Max share per origin"),
        "partnership_share": override("Partner offtake, share"),
        "domestic_mining": override("Domestic mining, t/yr"),
        "permit_delay_months": override("Mine permit delay, months"),
        "refining_capacity": override("New refining, t/yr"),
        "refining_jv": switch("Refining joint venture"),
        "substitution_rd": override("Substitution R&D, USD/yr"),
        "agreement": switch("Supply agreement"),
        "price_floor": override("Price floor, USD/kg"),
        # The negotiation with the exporter ([negotiation]; off unless the file turns it on).
        "negotiation": switch("Negotiate a supply deal"),
    }


def initial_values(params: dict[str, Any]) -> dict[str, Any]:
    """The keywords the controls hold before anyone touches them (Mesa's ModelCreator
    sets the same on page load), to build the first model with."""
    return {
        name: option["value"] if isinstance(option, dict) and "type" in option else option
        for name, option in params.items()
    }
