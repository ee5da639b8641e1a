"""Load Lambda handlers from their source files and give them a Lambda-like context object."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, cast

Handler = Callable[[dict[str, Any], Any], Any]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

_counter = itertools.count(1)
_import_lock = threading.Lock()


def load_handler(
    code_uri: str, handler: str, root: Path, *, layer_dirs: Sequence[str | Path] = ("layers/core",)
) -> Handler:
    """Import ``<root>/<code_uri>/<module>.py`` by path and return its handler function.

    Every function's file is called ``app.py``; importing them as ``app`` would make the second one the
    first. Each load therefore gets a unique module name, i.e. a fresh "container". The layers go on
    sys.path as Lambda's /opt/python would; the function directory is on it only while importing.
    """
    module_path, _, function_name = handler.rpartition(".")
    if not module_path or not function_name:
        raise ValueError(f"handler {handler!r} is not of the form module.function")
    code_dir = (root / code_uri).resolve()
    source = code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
    if not source.is_file():
        raise FileNotFoundError(f"handler source {source} does not exist")
    module_name = "devserver_lambda_{}_{}".format(
        re.sub(r"\W", "_", f"{code_uri}_{module_path}").strip("_"), next(_counter)
    )
    with _import_lock:
        for layer in reversed(layer_dirs):
            layer_path = str((root / layer).resolve())
            if layer_path not in sys.path:
                sys.path.insert(0, layer_path)
        spec = importlib.util.spec_from_file_location(module_name, source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and typing look the module up while executing it
        sys.path.insert(0, str(code_dir))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        finally:
            sys.path.remove(str(code_dir))
    function = getattr(module, function_name, None)
    if not callable(function):
        raise AttributeError(f"{source} has no callable {function_name!r}")
    return cast(Handler, function)


def unload_project_modules(root: Path, subdirs: Sequence[str] = ("layers", "functions")) -> dict[str, ModuleType]:
    """Forget (and return) the modules imported from the project's Lambda code: the next load is a cold start.

    The core caches configuration (table names, endpoints, secrets) at first use; a second local stack
    in the same process (tests) would otherwise inherit the first one's settings.
    """
    prefixes = tuple(str((root / d).resolve()) + "/" for d in subdirs)
    gone = {
        name: module
        for name, module in list(sys.modules.items())
        if str(getattr(module, "__file__", None) or "").startswith(prefixes)
    }
    for name in gone:
        sys.modules.pop(name, None)
    return gone


class LambdaContext:
    """The attributes of the Python runtime's context object that code and Powertools read."""

    def __init__(
        self,
        function_name: str,
        *,
        timeout_seconds: float = 3.0,
        memory_limit_in_mb: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self.identity: Any = None
        self.client_context: Any = None
        self._clock = clock
        self._deadline = clock() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))


def make_context(function_name: str, *, timeout_seconds: float = 3.0, memory_limit_in_mb: int = 256) -> LambdaContext:
    return LambdaContext(function_name, timeout_seconds=timeout_seconds, memory_limit_in_mb=memory_limit_in_mb)
