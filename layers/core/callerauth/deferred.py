"""A package's submodule without the package's `__init__`, which may import much the core never uses.

Importing a submodule runs its package's `__init__` first; so the package goes into `sys.modules` as a
module made from its own spec but not executed, and the submodule is imported under it. That module keeps
its place: whoever reads an attribute it lacks (`import phonenumbers; phonenumbers.parse`) runs the real
`__init__` in it then, over the submodules already loaded, and gets the whole package.

Used for libphonenumber's core (callerauth.numbers) and for Powertools Parameters' Secrets Manager provider
(callerauth.wiring): each package's `__init__` imports what we never call (docs/performance.md).
"""

import importlib
import sys
import threading
from importlib.util import find_spec, module_from_spec
from types import ModuleType
from typing import Any

_loading = threading.RLock()  # re-entrant: an import under it may read the package's attributes


def submodule(package: str, name: str) -> ModuleType:
    """`package.name`, imported without running `package`'s `__init__` (unless something already has)."""
    with _loading:
        if package not in sys.modules:
            sys.modules[package] = _deferred(package)
        return importlib.import_module(f"{package}.{name}")


def _deferred(package_name: str) -> ModuleType:
    spec = find_spec(package_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {package_name!r}", name=package_name)
    package = module_from_spec(spec)
    loader = spec.loader

    def complete(name: str) -> Any:
        """PEP 562: only called for an attribute the package lacks; the first one runs `__init__`."""
        with _loading:
            if vars(package).pop("__getattr__", None) is not None:
                loader.exec_module(package)
        return getattr(package, name)

    vars(package)["__getattr__"] = complete
    return package
