"""Trim and check the core layer that `make build-CoreLayer` installs (run by layers/core/Makefile).

    python3.13 tools/layer.py trim  DIR   # DIR is the layer's python/ directory (/opt/python in Lambda)
    python3.13 tools/layer.py check DIR   # fails loudly: size budget, bytecode, dependencies, trimmed imports

Trimming is by allow-list, for two packages only:
- twilio.rest keeps only the client (`twilio.rest.Client`): the adapters call Verify, Lookup and TaskRouter
  through `twilio.base.version.Version` (callerauth.twilio_rest.Api), and the client imports a product's
  generated resources only when its property is first read (`client.verify`), so all of them are dead
  weight: 23 MB of the package.
- aws_lambda_powertools keeps Logger, Metrics, Tracer (imported by the package itself) and the
  Parameters utility; the event handler, data classes, parser, idempotency... are never imported.

One generated file is rewritten, with nothing removed: libphonenumber's `phonenumbers/data/__init__.py`
imports all 46 alternate-format tables when the package is imported, though only PhoneNumberMatcher (finding
numbers in free text, which the core never does) reads them: 1.8% of the floor's instructions, on every
cold start that names a number (docs/performance.md). `defer_alternate_formats` makes each table load when the
matcher first asks for it, as the package already loads each region's metadata; the tables are untouched.

`check` then proves what the trim may not break: every import statement left in the layer (at module
level or inside a function) that names a removed module must be one of the REVIEWED ones below, which
are only reached by features the core does not use (`client.messages`, Tracer's event-handler hook...);
and the alternate formats are deferred (a phonenumbers release that generates that file differently
fails the build instead of shipping the eager imports silently).
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from pathlib import Path

BUDGET_BYTES = 12 * 1000 * 1000  # unzipped, bytecode included (the "<= 12 MB")
POWERTOOLS_UTILITIES = {"parameters", "typing", "jmespath_utils", "serialization", "base64"}
POWERTOOLS_DROPPED = {"event_handler"}
# Requirements a layer package declares but that are deliberately not installed:
# - aiohttp, aiohttp-retry (twilio): its async client only, never imported;
# - charset-normalizer (requests): imported at start-up (~5 ms of every Twilio cold start) but only called
#   to guess the encoding of a body whose Content-Type names none and is not JSON. Twilio answers JSON;
#   without it requests decodes such a body as UTF-8 (callerauth.twilio_rest silences its one warning).
NOT_INSTALLED = {"aiohttp", "aiohttp-retry", "charset-normalizer"}
# Imports of removed modules still written in kept code, each reviewed: reached only by unused features.
REVIEWED = (
    # twilio.rest.Client's properties of each product (client.verify, client.messages...): lazy.
    re.compile(r"^twilio/rest/__init__\.py:twilio\.rest\.\w+"),
    # Powertools: lazy imports of utilities the core does not call (data classes for event sources,
    # the event handler's resolvers, idempotency and batch helpers of the shared functions).
    re.compile(r"^aws_lambda_powertools/.*:aws_lambda_powertools\.(event_handler|utilities\.\w+)"),
)
ALT_FORMATS = Path("phonenumbers") / "data" / "__init__.py"
ALT_IMPORT = re.compile(r"^from \.alt_format_(\d+) import PHONE_ALT_FORMAT_\1\n", re.MULTILINE)
ALT_TABLE = re.compile(r"^_ALT_NUMBER_FORMATS = \{(.*)\}\n", re.MULTILINE)
ALT_ENTRY = re.compile(r"(\d+): PHONE_ALT_FORMAT_(\d+)")
# What replaces the generated `_ALT_NUMBER_FORMATS = {code: PHONE_ALT_FORMAT_<code>, ...}` (and the imports).
DEFERRED_ALT_FORMATS = """
# Rewritten by callerauth's layer build (layers/core/tools/layer.py): the generated tables, each imported
# when PhoneNumberMatcher first asks for it rather than all of them when the package is imported.
import importlib as _importlib
from collections.abc import Mapping as _Mapping


class _DeferredAltFormats(_Mapping):
    def __init__(self, codes):
        self._codes, self._loaded = codes, {}

    def __getitem__(self, code):
        if code not in self._loaded:
            if code not in self._codes:
                raise KeyError(code)
            module = _importlib.import_module(f".alt_format_{code}", __name__)
            self._loaded[code] = getattr(module, f"PHONE_ALT_FORMAT_{code}")
        return self._loaded[code]

    def __iter__(self):
        return iter(self._codes)

    def __len__(self):
        return len(self._codes)


_ALT_NUMBER_FORMATS = _DeferredAltFormats(CODES)
"""


def trim(root: Path) -> None:
    rest = root / "twilio" / "rest"
    for child in rest.iterdir():
        if child.is_dir() and child.name != "__pycache__":
            shutil.rmtree(child)
    powertools = root / "aws_lambda_powertools"
    for name in POWERTOOLS_DROPPED:
        shutil.rmtree(powertools / name)
    for child in (powertools / "utilities").iterdir():
        stem = child.name.removesuffix(".py")
        if stem not in POWERTOOLS_UTILITIES | {"__init__", "__pycache__"}:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for cache in list(root.rglob("__pycache__")):  # stale bytecode of the installing interpreter, if any
        shutil.rmtree(cache)
    shutil.rmtree(root / "bin", ignore_errors=True)  # console scripts (idna, jp.py): never run in Lambda
    for record in root.glob("*.dist-info/RECORD"):  # pip's file list: never read at run time
        record.unlink()
    defer_alternate_formats(root / ALT_FORMATS)


def defer_alternate_formats(path: Path) -> None:
    """Rewrite libphonenumber's generated data package so each alternate-format table loads on first use.
    Refuses a file it does not recognise: every import it removes must be a table the dict it replaces names."""
    text = path.read_text()
    imported = [int(code) for code in ALT_IMPORT.findall(text)]
    table = ALT_TABLE.search(text)
    entries = [(int(key), int(name)) for key, name in ALT_ENTRY.findall(table.group(1))] if table else []
    codes = tuple(key for key, _ in entries)
    if table is None or any(key != name for key, name in entries) or not imported or sorted(imported) != sorted(codes):
        raise SystemExit(f"layer: {path} is not the generated file defer_alternate_formats knows; review it")
    text = text[: table.start()] + DEFERRED_ALT_FORMATS.replace("CODES", repr(codes)) + text[table.end() :]
    path.write_text(ALT_IMPORT.sub("", text))


def check(root: Path) -> int:
    problems: list[str] = []
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"layer: {size / 1e6:.2f} MB unzipped (budget {BUDGET_BYTES / 1e6:.0f} MB)")
    if size > BUDGET_BYTES:
        problems.append(f"the layer is {size} bytes, over its budget of {BUDGET_BYTES}")
    sources = [p for p in root.rglob("*.py")]
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    uncompiled = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").is_file()]
    if sys.version_info[:2] != (3, 13) or uncompiled:
        problems.append(f"{len(uncompiled)} modules without {tag} bytecode (Lambda runs python3.13)")
    binaries = [str(p.relative_to(root)) for p in root.rglob("*.so")]
    print(f"layer: {len(sources)} modules, all compiled for {tag}; native extensions: {binaries or 'none'}")
    problems += _missing_requirements(root)
    problems += _imports_of_removed(root)
    data = (root / ALT_FORMATS).read_text()
    if ALT_IMPORT.search(data) or "_DeferredAltFormats(" not in data:
        problems.append(f"{ALT_FORMATS} still imports every alternate-format table (defer_alternate_formats)")
    for problem in problems:
        print(f"layer: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _missing_requirements(root: Path) -> list[str]:
    from importlib.metadata import PathDistribution

    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

    lambda_env = {"platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux"}
    dists = [PathDistribution(p) for p in root.glob("*.dist-info")]
    installed = {canonicalize_name(d.metadata["Name"]) for d in dists}
    missing = []
    for dist in dists:
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({**lambda_env, "extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            if name not in installed and name not in NOT_INSTALLED:
                missing.append(f"{dist.metadata['Name']} requires {requirement}, which the layer lacks")
    return missing


def _imports_of_removed(root: Path) -> list[str]:
    unreviewed = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        package = relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
        for name in _imported_names(path, package):
            if not name.startswith(("twilio.", "aws_lambda_powertools.")) or _exists(root, name):
                continue
            if not any(rule.match(f"{relative}:{name}") for rule in REVIEWED):
                unreviewed.append(f"{relative} imports {name}, which the trim removed")
    return unreviewed


def _imported_names(path: Path, package: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.append(base)
    return names


def _exists(root: Path, module: str) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


if __name__ == "__main__":
    command, directory = sys.argv[1], Path(sys.argv[2])
    if command == "trim":
        trim(directory)
    elif command == "check":
        sys.exit(check(directory))
    else:
        sys.exit(f"usage: {sys.argv[0]} trim|check DIR")
