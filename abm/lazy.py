"""Package namespaces whose public names are imported on first use.

``abm`` and ``abm.batch`` re-export names from their modules; importing those modules at
package import would make every ``import abm.<anything>`` (the CLI's ``ree check``
included) pay for Mesa, pandas and the model. A lazy namespace imports a name's module
the first time the name is read, and then keeps it.
"""

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_namespace(
    package: str, namespace: dict[str, Any], public: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``namespace`` is its
    ``globals()`` and ``public`` maps each public name to the module that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(public[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__
