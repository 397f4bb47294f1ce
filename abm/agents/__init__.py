"""The agent types; each is a Mesa ``Agent`` held in the model's ``agents_by_type``."""

from abm.agents.importer import Importer
from abm.agents.nation import ExportingNation
from abm.agents.recycler import Recycler
from abm.agents.refiner import Refiner
from abm.agents.stockpile import StrategicStockpile

__all__ = ["ExportingNation", "Importer", "Recycler", "Refiner", "StrategicStockpile"]
