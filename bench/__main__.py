"""`make bench`: every figure of DESIGN.md's performance budgets, measured in this one run.

- Cold start: wall time of a fresh interpreter that imports a handler, builds it and answers one
  request against the local stack, divided by the floor measured here in the same way
  (`python -c "import boto3; boto3.client('dynamodb')"`), medians of several runs each.
- Round trips per request, counted at the clients: DynamoDB by a botocore event hook, Twilio by
  wrapping the Twilio HTTP client, IAM by wrapping urllib3 (which only the IAM adapter calls directly).
- Warm overhead: the handler with stub adapters (no network), median and p99 of many calls.
- Peak memory (max RSS) of the cold-start processes.
Exits 1 when a figure misses its budget.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devserver.events import rest_proxy_event
from devserver.samples import BENCH_SETTINGS, PLUGIN_FORM

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT)]
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "9"))
WARM_CALLS = int(os.environ.get("BENCH_WARM_CALLS", "3000"))
FORM = PLUGIN_FORM

BUDGETS = {  # DESIGN.md, "Performance budgets"
    "cold start_verify": 1.5,
    "cold check_verify": 1.5,
    "cold customer_info": 1.3,
    "warm median ms": 2.0,
    "peak MB": 128.0,
}
CALL_BUDGETS = {  # (Twilio exactly, DynamoDB at most)
    "start-verify": (1, 2),
    "check-verify": (1, 2),
    "customer-info": (0, 2),
}


def main() -> int:
    import boto3

    from devserver.stack import start_stack

    counts: Counter[str] = Counter()
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call.dynamodb", lambda **_: counts.update(["dynamodb"]))
    _count_calls(counts)
    # Limits out of the way (the same numbers are sent to many times); the stack's own logs quiet.
    settings = BENCH_SETTINGS
    with (
        contextlib.redirect_stderr(io.StringIO()),
        start_stack(ROOT, api_port=0, sandbox_port=0, dynamodb_port=0, env=settings, announce=lambda _: None) as stack,
    ):
        assert stack.sandbox is not None
        # The cold-start processes log as in Lambda (INFO); metrics off (EMF lines would only go to stdout).
        child_env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "INFO"}
        api = Api(stack.api_url, stack.outbox_url or "")
        token = stack.sandbox.issue_token("bench-agent", ["agent"])
        rows: list[tuple[str, str, str, bool]] = []

        floor_command = [sys.executable, "-c", "import boto3; boto3.client('dynamodb')"]
        cold = _cold_starts(floor_command, _cold_events(api, token), child_env)
        floor = statistics.median(cold.pop("floor"))
        rows.append(("cold start floor (import boto3; client)", f"{floor * 1000:.0f} ms", "", True))
        peaks = [peak for _, peak in cold.values()]
        for function, (walls, _) in cold.items():
            ratio = statistics.median(walls) / floor
            budget = BUDGETS[f"cold {function}"]
            rows.append(
                (
                    f"cold start {function}",
                    f"{ratio:.2f}x floor ({statistics.median(walls) * 1000:.0f} ms)",
                    f"<= {budget}x",
                    ratio <= budget,
                )
            )

        for endpoint, calls in _calls_per_request(api, stack.sandbox, counts).items():
            twilio_budget, dynamodb_budget = CALL_BUDGETS.get(endpoint, (calls["twilio"], 2))
            ok = calls["twilio"] == twilio_budget and calls["dynamodb"] <= dynamodb_budget
            rows.append(
                (
                    f"calls per {endpoint}",
                    f"Twilio {calls['twilio']}, DynamoDB {calls['dynamodb']}, IAM {calls['iam']}",
                    f"Twilio {twilio_budget}, DynamoDB <= {dynamodb_budget}",
                    ok,
                )
            )
        iam = _iam_calls_per_token_minute(api, stack.sandbox, counts)
        rows.append(("IAM calls per token per minute (warm)", str(iam), "<= 1", iam <= 1))

    for endpoint, (median_ms, p99_ms) in _warm_overhead().items():
        ok = median_ms < BUDGETS["warm median ms"]
        rows.append(
            (
                f"warm overhead {endpoint}",
                f"median {median_ms:.3f} ms, p99 {p99_ms:.3f} ms",
                f"median < {BUDGETS['warm median ms']} ms",
                ok,
            )
        )
    peak = max(peaks)
    rows.append(
        (
            "peak memory of a handler process",
            f"{peak:.1f} MB",
            f"< {BUDGETS['peak MB']:.0f} MB",
            peak < BUDGETS["peak MB"],
        )
    )
    _print(rows)
    return 0 if all(ok for *_, ok in rows) else 1


class Api:
    """The bench's own HTTP client to the local stack (stdlib, so it is not counted as IAM)."""

    def __init__(self, base: str, outbox: str) -> None:
        self.base, self.outbox = base, outbox

    def post(self, path: str, **fields: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base}{path}", urllib.parse.urlencode(fields).encode(), {"Content-Type": FORM}
        )
        return _json(request)

    def get(self, path: str, token: str, **query: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base}{path}?{urllib.parse.urlencode(query)}", headers={"X-Flex-Token": token}
        )
        return _json(request)

    def code_for(self, to: str) -> str:
        with urllib.request.urlopen(f"{self.outbox}?{urllib.parse.urlencode({'to': to})}") as answer:
            return str(json.load(answer)[-1]["code"])


def _json(request: urllib.request.Request) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(request) as answer:
            return dict(json.load(answer))
    except urllib.error.HTTPError as error:
        return dict(json.load(error))


def _event(method: str, path: str, fields: dict[str, str]) -> dict[str, Any]:
    body = urllib.parse.urlencode(fields) if method == "POST" else None
    query = fields if method == "GET" else None
    return rest_proxy_event(method, path, headers={"Content-Type": FORM}, query=query, body=body, request_id="bench")


_numbers = iter(range(10_000))


def _number() -> str:
    return f"+1312555{next(_numbers):04d}"


def _cold_events(api: Api, token: str) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """Each cold start answers a real, successful request; the state it needs is made over HTTP first."""

    def start() -> dict[str, Any]:
        return _event("POST", "/start-verify", {"to": _number(), "Token": token})

    def check() -> dict[str, Any]:
        to = _number()
        api.post("/start-verify", to=to, Token=token)
        return _event("POST", "/check-verify", {"to": to, "verification_code": api.code_for(to), "Token": token})

    approved = "+12025550100"  # a sample customer; one approval lasts all the runs
    api.post("/start-verify", to=approved, Token=token)
    api.post("/check-verify", to=approved, verification_code=api.code_for(approved), Token=token)

    def customer() -> dict[str, Any]:
        return _event("GET", "/customer-info", {"to": approved, "Token": token})

    return [("start_verify", start), ("check_verify", check), ("customer_info", customer)]


def _cold_starts(
    floor_command: list[str], events: list[tuple[str, Callable[[], dict[str, Any]]]], env: dict[str, str]
) -> dict[str, Any]:
    """Wall times of fresh processes, the floor and each handler taking turns in every round, so that
    whatever else the machine does at a moment weighs on all of them alike."""
    walls: dict[str, list[float]] = {"floor": []}
    peaks: dict[str, float] = {}
    for _ in range(COLD_RUNS):
        began = time.perf_counter()
        subprocess.run(floor_command, env=env, check=True, capture_output=True, cwd=ROOT)
        walls["floor"].append(time.perf_counter() - began)
        for function, make_event in events:
            command = [sys.executable, str(ROOT / "bench" / "coldstart.py"), function, json.dumps(make_event())]
            began = time.perf_counter()
            done = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=ROOT)
            walls.setdefault(function, []).append(time.perf_counter() - began)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result["status"] != 200:
                raise SystemExit(f"bench: cold {function} answered {result['status']}: {done.stdout[-500:]}")
            peaks[function] = max(peaks.get(function, 0.0), result["peak_mb"])
    return {"floor": walls["floor"]} | {f: (walls[f], peaks[f]) for f in peaks}


def _count_calls(counts: Counter[str]) -> None:
    import urllib3
    from twilio.http.http_client import TwilioHttpClient

    def counting(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            counts.update([name])
            return call(*args, **kwargs)

        return counted

    TwilioHttpClient.request = counting("twilio", TwilioHttpClient.request)
    urllib3.PoolManager.request = counting("iam", urllib3.PoolManager.request)  # type: ignore[method-assign]


def _measure(counts: Counter[str], action: Callable[[], dict[str, Any]]) -> dict[str, int]:
    before = Counter(counts)
    answer = action()
    if not answer.get("success"):
        raise SystemExit(f"bench: a measured request failed: {answer}")
    return {name: counts[name] - before[name] for name in ("twilio", "dynamodb", "iam")}


def _calls_per_request(api: Api, sandbox: Any, counts: Counter[str]) -> dict[str, dict[str, int]]:
    token, to = sandbox.issue_token("calls-agent", ["agent"]), _number()
    return {
        "start-verify": _measure(counts, lambda: api.post("/start-verify", to=to, Token=token)),
        "check-verify": _measure(
            counts, lambda: api.post("/check-verify", to=to, Token=token, verification_code=api.code_for(to))
        ),
        "cancel-verify": _measure(counts, lambda: api.post("/cancel-verify", to=to, Token=token)),
    } | _customer_calls(api, sandbox, counts)


def _customer_calls(api: Api, sandbox: Any, counts: Counter[str]) -> dict[str, dict[str, int]]:
    token, to = sandbox.issue_token("info-agent", ["agent"]), "+12025550101"
    api.post("/start-verify", to=to, Token=token)
    api.post("/check-verify", to=to, verification_code=api.code_for(to), Token=token)
    return {"customer-info": _measure(counts, lambda: api.get("/customer-info", token, to=to))}


def _iam_calls_per_token_minute(api: Api, sandbox: Any, counts: Counter[str]) -> int:
    token, before = sandbox.issue_token("iam-agent", ["agent"]), counts["iam"]
    for _ in range(10):
        api.get("/customer-info", token, to="+12025550102")
    return counts["iam"] - before


def _warm_overhead() -> dict[str, tuple[float, float]]:
    from bench.stubs import stub_handlers

    timings = {}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        handlers = stub_handlers()
    for endpoint, (handler, event) in handlers.items():
        samples = []
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # EMF metric lines
            for _ in range(WARM_CALLS):
                began = time.perf_counter()
                handler(event, None)
                samples.append((time.perf_counter() - began) * 1000)
        samples.sort()
        timings[endpoint] = (statistics.median(samples), samples[int(len(samples) * 0.99) - 1])
    return timings


def _print(rows: list[tuple[str, str, str, bool]]) -> None:
    width = [max(len(str(row[i])) for row in rows) for i in range(3)]
    print(f"\n{'figure'.ljust(width[0])}  {'measured'.ljust(width[1])}  {'budget'.ljust(width[2])}  ok")
    for name, measured, budget, ok in rows:
        print(f"{name.ljust(width[0])}  {measured.ljust(width[1])}  {budget.ljust(width[2])}  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
