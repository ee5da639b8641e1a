"""Small helpers every test suite uses: a hand-moved clock and a WSGI app served on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
from callerauth import errors
from callerauth.refusals import Refusal
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class FakeClock:
    """Time that moves only when a test says so; callable, so it can stand in for ``time.time``."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def serving(app: WSGIApplication) -> Iterator[str]:
    """``app`` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    """A loopback port nothing listens on (a refused connection, for tests of an upstream that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Answered:
    """What `refused()` caught: `value` is the contract's answer (status, code, body) to the refusal."""

    value: errors.ApiError


@contextmanager
def refused() -> Iterator[Answered]:
    """Like ``pytest.raises(Refusal)``, but what the test reads is the answer the edge makes of it."""
    answered = Answered()
    with pytest.raises(Refusal) as raised:
        yield answered
    answered.value = errors.api_error(raised.value)
