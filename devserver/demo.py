"""The demo agent page (``demo/index.html``) and its ``config.json``, as a WSGI app.

The stack serves it on an origin of its own, so that the browser treats the API as a cross-origin service,
exactly as it does for the Flex plugin: every call is a CORS request, and the ``X-Flex-Token`` header makes
the browser send a preflight first. ``config.json`` tells the page where the API is, the stack's
``AGENT_AUTH`` mode (so that what the page says about the agent is true), and, with the Twilio sandbox, where
its outbox is and a fresh token for the agent ``dev-agent`` on every load (so the page never holds an
expired one). The page's own query string (``?api=...&token=...``) overrides the address and the token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from devserver.twilio_sandbox import TwilioSandbox

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

PAGE = Path(__file__).with_name("demo") / "index.html"
DEMO_AGENT = "dev-agent"
_HEADERS = {
    "Cache-Control": "no-store",  # config.json carries a token
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
}


class DemoPage:
    """WSGI app: ``GET /`` (or ``/index.html``) the page, ``GET /config.json`` its settings."""

    def __init__(
        self,
        api_url: str,
        sandbox: TwilioSandbox | None = None,
        *,
        agent: str = DEMO_AGENT,
        page: Path = PAGE,
        agent_auth: str = "flex",
        outbox_url: str | None = None,
        task_sid: str | None = None,
    ) -> None:
        self.api_url, self.sandbox, self.agent, self.page = api_url, sandbox, agent, page
        self.agent_auth, self.outbox_url, self.task_sid = agent_auth, outbox_url, task_sid

    def config(self) -> dict[str, Any]:
        """``{"apiUrl", "token", "agent", "agentAuth", "outboxUrl", "taskSid"}``; without the sandbox, no token
        (``""``); with ``taskSid``, the TaskRouter task the page works on (without it, the page makes one up)."""
        mode = {"agentAuth": self.agent_auth, "outboxUrl": self.outbox_url or ""}
        if self.task_sid:
            mode["taskSid"] = self.task_sid
        if self.sandbox is None:
            return {"apiUrl": self.api_url, "token": "", "agent": "", **mode}
        token = self.sandbox.issue_token(self.agent, ["agent"])
        return {"apiUrl": self.api_url, "token": token, "agent": self.agent, **mode}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, request: Request) -> Response:
        if request.path in ("/", "/index.html"):
            body, content_type = self.page.read_bytes(), "text/html; charset=utf-8"  # read each time: edit, reload
        elif request.path == "/config.json":
            body, content_type = json.dumps(self.config()).encode(), "application/json"
        else:
            return _plain(404, "Not found.")
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "Method not allowed.", {"Allow": "GET, HEAD"})
        return Response(body, status=200, content_type=content_type, headers=_HEADERS)


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        text + "\n", status=status, content_type="text/plain; charset=utf-8", headers=_HEADERS | (headers or {})
    )
