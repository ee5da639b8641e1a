"""Prism, serving Twilio's published Verify v2 (``prism``) and TaskRouter v1 (``prism_taskrouter``) OpenAPI
descriptions as schema-validating mocks.

The spec comes from the pinned npm package ``@twilio-alpha/mcp`` (``tools/twilio_oai.py``, which ``make test``
runs as ``make twilio-oai``, and this fixture runs too when the files are missing), extracted to
``.cache/twilio-oai/`` inside the repository (``TWILIO_OAI_SPEC`` overrides it); Prism is the project's own
``node_modules/.bin/prism`` (``make test`` installs it with ``npm ci``).
Neither missing is a reason to skip: CI must run these tests. ``CALLERAUTH_SKIP_PRISM=1`` is the only way out.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools import twilio_oai

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = twilio_oai.SPEC_DIR / "twilio_verify_v2.json"
TASKROUTER_SPEC = twilio_oai.SPEC_DIR / "twilio_taskrouter_v1.json"
PRISM_BIN = REPO_ROOT / "node_modules" / ".bin" / "prism"
STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class Prism:
    base_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def spec_path(default: Path = DEFAULT_SPEC) -> Path:
    override = os.environ.get("TWILIO_OAI_SPEC") if default == DEFAULT_SPEC else None
    return Path(override).resolve() if override else default.resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # the group this fixture started (node and any children)
        process.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    yield from _prism(tmp_path_factory, DEFAULT_SPEC)


@pytest.fixture(scope="session")
def prism_taskrouter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    yield from _prism(tmp_path_factory, TASKROUTER_SPEC)


def _prism(tmp_path_factory: pytest.TempPathFactory, default: Path) -> Iterator[Prism]:
    if os.environ.get("CALLERAUTH_SKIP_PRISM") == "1":
        pytest.skip("CALLERAUTH_SKIP_PRISM=1: Twilio conformance tests not run")
    if not os.environ.get("TWILIO_OAI_SPEC"):
        try:
            twilio_oai.ensure()
        except twilio_oai.Unavailable as exc:
            pytest.fail(f"Twilio's OpenAPI descriptions: {exc}", pytrace=False)
    spec = spec_path(default)
    if not spec.is_file():
        pytest.fail(
            f"Twilio's OpenAPI description is missing: {spec} (run `make twilio-oai`, "
            "or set TWILIO_OAI_SPEC=<path>); set CALLERAUTH_SKIP_PRISM=1 to skip deliberately.",
            pytrace=False,
        )
    if not PRISM_BIN.exists():
        pytest.fail(
            f"Prism is not installed: {PRISM_BIN} is missing (run `npm ci` or `make test`); "
            "set CALLERAUTH_SKIP_PRISM=1 to skip deliberately.",
            pytrace=False,
        )
    port = _free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    command = [str(PRISM_BIN), "mock", "--errors", "-h", "127.0.0.1", "-p", str(port), str(spec)]
    with log.open("wb") as out:
        try:
            process = subprocess.Popen(  # noqa: S603 - a fixed local command, no shell
                command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            pytest.fail(f"Prism could not be started ({' '.join(command)}): {exc} (is node on PATH?)", pytrace=False)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(port):
            if process.poll() is not None:
                pytest.fail(
                    f"Prism exited with {process.returncode}:\n{log.read_text(errors='replace')}", pytrace=False
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Prism did not answer on port {port} within {STARTUP_SECONDS:.0f} s:\n"
                    f"{log.read_text(errors='replace')}",
                    pytrace=False,
                )
            time.sleep(0.1)
        yield Prism(base_url=f"http://127.0.0.1:{port}", log=log)
    finally:
        _stop(process)
