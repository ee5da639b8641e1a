"""A local stand-in for Twilio Verify v2 and Twilio IAM token validation (development and tests only).

Serves, as a WSGI application:

- ``POST /v2/Services/{ServiceSid}/Verifications`` (send),
  ``POST|GET /v2/Services/{ServiceSid}/Verifications/{Sid or To}`` (update / fetch) and
  ``POST /v2/Services/{ServiceSid}/VerificationCheck``, with Twilio's behaviour:
  random 6-digit codes, 10-minute expiry, the same code re-sent while pending, 5 sends to one ``To`` within
  10 minutes then 60203, 5 wrong checks then 60202, finished or expired verifications answer 20404;
- ``POST /v1/Accounts/{AccountSid}/Tokens/validate`` (what ``twilio-flex-token-validator`` calls);
- ``GET /v2/PhoneNumbers/{PhoneNumber}`` (Lookup v2, with risk numbers: devserver/sandbox_lookup.py);
- sandbox-only helpers: ``GET|DELETE /outbox``, ``POST /agent-tokens``, ``POST /sandbox/fail-next``,
  ``POST /sandbox/mode``;
- TaskRouter's task and reservation reads and ``/sandbox/tasks``, in ``devserver/sandbox_taskrouter.py``.

Tokens from :meth:`TwilioSandbox.issue_token` are HS256 JWTs signed with the auth token, so they stay valid
across sandbox restarts that keep the same credentials. Nothing here is deployed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from callerauth.privacy import mask  # the core's: the sandbox shows numbers as the product does
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devserver import sandbox_taskrouter
from devserver.sandbox_lookup import LookupSandbox

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Mode = Literal["normal", "timeout", "malformed", "refuse_iam"]
MODES: tuple[Mode, ...] = ("normal", "timeout", "malformed", "refuse_iam")
CHANNELS = ("sms", "call", "email", "whatsapp")
CODE_TTL_SECONDS = 600
MAX_SENDS = 5  # per To within CODE_TTL_SECONDS; the next one answers 60203
MAX_CHECKS = 5  # wrong checks per verification; the next one answers 60202
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
VERIFICATION_SID = re.compile(r"^VE[0-9a-fA-F]{32}$")


def iso(ts: float) -> str:
    """Seconds since the epoch as ISO-8601 UTC with a ``Z``, as Twilio writes dates."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class _Verification:
    sid: str
    to: str
    channel: str
    code: str
    created: float
    updated: float
    status: str = "pending"
    wrong_checks: int = 0
    attempts: list[dict[str, str]] = field(default_factory=list)


class _TwilioError(Exception):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


def _error_response(err: _TwilioError, headers: dict[str, str] | None = None) -> Response:
    if err.code is None:
        return _json({"message": err.message}, err.status, headers)
    more_info = f"https://www.twilio.com/docs/errors/{err.code}"
    body = {"code": err.code, "message": err.message, "more_info": more_info, "status": err.status}
    return _json(body, err.status, headers)


def _auth_error() -> _TwilioError:
    return _TwilioError(401, 20003, "Authenticate")


VERIFY_ENDPOINTS = {"send", "update", "fetch", "check"}


class TwilioSandbox:
    """The sandbox. Call it as a WSGI app; inspect ``outbox``; steer it with ``fail_next`` / ``set_mode``."""

    timeout_seconds: float = 30.0  # how long Verify requests hang in "timeout" mode (tests may shorten it)

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        service_sid: str,
        *,
        clock: Callable[[], float] = time.time,
        announce: Callable[[str], None] = print,
    ) -> None:
        self.account_sid, self.auth_token, self.service_sid = account_sid, auth_token, service_sid
        self._clock, self._announce = clock, announce
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._wake.set()
        self._mode: Mode = "normal"
        self._failures: dict[str, list[tuple[int, int | None]]] = {"verify": [], "lookup": []}
        self._lookup = LookupSandbox(clock)
        self.lookups: list[str] = []  # numbers looked up, in order
        self._pending: dict[str, _Verification] = {}  # sid → pending verification
        self._pending_by_to: dict[str, str] = {}  # To → sid
        self._sends: dict[str, list[float]] = {}  # To → send times within the last CODE_TTL_SECONDS
        self.outbox: list[dict[str, Any]] = []
        self.api_url = ""  # the local API, for the call simulator (devserver/sandbox_calls.py); the stack sets it
        self.taskrouter = sandbox_taskrouter.TaskRouterSandbox(account_sid, auth_token, clock=clock, announce=announce)
        self._map = Map(
            [
                Rule("/v2/Services/<service>/Verifications", methods=["POST"], endpoint="send"),
                Rule("/v2/Services/<service>/Verifications/<sid>", methods=["POST"], endpoint="update"),
                Rule("/v2/Services/<service>/Verifications/<sid>", methods=["GET"], endpoint="fetch"),
                Rule("/v2/Services/<service>/VerificationCheck", methods=["POST"], endpoint="check"),
                Rule("/v1/Accounts/<account>/Tokens/validate", methods=["POST"], endpoint="iam"),
                Rule("/v2/PhoneNumbers/<number>", methods=["GET"], endpoint="lookup"),
                Rule("/outbox", methods=["GET"], endpoint="outbox"),
                Rule("/outbox", methods=["DELETE"], endpoint="clear_outbox"),
                Rule("/agent-tokens", methods=["POST"], endpoint="agent_token"),
                Rule("/sandbox/fail-next", methods=["POST"], endpoint="sandbox_fail"),
                Rule("/sandbox/mode", methods=["POST"], endpoint="sandbox_mode"),
                Rule("/sandbox/calls", methods=["POST"], endpoint="sandbox_calls"),
                *sandbox_taskrouter.rules(),
            ]
        )

    # ------------------------------------------------------------------ controls

    def issue_token(self, identity: str, roles: Sequence[str] = ("agent",), ttl_seconds: int = 3600) -> str:
        """A Flex-like agent token (a JWT) that IAM validation accepts for ``ttl_seconds`` (sandbox clock)."""
        if not identity:
            raise ValueError("identity is required")
        now = int(self._clock())
        digest = hashlib.sha256(f"{self.account_sid}:{identity}".encode()).hexdigest()
        flex = {
            "roles": list(roles),
            "worker_sid": sandbox_taskrouter.worker_sid(self.account_sid, identity),
            "realm_user_id": "US" + digest[32:],
        }
        claims = {
            "iss": self.account_sid,
            "sub": self.account_sid,
            "jti": _sid("TK"),
            "iat": now,
            "exp": now + int(ttl_seconds),
            "grants": {"identity": identity, "flex": flex},
        }
        signing_input = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(json.dumps(claims).encode())
        signature = hmac.new(self.auth_token.encode(), signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64(signature)

    def fail_next(self, status: int, code: int | None = None, *, count: int = 1, api: str = "verify") -> None:
        """The next ``count`` requests to ``api`` (verify or lookup) answer a Twilio error with this HTTP status
        and error code."""
        if not 100 <= status <= 599 or count < 1 or api not in self._failures:
            raise ValueError("status must be an HTTP status, count at least 1 and api verify or lookup")
        with self._lock:
            self._failures[api].extend([(status, code)] * count)

    def set_mode(self, mode: Mode) -> None:
        """``timeout``: Verify hangs; ``malformed``: Verify answers ``not json``; ``refuse_iam``: IAM 503s."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode
            if mode == "timeout":
                self._wake.clear()
            else:
                self._wake.set()

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = 64 * 1024
        try:
            endpoint, args = self._map.bind_to_environ(environ).match()
            response = self._dispatch(request, str(endpoint), args)
        except MethodNotAllowed as exc:
            allow = {"Allow": ", ".join(exc.valid_methods or [])}
            response = _error_response(_TwilioError(405, 20004, "Method not allowed"), allow)
        except HTTPException as exc:
            status = exc.code or 500
            code = 20404 if status == 404 else None
            message = f"The requested resource {request.path} was not found" if status == 404 else exc.name
            response = _error_response(_TwilioError(status, code, message))
        except _TwilioError as err:
            response = _error_response(err)
        return response(environ, start_response)

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        if endpoint in VERIFY_ENDPOINTS:
            if not self._wake.is_set():
                self._wake.wait(self.timeout_seconds)
            with self._lock:
                mode = self._mode
            self._injected_failure("verify")
            if mode == "malformed":
                return Response("not json", status=200, content_type="application/json")
            self._authenticate(request)
            if args["service"] != self.service_sid:
                resource = f"/Services/{args['service']}"
                raise _TwilioError(404, 20404, f"The requested resource {resource} was not found")
            with self._lock:
                self._expire()
                return self._verify(request, endpoint, args)
        if endpoint == "iam":
            return self._iam(request, args["account"])
        if endpoint == "lookup":
            return self._look_up(request, str(args["number"]))
        if endpoint.startswith("taskrouter_"):
            try:
                return self.taskrouter.dispatch(request, endpoint, args)
            except sandbox_taskrouter.TaskRouterError as err:
                raise _TwilioError(err.status, err.code, err.message) from None
        return (self._call if endpoint == "sandbox_calls" else self._sandbox)(request, endpoint)

    def _injected_failure(self, api: str) -> None:
        with self._lock:
            queued = self._failures[api]
            failure = queued.pop(0) if queued else None
        if failure is not None:
            status, code = failure
            raise _TwilioError(status, code, "Sandbox injected error" if code is not None else "Internal Server Error")

    def _look_up(self, request: Request, number: str) -> Response:
        self._injected_failure("lookup")
        self._authenticate(request)
        answer = self._lookup.answer(number, request.args.get("Fields", ""), request.host_url)
        if answer is None:
            raise _TwilioError(404, 20404, f"The requested resource /PhoneNumbers/{mask(number)} was not found")
        with self._lock:
            self.lookups.append(number)
        return _json(answer)

    def _authenticate(self, request: Request) -> None:
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or not hmac.compare_digest((auth.username or "").encode(), self.account_sid.encode())
            or not hmac.compare_digest((auth.password or "").encode(), self.auth_token.encode())
        ):
            raise _auth_error()

    # ------------------------------------------------------------------ Verify (called with the lock held)

    def _expire(self) -> None:
        now = self._clock()
        for v in [v for v in self._pending.values() if now >= v.created + CODE_TTL_SECONDS]:
            self._finish(v, "expired")

    def _finish(self, v: _Verification, status: str) -> None:
        v.status, v.updated = status, self._clock()
        self._pending.pop(v.sid, None)
        self._pending_by_to.pop(v.to, None)

    def _find(self, sid_or_to: str, resource: str) -> _Verification:
        sid = sid_or_to if VERIFICATION_SID.match(sid_or_to) else self._pending_by_to.get(sid_or_to, "")
        v = self._pending.get(sid)
        if v is None:
            raise _TwilioError(404, 20404, f"The requested resource {resource} was not found")
        return v

    def _verify(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        form = request.form
        base = f"{request.host_url}v2/Services/{self.service_sid}/Verifications/"
        if endpoint == "send":
            v = self._send(form.get("To", ""), form.get("Channel", ""))
            return _json(self._verification_json(v, base), 201)
        if endpoint == "check":
            return _json(self._check(form.get("To", ""), form.get("VerificationSid", ""), form.get("Code", "")))
        sid = str(args["sid"])
        shown = sid if VERIFICATION_SID.match(sid) else mask(sid)
        v = self._find(sid, f"/Services/{self.service_sid}/Verifications/{shown}")
        if endpoint == "update":
            status = form.get("Status", "")
            if status not in ("canceled", "approved"):
                raise _TwilioError(400, 60200, "Invalid parameter: Status")
            self._finish(v, status)
        return _json(self._verification_json(v, base))

    def _send(self, to: str, channel: str) -> _Verification:
        if channel not in CHANNELS:
            raise _TwilioError(400, 60200, "Invalid parameter: Channel")
        if not (EMAIL if channel == "email" else E164).match(to):
            raise _TwilioError(400, 60200, "Invalid parameter: To")
        now = self._clock()
        sends = [t for t in self._sends.get(to, []) if now - t < CODE_TTL_SECONDS]
        if len(sends) >= MAX_SENDS:
            self._sends[to] = sends
            raise _TwilioError(429, 60203, "Max send attempts reached")
        self._sends[to] = [*sends, now]
        sid = self._pending_by_to.get(to)
        if sid is None:
            code = f"{secrets.randbelow(1_000_000):06d}"
            v = _Verification(_sid("VE"), to, channel, code, created=now, updated=now)
            self._pending[v.sid] = v
            self._pending_by_to[to] = v.sid
        else:
            v = self._pending[sid]
            v.channel, v.updated = channel, now
        shown_channel = channel if channel == "whatsapp" else channel.upper()  # as in Twilio's examples
        v.attempts.append({"time": iso(now), "channel": shown_channel, "attempt_sid": _sid("VL")})
        self.outbox.append({"to": to, "channel": channel, "code": v.code, "sentAt": iso(now), "verificationSid": v.sid})
        self._announce(f"[twilio sandbox] {channel} to {mask(to)} — code {v.code} ({v.sid})")
        return v

    def _check(self, to: str, verification_sid: str, code: str) -> dict[str, Any]:
        if not code:
            raise _TwilioError(400, 20001, "Missing required parameter Code in the post body")
        if not to and not verification_sid:
            raise _TwilioError(400, 20001, "Either a 'To' number or 'VerificationSid' must be specified")
        v = self._find(verification_sid or to, f"/Services/{self.service_sid}/VerificationCheck")
        if v.wrong_checks >= MAX_CHECKS:
            raise _TwilioError(429, 60202, "Max check attempts reached")
        if hmac.compare_digest(code.encode(), v.code.encode()):
            self._finish(v, "approved")
        else:
            v.wrong_checks += 1
            v.updated = self._clock()
        return {
            **self._common_json(v),
            "amount": None,
            "payee": None,
            "sna_attempts_error_codes": [],
            "date_created": iso(v.created),
            "date_updated": iso(v.updated),
        }

    def _common_json(self, v: _Verification) -> dict[str, Any]:
        """What a verification and a verification check both say about it."""
        return {
            "sid": v.sid,
            "service_sid": self.service_sid,
            "account_sid": self.account_sid,
            "to": v.to,
            "channel": v.channel,
            "status": v.status,
            "valid": v.status == "approved",
        }

    def _verification_json(self, v: _Verification, base: str) -> dict[str, Any]:
        return {
            **self._common_json(v),
            "lookup": {},
            "amount": None,
            "payee": None,
            "send_code_attempts": list(v.attempts),
            "date_created": iso(v.created),
            "date_updated": iso(v.updated),
            "sna": None,
            "url": base + v.sid,
        }

    # ------------------------------------------------------------------ IAM

    def _iam(self, request: Request, account: str) -> Response:
        with self._lock:
            mode = self._mode
        if mode == "refuse_iam":
            raise _TwilioError(503, 20503, "Service Unavailable")
        if not hmac.compare_digest(account.encode(), self.account_sid.encode()):
            raise _auth_error()
        self._authenticate(request)
        body = request.get_json(silent=True)
        token = body.get("token") if isinstance(body, dict) else None
        claims = self._token_claims(token) if isinstance(token, str) else None
        if claims is None:
            return _json(
                {
                    "valid": False,
                    "code": 20107,
                    "message": "Invalid Access Token",
                    "expiration": None,
                    "realm_user_id": None,
                    "identity": None,
                    "roles": None,
                    "worker_sid": None,
                }
            )
        flex = claims["grants"]["flex"]
        return _json(
            {
                "valid": True,
                "code": 0,
                "message": None,
                "expiration": iso(claims["exp"]),
                "realm_user_id": flex["realm_user_id"],
                "identity": claims["grants"]["identity"],
                "roles": flex["roles"],
                "worker_sid": flex["worker_sid"],
            }
        )

    def _token_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this sandbox issued, if its signature holds and it has not expired."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        expected = hmac.new(self.auth_token.encode(), signing_input, hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(parts[2]), expected):
                return None
            claims = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("sub") != self.account_sid:
            return None
        if not isinstance(claims.get("exp"), int) or self._clock() >= claims["exp"]:
            return None
        return claims

    # ------------------------------------------------------------------ sandbox-only endpoints

    def _call(self, request: Request, endpoint: str) -> Response:
        """POST /sandbox/calls: one call through the local API's IVR (devserver/sandbox_calls.py)."""
        from devserver import sandbox_calls

        try:
            return _json(sandbox_calls.simulate(self, self.api_url, request.get_json(silent=True) or {}))
        except (sandbox_calls.CallError, ValueError) as err:
            raise _TwilioError(400, None, str(err)) from None

    def _sandbox(self, request: Request, endpoint: str) -> Response:
        if endpoint == "outbox":
            to = request.args.get("to")
            with self._lock:
                return _json([m for m in self.outbox if to is None or m["to"] == to])
        if endpoint == "clear_outbox":
            with self._lock:
                cleared = len(self.outbox)
                self.outbox.clear()
            return _json({"cleared": cleared})
        body = request.get_json(silent=True)
        params: dict[str, Any] = body if isinstance(body, dict) else request.form.to_dict()
        try:
            if endpoint == "agent_token":
                identity = params.get("identity")
                if not isinstance(identity, str) or not identity:
                    raise _TwilioError(400, 20001, "Missing required parameter identity")
                roles = params.get("roles", ["agent"])
                if isinstance(roles, str):
                    roles = [r.strip() for r in roles.split(",") if r.strip()]
                if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                    raise _TwilioError(400, 60200, "Invalid parameter: roles")
                token = self.issue_token(identity, roles, int(params.get("ttl_seconds", 3600)))
                return _json({"token": token, "identity": identity, "roles": roles}, 201)
            if endpoint == "sandbox_fail":
                status, code, count = int(params["status"]), params.get("code"), int(params.get("count", 1))
                code, api = None if code is None else int(code), str(params.get("api", "verify"))
                self.fail_next(status, code, count=count, api=api)
                return _json({"status": status, "code": code, "count": count, "api": api})
            mode = params.get("mode")
            if mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}")
            self.set_mode(cast(Mode, mode))
            return _json({"mode": mode})
        except (KeyError, TypeError, ValueError) as exc:
            raise _TwilioError(400, 60200, f"Invalid parameter: {exc}") from exc
