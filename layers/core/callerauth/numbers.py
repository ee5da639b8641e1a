"""Phone numbers as Google's libphonenumber reads them: real or not, which region, what kind, one spelling.

`phonenumberslite` (the library without its geocoding and carrier data) is imported on first use, by
the actions that name a number, and only its core: `phonenumbers.phonenumberutil` and the metadata it
loads. The package's `__init__` also imports the as-you-type formatter, the matcher (with every
alternate-format table) and short-number info, which we never use: about half the library's import
cost, ~10 ms of every cold start (docs/performance.md). `parse` calls the very functions
`phonenumbers.parse`, `is_valid_number`, `format_number`, `region_code_for_number` and `number_type`
are (the package re-exports them), so its answers are the library's.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Any, NamedTuple

# libphonenumber's PhoneNumberType values that must never receive a code: they bill the sender.
COSTLY_KINDS = {4: "premium_rate", 6: "shared_cost"}
PACKAGE = "phonenumbers"

_loading = threading.RLock()  # re-entrant: an import under it may read the package's attributes
_lib: ModuleType | None = None


class PhoneNumber(NamedTuple):
    e164: str  # the canonical spelling: the key of every limit, and what Twilio is sent
    region: str | None  # ISO 3166 alpha-2, e.g. "US"; None for non-geographic numbers
    costly: str | None  # "premium_rate" or "shared_cost" when the number bills the sender


def parse(text: str) -> PhoneNumber | None:
    """The number `text` spells, or None when it is not a valid, allocated number."""
    lib = _core()
    try:
        number = lib.parse(text, None)
    except lib.NumberParseException:
        return None
    if not lib.is_valid_number(number):
        return None
    return PhoneNumber(
        e164=lib.format_number(number, lib.PhoneNumberFormat.E164),
        region=lib.region_code_for_number(number),
        costly=COSTLY_KINDS.get(lib.number_type(number)),
    )


def _core() -> ModuleType:
    """`phonenumbers.phonenumberutil`, imported without running the package's `__init__` first.

    Importing a submodule runs its package's `__init__`; so the package goes into `sys.modules` as a
    module made from its own spec but not executed, and the core is imported under it. That module keeps
    its place: whoever reads an attribute it lacks (`import phonenumbers; phonenumbers.parse`) runs the
    real `__init__` in it then, over the submodules already loaded, and gets the whole library.
    """
    global _lib
    if _lib is None:
        with _loading:
            if PACKAGE not in sys.modules:
                sys.modules[PACKAGE] = _deferred_package()
            import phonenumbers.phonenumberutil

            _lib = phonenumbers.phonenumberutil
    return _lib


def _deferred_package() -> ModuleType:
    from importlib.util import find_spec, module_from_spec

    spec = find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {PACKAGE!r}", name=PACKAGE)
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
