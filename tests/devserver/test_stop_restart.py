"""``python -m devserver`` as a process: it stops on the first SIGTERM or Ctrl-C within seconds, and starts
again on the same ports at once (its connections of a moment ago, in TIME-WAIT, do not hold the ports)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devserver.samples import CONTRACT_DEFAULTS
from tests.conftest import REPO

pytestmark = pytest.mark.stack

READY = "Ctrl-C to stop."
START_SECONDS = 90.0
STOP_SECONDS = 5.0
NAMES = ("API_PORT", "SANDBOX_PORT", "DYNAMODB_PORT", "DEMO_PORT")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Devserver:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devserver"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> float:
        started = time.monotonic()
        while READY not in self.output():
            assert self.process.poll() is None, f"devserver exited with {self.process.returncode}:\n{self.output()}"
            assert time.monotonic() - started < START_SECONDS, f"not serving after {START_SECONDS} s:\n{self.output()}"
            time.sleep(0.1)
        return time.monotonic() - started

    def stop(self, signum: int) -> float:
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            pytest.fail(f"still running {STOP_SECONDS} s after {signal.Signals(signum).name}:\n{self.output()}")
        return time.monotonic() - started


@contextmanager
def devserver(env: dict[str, str], log: Path) -> Iterator[Devserver]:
    server = Devserver(env, log)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(5)


def _get(url: str) -> bytes:
    """GET over a raw socket that the server closes first (so the server's side ends in TIME-WAIT)."""
    parsed = urllib.parse.urlsplit(url)
    with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=10) as sock:
        sock.sendall(f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):  # until the server closes
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def _post(url: str, fields: dict[str, str]) -> bytes:
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, headers={"Connection": "close"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        return bytes(exc.read())


def _time_wait_on(port: int) -> int:
    """TIME-WAIT sockets whose local port is ``port`` (Linux's /proc/net/tcp; 0 elsewhere)."""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    return sum(1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "06")


def test_stops_on_the_first_signal_and_restarts_on_the_same_ports_at_once(tmp_path: Path) -> None:
    # Given the dev server on four fixed ports, serving, after a few requests of each kind
    ports = dict(zip(NAMES, _free_ports(len(NAMES)), strict=True))
    state_file = tmp_path / "stack.json"
    env = {
        **os.environ,
        **CONTRACT_DEFAULTS,
        **{name: str(port) for name, port in ports.items()},
        "CALLERAUTH_DEV_STATE": str(state_file),
    }
    api, sandbox, demo = (f"http://127.0.0.1:{ports[n]}" for n in ("API_PORT", "SANDBOX_PORT", "DEMO_PORT"))
    with devserver(env, tmp_path / "first.log") as first:
        first.wait_ready()
        state = json.loads(state_file.read_text())
        assert (state["pid"], state["api_url"]) == (first.process.pid, api)
        assert state["dynamodb_url"] == f"http://127.0.0.1:{ports['DYNAMODB_PORT']}"
        for _ in range(3):
            _post(f"{api}/start-verify", {"to": "+12025550100"})  # refused (no token): fine, a request all the same
            _get(f"{sandbox}/outbox")
            _get(f"{demo}/config.json")

        # When it gets SIGTERM
        stopped_after = first.stop(signal.SIGTERM)
        time_wait = sum(_time_wait_on(port) for port in ports.values())

    # Then it has stopped within seconds, cleanly, and taken its state file away
    assert first.process.returncode == 0, first.output()
    assert stopped_after < STOP_SECONDS
    assert "devserver: stopping" in first.output()
    assert not state_file.exists()

    # And it starts again on the same ports straight away, though its connections of a moment ago linger
    if Path("/proc/net/tcp").is_file():
        assert time_wait > 0, "no TIME-WAIT socket on the stack's ports: this test would prove nothing"
    with devserver(env, tmp_path / "second.log") as second:
        second.wait_ready()
        assert "in use" not in second.output()
        assert json.loads(_get(f"{sandbox}/outbox")) == []
        # and stops on the first Ctrl-C as well
        assert second.stop(signal.SIGINT) < STOP_SECONDS
    assert second.process.returncode == 0, second.output()
    print(f"TIME-WAIT sockets on the stack's ports before the restart: {time_wait}; stopped in {stopped_after:.2f} s")


def test_a_signal_while_starting_stops_it_too(tmp_path: Path) -> None:
    # Given the dev server, just started (still importing and creating its tables)
    ports = dict(zip(NAMES, _free_ports(len(NAMES)), strict=True))
    env = {
        **os.environ,
        **CONTRACT_DEFAULTS,
        **{name: str(port) for name, port in ports.items()},
        "CALLERAUTH_DEV_STATE": str(tmp_path / "stack.json"),
    }
    with devserver(env, tmp_path / "starting.log") as server:
        deadline = time.monotonic() + START_SECONDS
        while "Caller verification" not in server.output() and "devserver:" not in server.output():
            # wait until Python runs our code (the signal handlers are set), but not until it serves
            if time.monotonic() > deadline or server.process.poll() is not None:
                break
            if Path(f"/proc/{server.process.pid}/status").exists() and _handlers_set(server.process.pid):
                break
            time.sleep(0.02)

        # When it gets SIGTERM / Then it exits within seconds
        assert server.stop(signal.SIGTERM) < STOP_SECONDS
    assert server.process.returncode in (0, -signal.SIGTERM), server.output()


def _handlers_set(pid: int) -> bool:
    """Linux: the process catches SIGTERM (its handler is installed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


# moto's server thread failing to bind (as werkzeug does: it prints and exits the thread), so that
# ThreadedMotoServer.start() waits for it for ever; then the dev server as `python -m devserver` runs it.
_BIND_FAILS = """
import runpy, sys
from moto.moto_server import threaded_moto_server

def _fails(self):
    print("moto: cannot bind (simulated)", flush=True)
    sys.exit(1)

threaded_moto_server.ThreadedMotoServer._server_entry = _fails
runpy.run_module("devserver", run_name="__main__", alter_sys=True)
"""


def test_sigterm_stops_it_while_moto_waits_for_ever_to_start(tmp_path: Path) -> None:
    # Given the dev server stuck in moto's start (its server thread died; start() waits with no timeout)
    ports = dict(zip(NAMES, _free_ports(len(NAMES)), strict=True))
    env = {
        **os.environ,
        **CONTRACT_DEFAULTS,
        **{name: str(port) for name, port in ports.items()},
        "CALLERAUTH_DEV_STATE": str(tmp_path / "stack.json"),
    }
    log = tmp_path / "stuck.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
            [sys.executable, "-c", _BIND_FAILS], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while "cannot bind (simulated)" not in log.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        time.sleep(0.5)
        assert process.poll() is None  # stuck, as moto is

        # When it gets SIGTERM
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)

        # Then it exits within seconds all the same
        process.wait(STOP_SECONDS)
        assert time.monotonic() - started < STOP_SECONDS
        assert "stopped while starting" in log.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
