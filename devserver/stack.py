"""The whole local stack: embedded DynamoDB (moto), the Twilio sandbox, and the API Gateway emulator."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING

import boto3
from boto3.dynamodb.types import TypeSerializer
from moto.server import ThreadedMotoServer
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from devserver.demo import DEMO_AGENT, DemoPage
from devserver.gateway import Gateway
from devserver.lambdas import REGION, Handler, load_handler, unload_project_modules
from devserver.moto_guard import serialise_dynamodb
from devserver.samples import (
    SAMPLE_CUSTOMER,
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_SERVICE_SID,
    SANDBOX_WORKFLOW_SID,
)
from devserver.sandbox_lookup import PACKAGES as LOOKUP_PACKAGES
from devserver.template import (
    Route,
    Template,
    api_routes,
    gateway_responses,
    layer_dirs,
    literal_global_env,
    load_template,
    table_env_vars,
    table_specs,
)
from devserver.twilio_sandbox import TwilioSandbox

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from mypy_boto3_dynamodb import DynamoDBClient

HOST = "127.0.0.1"
TABLE_PREFIX = "callerauth"
SAMPLE_CUSTOMERS = Path(__file__).with_name("sample_customers.json")
TWILIO_KEYS = ("ACCOUNT_SID", "AUTH_TOKEN", "VERIFY_SERVICE_SID")
# Cloud-only settings: with them the core would ask Secrets Manager (real AWS, with moto's dummy keys).
CLOUD_ONLY = ("TWILIO_SECRET_ARN", "HASH_SECRET_ARN", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# Fixed, obviously fake sandbox credentials (devserver/samples.py): sandbox tokens stay valid across restarts.
# The state-table key secret when HASH_SECRET is not set. Fixed, so that local tools (ops/audit.py) can
# find a destination's items in a running dev stack; the dev stack's data is in memory and fake anyway.
DEV_HASH_SECRET = "callerauth-dev-only-hash-secret-never-deployed"

Announce = Callable[[str], None]


# ------------------------------------------------------------------------------------------ settings


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, an optional ``export``, optional single or double quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if m is None:
            continue
        key, value = m.group(1), m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.sub(r"\s+#.*$", "", value)  # an inline comment needs a space before the '#'
        values[key] = value
    return values


def resolve_settings(root: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` argument, then the process environment, then ``<root>/.env``: the first one wins."""
    return {**read_dotenv(root / ".env"), **os.environ, **(env or {})}


def _has_twilio_credentials(settings: Mapping[str, str]) -> bool:
    return all(settings.get(key, "").strip() for key in TWILIO_KEYS)


# -------------------------------------------------------------------------------------------- tables


def table_name(logical_id: str) -> str:
    """``StateTable`` → ``callerauth-state``, ``CustomersTable`` → ``callerauth-customers``."""
    base = logical_id.removesuffix("Table") or logical_id
    return f"{TABLE_PREFIX}-" + re.sub(r"(?<!^)(?=[A-Z])", "-", base).lower()


def env_var_for(logical_id: str) -> str:
    """``StateTable`` → ``STATE_TABLE``: the fallback when no function names the table in its environment."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id).upper()


def create_tables(client: DynamoDBClient, template: Template, names: Mapping[str, str]) -> None:
    """(Re)create every table of the template under ``names[logical_id]``, with TTL as the template says."""
    for logical_id, spec in table_specs(template).items():
        name = names[logical_id]
        # moto's state lives as long as the process; a previous local stack may have left the table.
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=name)
        client.create_table(TableName=name, **spec.create_table_kwargs)
        if spec.ttl_attribute:
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": spec.ttl_attribute, "Enabled": True}
            )


def seed_customers(client: DynamoDBClient, table: str, path: Path = SAMPLE_CUSTOMERS) -> int:
    customers = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    serializer = TypeSerializer()
    for customer in customers:
        client.put_item(TableName=table, Item={k: serializer.serialize(v) for k, v in customer.items()})
    return len(customers)


# ------------------------------------------------------------------------------------------- servers


class _QuietHandler(WSGIRequestHandler):
    """No werkzeug access log: query strings carry phone numbers, and the gateway logs its own line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _serve(app: WSGIApplication, port: int, name: str) -> tuple[BaseWSGIServer, threading.Thread]:
    if port:
        _free_port(port)  # werkzeug would print its own message and sys.exit(1) on a busy port
    try:
        server = make_server(HOST, port, app, threaded=True, request_handler=_QuietHandler)
    except SystemExit as exc:  # lost a race for the port after the check
        raise OSError(errno.EADDRINUSE, f"port {port} is in use") from exc
    # A short poll interval keeps shutdown() (and so Ctrl-C) quick.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
    thread.start()
    return server, thread


def _free_port(port: int) -> int:
    """``port`` itself if it can be bound (else OSError now), or a free one for 0.

    ThreadedMotoServer binds in its own thread and would wait forever if that failed, so check first.
    The probe binds the way the servers do (werkzeug's servers set SO_REUSEADDR): connections of a stack
    that just stopped linger in TIME-WAIT for a minute, and only a listener still there means "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, port))
        return int(probe.getsockname()[1])


class _Environ:
    """Set variables in os.environ and put back what was there before."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def unset(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._saved.setdefault(key, os.environ.get(key))
            os.environ.pop(key, None)

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()


class Stack:
    """A running local stack; ``stop()`` (or leaving the ``with`` block) shuts everything down."""

    def __init__(self) -> None:
        self.api_url = ""
        self.dynamodb_url = ""
        self.sandbox_url: str | None = None
        self.demo_url: str | None = None
        self.sandbox: TwilioSandbox | None = None
        self.ready_task: str | None = None  # the sandbox's task for the sample customer, held by dev-agent
        self.table_names: dict[str, str] = {}
        self.routes: list[Route] = []
        self.gateway: Gateway | None = None
        self._servers: list[tuple[BaseWSGIServer, threading.Thread]] = []
        self._moto: ThreadedMotoServer | None = None
        self._environ = _Environ()
        self._werkzeug_level: int | None = None
        self._root: Path | None = None
        self._saved_modules: dict[str, ModuleType] | None = None

    @property
    def outbox_url(self) -> str | None:
        return f"{self.sandbox_url}/outbox" if self.sandbox_url else None

    def stop(self) -> None:
        for server, thread in reversed(self._servers):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers.clear()
        if self._moto is not None:
            self._moto.stop()
            inner = getattr(self._moto, "_server", None)  # moto's stop() leaves the socket open
            if isinstance(inner, BaseWSGIServer):
                inner.server_close()
            self._moto = None
        self._environ.restore()
        if self._root is not None and self._saved_modules is not None:
            # Put back what the process had imported before, so code outside the stack keeps one copy.
            unload_project_modules(self._root)
            sys.modules.update(self._saved_modules)
            self._saved_modules = None
        if self._werkzeug_level is not None:
            logging.getLogger("werkzeug").setLevel(self._werkzeug_level)
            self._werkzeug_level = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_stack(  # noqa: PLR0913 - keyword-only options, each with a default
    root: Path,
    *,
    api_port: int = 3030,
    sandbox_port: int = 3031,
    dynamodb_port: int = 3032,
    env: Mapping[str, str] | None = None,
    announce: Announce = print,
    customers_file: Path = SAMPLE_CUSTOMERS,
    fresh_modules: bool = True,
    demo_port: int | None = None,
) -> Stack:
    """Start moto, create and seed the tables, start the sandbox (without Twilio credentials) and the API.

    With ``demo_port`` (0: a free port), also the demo agent page, on an origin of its own (``demo_url``).

    The handlers run in this process and read os.environ, which is set here and restored by ``stop()``.
    ``fresh_modules`` forgets previously imported project modules so the handlers start cold.
    """
    root = root.resolve()
    template = load_template(root / "template.yaml")
    settings = resolve_settings(root, env)
    stack = Stack()
    try:
        _start(
            stack,
            root,
            template,
            settings,
            api_port,
            sandbox_port,
            dynamodb_port,
            env or {},
            announce,
            customers_file,
            fresh_modules,
            demo_port,
        )
    except BaseException:
        stack.stop()
        raise
    return stack


def _sandbox_defaults(configured: dict[str, str], *, sandbox: bool) -> dict[str, str]:
    """Against the sandbox every Lookup package costs nothing: its risk numbers all show (unless told otherwise)."""
    if not sandbox or "LOOKUP_FIELDS" in os.environ or "LOOKUP_FIELDS" in configured:
        return configured
    return {**configured, "LOOKUP_FIELDS": ",".join(LOOKUP_PACKAGES)}


def _point_the_ivr(stack: Stack) -> None:
    """The IVR signs and answers with its public URL: here, this API's; and, unless told otherwise, it hands
    calls to the sandbox's workflow (handlers load on first use, so they read this)."""
    ivr = {"IVR_BASE_URL": stack.api_url}
    if not (os.environ.get("IVR_REDIRECT_URL", "").strip() or os.environ.get("IVR_WORKFLOW_SID", "").strip()):
        ivr["IVR_WORKFLOW_SID"] = SANDBOX_WORKFLOW_SID
    stack._environ.set(ivr)
    if stack.sandbox is not None:
        stack.sandbox.api_url = stack.api_url


def _start(  # noqa: PLR0913, PLR0915 - start_stack's options, passed on as they came; one start, in order
    stack: Stack,
    root: Path,
    template: Template,
    settings: Mapping[str, str],
    api_port: int,
    sandbox_port: int,
    dynamodb_port: int,
    env: Mapping[str, str],
    announce: Announce,
    customers_file: Path,
    fresh_modules: bool,
    demo_port: int | None,
) -> None:
    # (a) DynamoDB. moto logs every request through werkzeug's logger; keep only warnings and errors.
    werkzeug_logger = logging.getLogger("werkzeug")
    stack._werkzeug_level = werkzeug_logger.level
    werkzeug_logger.setLevel(logging.WARNING)
    serialise_dynamodb()  # moto's backend is not thread-safe; the server is threaded
    stack._moto = ThreadedMotoServer(ip_address=HOST, port=_free_port(dynamodb_port), verbose=False)
    stack._moto.start()
    host, port = stack._moto.get_host_and_port()
    stack.dynamodb_url = f"http://{host}:{port}"

    # (b, c) Tables from the template's own definitions, customers from the sample file.
    client: DynamoDBClient = boto3.client(
        "dynamodb",
        endpoint_url=stack.dynamodb_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stack.table_names = {logical_id: table_name(logical_id) for logical_id in table_specs(template)}
    create_tables(client, template, stack.table_names)
    if "CustomersTable" in stack.table_names:
        seed_customers(client, stack.table_names["CustomersTable"], customers_file)
    else:
        announce("devserver: the template has no CustomersTable; no customers seeded")

    # (d) Twilio: real when all three credentials are configured, the sandbox otherwise.
    twilio_urls: dict[str, str] = {}
    if _has_twilio_credentials(settings):
        twilio = {key: settings[key] for key in TWILIO_KEYS}
    else:
        if any(settings.get(key, "").strip() for key in TWILIO_KEYS):
            announce(f"devserver: only some of {', '.join(TWILIO_KEYS)} are set; using the Twilio sandbox")
        stack.sandbox = TwilioSandbox(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SANDBOX_SERVICE_SID, announce=announce)
        server, thread = _serve(stack.sandbox, sandbox_port, "twilio-sandbox")
        stack._servers.append((server, thread))
        stack.sandbox_url = f"http://{HOST}:{server.server_port}"
        if workspace := settings.get("TASKROUTER_WORKSPACE_SID", "").strip():
            stack.sandbox.taskrouter.workspace_sid = workspace  # the sandbox is whichever workspace is set
        stack.ready_task = stack.sandbox.taskrouter.create_task(SAMPLE_CUSTOMER, DEMO_AGENT)
        twilio = {
            "ACCOUNT_SID": SANDBOX_ACCOUNT_SID,
            "AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
            "VERIFY_SERVICE_SID": SANDBOX_SERVICE_SID,
        }
        twilio_urls = {
            "TWILIO_VERIFY_BASE_URL": stack.sandbox_url,
            "TWILIO_IAM_BASE_URL": stack.sandbox_url,
            "TWILIO_LOOKUP_BASE_URL": stack.sandbox_url,
            "TWILIO_TASKROUTER_BASE_URL": stack.sandbox_url,
        }

    # (e) The handlers' environment, lowest precedence first: the template's literal values, .env settings
    # the environment does not override, the env argument, then what this stack decides (endpoints,
    # tables, credentials).
    configured = {k: v for k, v in literal_global_env(template).items() if k not in os.environ}
    configured |= {k: v for k, v in read_dotenv(root / ".env").items() if k not in os.environ} | dict(env)
    table_vars = {env_var_for(logical_id): logical_id for logical_id in stack.table_names}
    table_vars |= table_env_vars(template)
    configured = _sandbox_defaults(configured, sandbox=stack.sandbox is not None)
    handler_env = {
        **configured,
        **{name: stack.table_names[logical_id] for name, logical_id in table_vars.items()},
        "AWS_ENDPOINT_URL_DYNAMODB": stack.dynamodb_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "HASH_SECRET": settings.get("HASH_SECRET") or DEV_HASH_SECRET,
        "POWERTOOLS_SERVICE_NAME": "callerauth",
        "POWERTOOLS_METRICS_NAMESPACE": "CallerAuth",
        "POWERTOOLS_DEV": "false",
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
        **twilio,
        **twilio_urls,
    }
    stack._environ.set(handler_env)
    stack._environ.unset(CLOUD_ONLY)

    # (f) The API, with handlers loaded on first use, like a cold start.
    if fresh_modules:
        stack._root, stack._saved_modules = root, unload_project_modules(root)
    layers = layer_dirs(template) or ["layers/core"]
    stack.routes = api_routes(template)
    for route in stack.routes:
        module = route.handler.rpartition(".")[0].replace(".", "/")
        if not (root / route.code_uri / f"{module}.py").is_file():
            announce(f"devserver: {route.function_logical_id}: {route.code_uri}{module}.py does not exist")

    def handler_for(route: Route) -> Handler:
        return load_handler(route.code_uri, route.handler, root, layer_dirs=layers)

    stack.gateway = Gateway(stack.routes, handler_for, gateway_responses(template))
    server, thread = _serve(stack.gateway, api_port, "api-gateway")
    stack._servers.append((server, thread))
    stack.api_url = f"http://{HOST}:{server.server_port}"
    _point_the_ivr(stack)

    # (g) The demo agent page, on another origin than the API's: the browser's CORS checks are real.
    if demo_port is not None:
        agent_auth = (os.environ.get("AGENT_AUTH") or "flex").strip().lower() or "flex"  # as the handlers read it
        # With TaskRouter on, the page works on the ready task; without it, on a task SID it makes up.
        task = stack.ready_task if os.environ.get("TASKROUTER_WORKSPACE_SID", "").strip() else None
        demo = DemoPage(stack.api_url, stack.sandbox, agent_auth=agent_auth, outbox_url=stack.outbox_url, task_sid=task)
        server, thread = _serve(demo, demo_port, "demo-page")
        stack._servers.append((server, thread))
        stack.demo_url = f"http://{HOST}:{server.server_port}"
