"""`python -m bench.load`: a bounded, mixed load run against the local dev stack, over loopback only.

Starts the whole dev stack in this process on free loopback ports (moto server, the Twilio sandbox, the
API Gateway emulator with the real handlers), with the send limits raised out of the way (cooldown 0, big
caps) and AgentAuth=flex, one Flex token per simulated agent. Then a thread pool of agents plays the
plugin's flow (start → read the code from the sandbox outbox → check → customer-info), mixed as in a
contact centre: sample customers and callers unknown to the CRM, some resends, some misread codes, some
early customer-info clicks. Bounded by a flow count AND a time cap, whichever comes first.

Reports throughput and latency percentiles per endpoint, and correctness: sends answered 200 vs messages
in the sandbox outbox (none lost, none duplicated), answers that were not the expected one (by code), and
the state table's own view (deployment send counters, one audit event per request).
Exits 1 if a send was lost or duplicated or any 5xx occurred. No timing is judged: figures only.

Settings (environment): BENCH_LOAD_FLOWS (300), BENCH_LOAD_WORKERS (8), BENCH_LOAD_SECONDS (45).

Read the figures knowing the dev stack: the gateway emulator serialises calls per function (one warm
container each); moto serialises DynamoDB requests (devserver/moto_guard.py) and its TransactWriteItems
copies the tables it touches, so each transaction costs O(items in the state table), which grows by one
audit event per request: latency rises during the run (the "trend" line). Figures of this machine and
run, not of Lambda and DynamoDB.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devserver.samples import BENCH_SETTINGS, PLUGIN_FORM

ROOT = Path(__file__).resolve().parents[1]
FLOWS = int(os.environ.get("BENCH_LOAD_FLOWS", "300"))
WORKERS = int(os.environ.get("BENCH_LOAD_WORKERS", "8"))
TIME_CAP_SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "45"))
SEED = 20300327
FORM = PLUGIN_FORM
HTTP_TIMEOUT = 15.0
SAMPLE_CUSTOMERS = [c["phone"] for c in json.loads((ROOT / "devserver" / "sample_customers.json").read_text())]
# The sandbox, like Twilio, allows 5 sends to one number in 10 minutes (60203 after that): a sample
# customer is verified at most that many times in a run, with no resend.
FLOWS_PER_SAMPLE_CUSTOMER = 5
ENDPOINTS = ("start-verify", "check-verify", "customer-info")

# Everything the handlers read, pinned: the limits out of the way, Flex agents, never real Twilio.
SETTINGS = BENCH_SETTINGS


@dataclass(frozen=True)
class Flow:
    """One caller verified by one agent: the plugin's clicks, with a realistic share of detours."""

    to: str
    known: bool  # a sample customer (customer-info 200) or a caller unknown to the CRM (404)
    resend: bool = False  # the agent clicks "send" again before the caller reads the code
    misread: bool = False  # the caller reads a wrong code first (401), then the right one
    early: bool = False  # the agent asks for the customer before checking (403 not_verified)


@dataclass
class Call:
    endpoint: str
    status: int
    code: str  # "ok" or the contract's error.code (or "gateway" for a body without one)
    expected: bool
    seconds: float
    at: float = 0.0  # when it was answered (perf_counter)


@dataclass
class Tally:
    calls: list[Call] = field(default_factory=list)
    sends: Counter[str] = field(default_factory=Counter)  # to → start-verify answered 200
    flows_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call, to: str) -> None:
        with self.lock:
            self.calls.append(call)
            if call.endpoint == "start-verify" and call.status == 200:
                self.sends[to] += 1


class Agent:
    """One simulated agent: a Flex token and a keep-alive HTTP session, like one browser tab."""

    def __init__(self, api: str, outbox: str, token: str, tally: Tally) -> None:
        self.api, self.outbox, self.token, self.tally = api, outbox, token, tally
        self.http = requests.Session()

    def run(self, flow: Flow) -> None:
        self._start(flow.to)
        if flow.resend:
            self._start(flow.to)
        code = self._code(flow.to)
        if flow.early:
            self._customer(flow.to, expect=(403, "not_verified"))
        if flow.misread:
            wrong = "000000" if code != "000000" else "111111"
            self._call("check-verify", {"to": flow.to, "verification_code": wrong}, expect=(401, "incorrect_code"))
        self._call("check-verify", {"to": flow.to, "verification_code": code}, expect=(200, "ok"))
        self._customer(flow.to, expect=(200, "ok") if flow.known else (404, "customer_not_found"))
        with self.tally.lock:
            self.tally.flows_done += 1

    def _start(self, to: str) -> None:
        self._call("start-verify", {"to": to}, expect=(200, "ok"))

    def _customer(self, to: str, expect: tuple[int, str]) -> None:
        self._call("customer-info", {"to": to}, expect=expect, get=True)

    def _code(self, to: str) -> str:
        answer = self.http.get(self.outbox, params={"to": to}, timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
        return str(answer.json()[-1]["code"])

    def _call(self, endpoint: str, fields: dict[str, str], *, expect: tuple[int, str], get: bool = False) -> Call:
        url = f"{self.api}/{endpoint}"
        began = time.perf_counter()
        if get:
            answer = self.http.get(url, params=fields, headers={"X-Flex-Token": self.token}, timeout=HTTP_TIMEOUT)
        else:
            body = {**fields, "Token": self.token}
            answer = self.http.post(url, data=body, headers={"Content-Type": FORM}, timeout=HTTP_TIMEOUT)
        done = time.perf_counter()
        code = _error_code(answer)
        call = Call(endpoint, answer.status_code, code, (answer.status_code, code) == expect, done - began, done)
        self.tally.add(call, fields["to"])
        return call


def _error_code(answer: requests.Response) -> str:
    if answer.status_code < 400:
        return "ok"
    try:
        return str(answer.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "gateway"  # not the contract's shape: API Gateway's own error (a crash, a timeout)


def plan(flows: int, workers: int) -> list[list[Flow]]:
    """Each worker's flows. One sample customer's flows go to one worker, so that two agents never verify
    the same caller at the same moment (the sandbox would re-send one code to both, as Twilio does)."""
    rng = random.Random(SEED)  # noqa: S311 - a reproducible plan, not a secret
    known = [
        # No early click here: the agent's approval from an earlier flow for this caller would still hold.
        Flow(to, known=True, misread=rng.random() < 0.1)
        for to in SAMPLE_CUSTOMERS
        for _ in range(FLOWS_PER_SAMPLE_CUSTOMER)
    ][:flows]
    unknown = [
        Flow(
            f"+1312555{1000 + i:04d}",
            known=False,
            resend=rng.random() < 0.15,
            misread=rng.random() < 0.1,
            early=rng.random() < 0.05,
        )
        for i in range(flows - len(known))
    ]
    lanes: list[list[Flow]] = [[] for _ in range(workers)]
    for flow in known:
        lanes[SAMPLE_CUSTOMERS.index(flow.to) % workers].append(flow)
    for i, flow in enumerate(unknown):
        lanes[i % workers].append(flow)
    for lane in lanes:
        rng.shuffle(lane)  # same-caller flows stay in one lane, so never concurrent
    return lanes


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def main() -> int:
    from devserver.stack import start_stack

    tally, warm_up = Tally(), Tally()
    with contextlib.ExitStack() as stack_scope:
        captured, metrics = io.StringIO(), io.StringIO()
        stack_scope.enter_context(contextlib.redirect_stderr(captured))
        stack_scope.enter_context(contextlib.redirect_stdout(metrics))  # EMF lines, if any
        stack = stack_scope.enter_context(
            start_stack(ROOT, api_port=0, sandbox_port=0, dynamodb_port=0, env=SETTINGS, announce=lambda _: None)
        )
        if stack.sandbox is None or stack.outbox_url is None or stack.gateway is None:
            raise SystemExit("bench.load: the dev stack did not start its Twilio sandbox; refusing to load real Twilio")
        stack.gateway.log = lambda _line: None  # one stderr line per request otherwise
        for url in (stack.api_url, stack.outbox_url, stack.dynamodb_url):
            assert url.startswith("http://127.0.0.1:"), url
        tokens = [_token(stack.sandbox_url or "", f"load-agent-{i}") for i in range(WORKERS)]

        # Warm-up (cold starts of the three functions), not measured: one unknown caller.
        warm = Agent(stack.api_url, stack.outbox_url, _token(stack.sandbox_url or "", "warm-up"), warm_up)
        warm.run(Flow("+13125559999", known=False))

        lanes = plan(FLOWS, WORKERS)
        deadline = time.monotonic() + TIME_CAP_SECONDS
        began = time.perf_counter()
        threads = [
            threading.Thread(
                target=_work,
                args=(Agent(stack.api_url, stack.outbox_url, tokens[i], tally), lanes[i], deadline),
                name=f"agent-{i}",
            )
            for i in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began

        outbox = requests.get(stack.outbox_url, timeout=HTTP_TIMEOUT).json()
        table = _table_view(stack.dynamodb_url, stack.table_names["StateTable"])
    return report(tally, warm_up, outbox, table, wall, captured.getvalue())


def _work(agent: Agent, flows: list[Flow], deadline: float) -> None:
    for flow in flows:
        if time.monotonic() >= deadline:
            return
        agent.run(flow)


def _token(sandbox_url: str, identity: str) -> str:
    answer = requests.post(f"{sandbox_url}/agent-tokens", json={"identity": identity}, timeout=HTTP_TIMEOUT)
    answer.raise_for_status()
    return str(answer.json()["token"])


def _table_view(dynamodb_url: str, table: str) -> dict[str, int]:
    """What the state table says: sends counted by the deployment counters, and audit events."""
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
    )
    counted = audited = items = 0
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            items += 1
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if pk.startswith("DEPLOYMENT#") and sk.startswith("SENDS#60#"):  # every shard's minute counters
                counted += int(item.get("own", {"N": "0"})["N"])  # each send counts once as its own minute's
            elif sk.startswith("AUDIT#"):
                audited += 1
    return {"counted": counted, "audited": audited, "items": items}


def _trend(calls: list[Call]) -> str:
    """Median latency of the first and of the last quarter of the answers, in time order."""
    ordered = sorted(calls, key=lambda c: c.at)
    quarter = max(1, len(ordered) // 4)
    first = sorted(c.seconds * 1000 for c in ordered[:quarter])
    last = sorted(c.seconds * 1000 for c in ordered[-quarter:])
    return (
        f"p50 {percentile(first, 0.5):.1f} ms in the first quarter of the run, "
        f"{percentile(last, 0.5):.1f} ms in the last quarter"
    )


def _iter_rows(calls: list[Call], wall: float) -> Iterator[tuple[str, ...]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        groups[call.endpoint].append(call.seconds * 1000)
        groups["all"].append(call.seconds * 1000)
    for name in (*ENDPOINTS, "all"):
        values = sorted(groups.get(name, []))
        if not values:
            continue
        yield (
            name,
            str(len(values)),
            f"{len(values) / wall:.1f}",
            *(f"{percentile(values, q):.1f}" for q in (0.5, 0.9, 0.99)),
            f"{values[-1]:.1f}",
        )


def report(
    tally: Tally, warm_up: Tally, outbox: list[dict[str, Any]], table: dict[str, int], wall: float, stderr: str
) -> int:
    calls = tally.calls
    print(
        f"\nbench.load: {tally.flows_done} flows ({FLOWS} planned, cap {TIME_CAP_SECONDS:.0f} s) by {WORKERS} agents "
        f"(threads, one Flex token each): {len(calls)} requests in {wall:.1f} s over loopback "
        f"(after {len(warm_up.calls)} unmeasured warm-up requests: the cold starts)"
    )
    print(
        "note: the dev gateway runs each function like ONE warm container: calls to the same function are\n"
        "serialised, so concurrency is at most one request per function; moto, the Twilio sandbox, the gateway\n"
        "and the agents all share this process (one GIL). Figures of this machine and run, not of Lambda.\n"
    )
    header = ("endpoint", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms")
    rows = [header, *_iter_rows(calls, wall)]
    width = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width[0]) if i == 0 else cell.rjust(width[i]) for i, cell in enumerate(row)))

    if calls:
        print("\ntrend: " + _trend(calls))

    everything = calls + warm_up.calls
    planned = Counter(f"{c.endpoint} {c.status} {c.code}" for c in everything if c.expected and c.code != "ok")
    unexpected = Counter(f"{c.endpoint} {c.status} {c.code}" for c in everything if not c.expected)
    server_errors = sum(1 for c in everything if c.status >= 500)
    print(
        "\nplanned refusals (misread codes, early clicks, callers unknown to the CRM): " + (_counts(planned) or "none")
    )
    print("errors by code (answers that were not the expected one): " + (_counts(unexpected) or "none"))
    print(f"5xx answers: {server_errors}")

    answered = tally.sends + warm_up.sends
    sent = Counter(str(message["to"]) for message in outbox)
    lost = sum(max(0, n - sent[to]) for to, n in answered.items())
    duplicated = sum(max(0, sent[to] - answered[to]) for to in sent)
    print(
        f"sends: {sum(answered.values())} start-verify answered 200, {len(outbox)} messages in the sandbox outbox: "
        f"{lost} lost, {duplicated} duplicated"
    )
    print(
        f"state table: {table['counted']} sends in the deployment counters; {table['audited']} audit events "
        f"for {len(everything)} requests"
    )
    crashes = stderr.count("RuntimeError: dictionary changed size during iteration")
    if crashes:
        print(
            f"moto: {crashes} transaction(s) crashed on a concurrent write (HTTP 500 to botocore, which retries once)"
        )
    if server_errors or ("Traceback" in stderr and not crashes):
        print("stack stderr (tail):\n" + stderr[-3000:])
    failed = lost or duplicated or server_errors
    print("\nresult: " + ("FAIL" if failed else "ok: no send lost or duplicated, no 5xx"))
    return 1 if failed else 0


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key}: {n}" for key, n in sorted(counter.items()))


if __name__ == "__main__":
    sys.exit(main())
