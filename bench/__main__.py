"""`make bench`: the performance budgets, measured on the artefact Lambda runs (`.aws-sam/build`).

- Cold start: CPU time (user + sys, from wait4) of a fresh Python 3.13 process that imports a handler
  from the built function and layer, builds it (secrets through Powertools Parameters, from Secrets
  Manager in moto) and answers one real request against the local stack. The floor is the same kind of
  process doing the minimum: import boto3, make a DynamoDB client, one GetItem. The conventional
  handler (bench/conventional/app.py) answers the same requests. Every round runs each of them once,
  in an order that alternates, and each figure is a per-round paired ratio (ours_i / floor_i,
  ours_i / conventional_i): min, median, max; the verdict is on the median.
- Environment shaped like the Lambda runtime: sys.path is the function's code, the layer's python/
  and boto3 + botocore without awscrt (bench/runtime-requirements.txt, installed once under
  bench/.build), PYTHONDONTWRITEBYTECODE as /opt and /var/task are read-only, `python3.13 -S`.
- Peak memory: ru_maxrss of the handler process itself (spawned by bench/launch.py, not by this big
  process, whose high-water mark a child would inherit).
- HTTP attempts per request, retries included, counted at the transports in separate (untimed) runs.
- Warm overhead: the built handlers over stub adapters, in a Python 3.13 process.
Exits 1 when a figure misses its budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT)]
BUILD = Path(os.environ.get("BENCH_BUILD") or ROOT / ".aws-sam" / "build")  # another build: for before/after
LAYER = BUILD / "CoreLayer" / "python"
CACHE = ROOT / "bench" / ".build"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))
WARM_CALLS = int(os.environ.get("BENCH_WARM_CALLS", "3000"))
PROFILE = os.environ.get("BENCH_PROFILE", "")  # a handler (start_verify, ...): profile its cold start only
# Instruction counts (deterministic) when valgrind is installed; BENCH_VALGRIND=0 to skip them.
VALGRIND = shutil.which("valgrind") if os.environ.get("BENCH_VALGRIND") != "0" else None
FORM = "application/x-www-form-urlencoded;charset=UTF-8"
FUNCTIONS = {
    "start_verify": "StartVerifyFunction",
    "check_verify": "CheckVerifyFunction",
    "customer_info": "CustomerInfoFunction",
}

BUDGETS = {  # docs/performance.md
    "floor start_verify": 1.25,
    "floor check_verify": 1.25,
    "floor customer_info": 1.15,
    "conventional start_verify": 0.8,
    "conventional check_verify": 0.8,
    "peak MB": 90.0,
    "warm median ms": 2.0,
}
# Per request, warm: (Twilio exactly, DynamoDB at most, IAM at most). DynamoDB and Twilio attempts include retries.
CALL_BUDGETS = {
    # Lookup on (the default): a number not seen today costs Lookup + Verify and the cache read; then Verify only.
    "start-verify (new number)": (2, 3, 1),
    "start-verify (number seen today)": (1, 3, 1),
    "cancel-verify": (1, 2, 0),
    "check-verify": (1, 2, 1),
    "customer-info": (0, 2, 1),
}

Row = tuple[str, str, str, bool]


def main() -> int:
    python = _python313()
    layer_ok = _layer_check(python)
    runtime = _install(python, "runtime", (ROOT / "bench" / "runtime-requirements.txt").read_text())
    # The conventional handler uses Powertools' event handler and twilio's generated resources (client.verify,
    # client.lookups), which the layer leaves out: the same pinned versions, untrimmed, ahead of the layer.
    untrimmed = [
        line.strip()
        for line in (ROOT / "layers/core/requirements.txt").read_text().splitlines()
        if line.startswith(("aws-lambda-powertools", "twilio"))
    ]
    conventional_extra = _install(python, "conventional", "\n".join(untrimmed) + "\n")

    import boto3

    from devserver.samples import BENCH_SETTINGS
    from devserver.stack import start_stack

    settings = {**BENCH_SETTINGS, "AGENT_AUTH": "flex"}
    rows: list[Row] = [layer_ok]
    with (
        contextlib.redirect_stderr(io.StringIO()),
        start_stack(ROOT, api_port=0, sandbox_port=0, dynamodb_port=0, env=settings, announce=lambda _: None) as stack,
    ):
        assert stack.sandbox is not None and stack.dynamodb_url
        env = _lambda_env(boto3, stack.dynamodb_url)
        api = Api(stack.api_url, stack.outbox_url or "")
        token = stack.sandbox.issue_token("bench-agent", ["agent"])
        ours = {f: [str(BUILD / FUNCTIONS[f]), str(LAYER), runtime] for f in FUNCTIONS}
        conventional = [str(ROOT / "bench" / "conventional"), conventional_extra, str(LAYER), runtime]
        runner = Runner(python, env)
        events = Events(api, token)
        floor_table = env["CUSTOMERS_TABLE"]

        if PROFILE:  # one cold start under cProfile instead of the measurements (where the CPU goes)
            return _profile(runner, {"path": ours[PROFILE], "app": _app(PROFILE), "events": [events.make(PROFILE)]})
        samples: dict[str, list[dict[str, Any]]] = {}
        for round_ in range(ROUNDS):
            # Per handler, a triple run back to back: the floor, ours and the conventional handler, each
            # answering a request of its own made alike (a code is checked once); the order alternates.
            for function in FUNCTIONS:
                first, second = events.make(function), events.make(function)
                triple: list[tuple[str, dict[str, Any]]] = [
                    (f"floor {function}", {"path": [runtime], "floor": floor_table}),
                    (f"ours {function}", {"path": ours[function], "app": _app(function), "events": [first]}),
                    (
                        f"conventional {function}",
                        {"path": conventional, "app": _conventional_app(), "events": [second]},
                    ),
                ]
                for name, spec in triple if round_ % 2 == 0 else triple[::-1]:
                    samples.setdefault(name, []).append(runner.run(spec, name))
        init = [runner.run({"path": ours["start_verify"], "app": _app("start_verify"), "events": []}, "init")]
        init += [runner.run({"path": ours["start_verify"], "app": _app("start_verify"), "events": []}, "init")]
        init += [runner.run({"path": ours["start_verify"], "app": _app("start_verify"), "events": []}, "init")]
        samples["init start_verify"] = init

        counted = _instructions(runner, events, ours, conventional, {"path": [runtime], "floor": floor_table})
        rows += _cold_rows(samples, counted)
        rows += _call_rows(runner, events, ours, conventional)
        rows += _taskrouter_rows(Runner(python, env), events, ours, stack.sandbox.taskrouter)
    rows += _warm_rows(python, runtime, env)
    _print(rows)
    return 0 if all(ok for *_, ok in rows) else 1


def _profile(runner: Runner, spec: dict[str, Any]) -> int:
    """Runs one cold start under cProfile and prints where its time went (not a measurement: cProfile
    slows every call it records)."""
    import pstats

    with tempfile.TemporaryDirectory() as scratch:
        stats = os.environ.get("BENCH_PROFILE_OUT") or str(Path(scratch) / "cold.prof")  # to keep it
        runner.run({**spec, "profile": stats}, f"profile {PROFILE}")
        for order in ("tottime", "cumulative"):
            pstats.Stats(stats, stream=sys.stdout).strip_dirs().sort_stats(order).print_stats(40)
        if callers := os.environ.get("BENCH_PROFILE_CALLERS"):  # e.g. list_available_services
            pstats.Stats(stats, stream=sys.stdout).strip_dirs().print_callers(callers)
    return 0


# ----------------------------------------------------------------------------------------- environment


def _python313() -> str:
    pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False).stdout.strip()
    candidates = sorted(Path(pyenv).glob("versions/3.13*/bin/python3.13")) if pyenv else []
    found = str(candidates[-1]) if candidates else shutil.which("python3.13")
    if not found:
        raise SystemExit("bench: Python 3.13 (the Lambda runtime's) is needed: the layer's bytecode is for 3.13")
    if not LAYER.is_dir():
        raise SystemExit("bench: no built layer; run `make build` first (make bench does)")
    return found


def _layer_check(python: str) -> Row:
    done = subprocess.run(
        [python, str(ROOT / "layers/core/tools/layer.py"), "check", str(LAYER)], capture_output=True, text=True
    )
    size = next((line for line in done.stdout.splitlines() if "MB unzipped" in line), done.stdout)
    measured = size.removeprefix("layer: ").split(" (")[0]
    if done.returncode:
        measured += " - " + done.stderr.strip().replace("\n", "; ")
    return ("layer (.aws-sam/build), unzipped, 3.13 bytecode", measured, "<= 12 MB, all compiled", done.returncode == 0)


def _install(python: str, name: str, requirements: str) -> str:
    """A --target directory of pinned wheels for 3.13, made once (keyed by the requirements)."""
    stamp = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    target = CACHE / f"{name}-{stamp}"
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
            file.write(requirements)
            file.flush()
            done = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore",
                 "--no-deps", "--only-binary=:all:", "--target", str(target), "-r", file.name],
                capture_output=True, text=True,
            )  # fmt: skip
        if done.returncode:
            raise SystemExit(f"bench: could not install {name} for Python 3.13:\n{done.stderr}")
        (target / ".complete").touch()
    return str(target)


def _lambda_env(boto3: Any, moto_url: str) -> dict[str, str]:
    """The handlers' environment as in the cloud: secrets by ARN (in moto), none in the environment."""
    secrets = boto3.client("secretsmanager", endpoint_url=moto_url)
    twilio = {key: os.environ[key] for key in ("ACCOUNT_SID", "AUTH_TOKEN", "VERIFY_SERVICE_SID")}
    suffix = os.urandom(4).hex()
    twilio_arn = secrets.create_secret(Name=f"twilio-{suffix}", SecretString=json.dumps(twilio))["ARN"]
    hash_arn = secrets.create_secret(Name=f"hash-{suffix}", SecretString=os.environ["HASH_SECRET"])["ARN"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ACCOUNT_SID", "AUTH_TOKEN", "VERIFY_SERVICE_SID", "HASH_SECRET")
    }
    lambda_vars = {"AWS_LAMBDA_FUNCTION_NAME": "callerauth-bench", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13"}
    if os.environ.get("BENCH_GC_PAUSE") == "0":  # to measure what callerauth's cold-start GC pause buys
        lambda_vars = {}
    return (
        env
        | lambda_vars
        | {
            "TWILIO_SECRET_ARN": twilio_arn,
            "HASH_SECRET_ARN": hash_arn,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
            "POWERTOOLS_LOG_LEVEL": "INFO",  # as deployed
            "POWERTOOLS_METRICS_DISABLED": "false",  # EMF lines to stdout, as in Lambda
            "PYTHONDONTWRITEBYTECODE": "1",  # /opt and /var/task are read-only in Lambda
            "PYTHONPATH": "",
            "PATH": "/usr/bin:/bin",
        }
    )


def _app(function: str) -> str:
    return str(BUILD / FUNCTIONS[function] / "app.py")


def _conventional_app() -> str:
    return str(ROOT / "bench" / "conventional" / "app.py")


class Runner:
    """Runs one spec of bench/coldstart.py through bench/launch.py: its own CPU time and peak memory; or
    under valgrind, the instructions it executes."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.python, self.env = python, env
        self.out = tempfile.mkdtemp(prefix="bench-")

    def _coldstart(self, spec: dict[str, Any]) -> list[str]:
        return [self.python, "-S", str(ROOT / "bench" / "coldstart.py"), json.dumps(spec)]

    def run(self, spec: dict[str, Any], name: str) -> dict[str, Any]:
        stdout = os.path.join(self.out, "child.out")
        argv = self._coldstart(spec)
        launch = [self.python, "-S", "-I", str(ROOT / "bench" / "launch.py")]
        done = subprocess.run(
            [*launch, json.dumps({"argv": argv, "env": self.env, "stdout": stdout})],
            capture_output=True, text=True, check=True, cwd=self.out,
        )  # fmt: skip
        figures = json.loads(done.stdout)
        output = Path(stdout).read_text()
        if figures["exit"] != 0:
            raise SystemExit(f"bench: {name} exited {figures['exit']}:\n{output[-3000:]}")
        answers = json.loads(output.strip().splitlines()[-1])["answers"]
        for answer in answers:
            if answer["status"] != 200:
                raise SystemExit(f"bench: {name} answered {answer['status']}: {answer}")
        return figures | {"answers": answers}

    def instructions(self, spec: dict[str, Any], name: str) -> int:
        counts = os.path.join(self.out, "callgrind.out")
        assert VALGRIND
        done = subprocess.run(
            [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={counts}", *self._coldstart(spec)],
            env=self.env | {"PYTHONHASHSEED": "0"}, capture_output=True, text=True, cwd=self.out,
        )  # fmt: skip
        answers = json.loads(done.stdout.strip().splitlines()[-1])["answers"] if done.returncode == 0 else []
        if not answers or any(answer["status"] != 200 for answer in answers):
            raise SystemExit(f"bench: {name} under valgrind failed:\n{(done.stdout + done.stderr)[-3000:]}")
        summary = next(line for line in Path(counts).read_text().splitlines() if line.startswith("summary:"))
        return int(summary.split()[1])


class Api:
    """The bench's own HTTP client to the local stack, to prepare the state a request needs."""

    def __init__(self, base: str, outbox: str) -> None:
        self.base, self.outbox = base, outbox

    def post(self, path: str, **fields: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base}{path}", urllib.parse.urlencode(fields).encode(), {"Content-Type": FORM}
        )
        with urllib.request.urlopen(request) as answer:
            return dict(json.load(answer))

    def code_for(self, to: str) -> str:
        with urllib.request.urlopen(f"{self.outbox}?{urllib.parse.urlencode({'to': to})}") as answer:
            return str(json.load(answer)[-1]["code"])


class Events:
    """Real, successful requests as API Gateway events; the state each needs is made over HTTP first."""

    def __init__(self, api: Api, token: str) -> None:
        self.api, self.token, self.numbers = api, token, iter(range(10_000))
        self.approved = "+12025550100"  # a sample customer; one approval lasts all the runs
        api.post("/start-verify", to=self.approved, Token=token)
        api.post("/check-verify", to=self.approved, verification_code=api.code_for(self.approved), Token=token)

    def number(self) -> str:
        return f"+1312555{next(self.numbers):04d}"

    def make(self, function: str, to: str | None = None, task: str | None = None) -> dict[str, Any]:
        named = {"Token": self.token} | ({"taskSid": task} if task else {})
        if function == "start_verify":
            return _event("POST", "/start-verify", {"to": to or self.number(), **named})
        if function == "cancel_verify":
            return _event("POST", "/cancel-verify", {"to": to or self.number(), **named})
        if function == "check_verify":
            to = to or self.number()
            self.api.post("/start-verify", to=to, Token=self.token)
            fields = {"to": to, "verification_code": self.api.code_for(to), **named}
            return _event("POST", "/check-verify", fields)
        return _event("GET", "/customer-info", {"to": to or self.approved, **named})

    def approve(self, to: str, task: str) -> None:
        """An approval of ``to`` bound to ``task`` (made through the stack, which checks no task)."""
        self.api.post("/start-verify", to=to, Token=self.token, taskSid=task)
        self.api.post("/check-verify", to=to, verification_code=self.api.code_for(to), Token=self.token, taskSid=task)


def _event(method: str, path: str, fields: dict[str, str]) -> dict[str, Any]:
    """The request, as API Gateway hands it to the function; a GET carries the token in its header."""
    from devserver.events import rest_proxy_event

    fields = dict(fields)
    headers = {"Content-Type": FORM}
    if method == "GET":
        headers["X-Flex-Token"] = fields.pop("Token", "")
        return rest_proxy_event(method, path, headers=headers, query=fields, request_id="bench")
    return rest_proxy_event(method, path, headers=headers, body=urllib.parse.urlencode(fields), request_id="bench")


# ---------------------------------------------------------------------------------------------- figures


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x (min {min(values):.2f}, max {max(values):.2f})"


def _instructions(
    runner: Runner, events: Events, ours: dict[str, list[str]], conventional: list[str], floor: dict[str, Any]
) -> dict[str, int]:
    """Instructions each cold start executes (valgrind's callgrind, one run each, hash seed fixed): the same
    processes as the timed rounds, but a count that does not move with the machine's other load. Empty
    without valgrind (the verdicts are then on the CPU medians)."""
    if not VALGRIND or PROFILE:
        return {}
    specs: dict[str, dict[str, Any]] = {"floor": floor}
    for function in FUNCTIONS:
        specs[f"ours {function}"] = {"path": ours[function], "app": _app(function), "events": [events.make(function)]}
    for function in ("start_verify", "check_verify"):
        spec = {"path": conventional, "app": _conventional_app(), "events": [events.make(function)]}
        specs[f"conventional {function}"] = spec
    return {name: runner.instructions(spec, name) for name, spec in specs.items()}


def _count(counted: dict[str, int], ours: str, theirs: str) -> tuple[float, str] | None:
    if ours not in counted or theirs not in counted:
        return None
    return counted[ours] / counted[theirs], f"{counted[ours] / 1e6:.1f} M / {counted[theirs] / 1e6:.1f} M"


def _verdict_rows(
    figure: str, cpu: str, cpu_median: float, budget: float | None, count: tuple[float, str] | None
) -> list[Row]:
    """The paired CPU ratio and, with instruction counts, the count's ratio: the verdict is the count's when
    there is one (it does not move with the machine's load), the CPU median's otherwise."""
    limit = f"<= {budget}x" if budget else "(shown)"
    if count is None:
        return [(f"cold start {figure}", cpu, limit, budget is None or cpu_median <= budget)]
    ratio, counts = count
    return [
        (f"cold start {figure}", cpu, "(shown; verdict on instructions)" if budget else "(shown)", True),
        (f"instructions {figure}", f"{ratio:.3f}x ({counts})", limit, budget is None or ratio <= budget),
    ]


def _cold_rows(samples: dict[str, list[dict[str, Any]]], counted: dict[str, int]) -> list[Row]:
    every_floor = [s["cpu"] for function in FUNCTIONS for s in samples[f"floor {function}"]]
    rows: list[Row] = [
        (
            f"cold start floor CPU, {ROUNDS} rounds x {len(FUNCTIONS)}",
            f"median {statistics.median(every_floor) * 1000:.0f} ms (min {min(every_floor) * 1000:.0f}, "
            f"max {max(every_floor) * 1000:.0f})",
            "",
            True,
        )
    ]
    for function in FUNCTIONS:
        floor = [s["cpu"] for s in samples[f"floor {function}"]]
        mine = [s["cpu"] for s in samples[f"ours {function}"]]
        theirs = [s["cpu"] for s in samples[f"conventional {function}"]]
        vs_floor = [m / f for m, f in zip(mine, floor, strict=True)]
        vs_conventional = [m / t for m, t in zip(mine, theirs, strict=True)]
        rows += _verdict_rows(
            f"{function} / floor",
            f"{_spread(vs_floor)}; {statistics.median(mine) * 1000:.0f} ms",
            statistics.median(vs_floor),
            BUDGETS[f"floor {function}"],
            _count(counted, f"ours {function}", "floor"),
        )
        rows += _verdict_rows(
            f"{function} / conventional",
            f"{_spread(vs_conventional)}; theirs {statistics.median(theirs) * 1000:.0f} ms",
            statistics.median(vs_conventional),
            BUDGETS.get(f"conventional {function}"),
            _count(counted, f"ours {function}", f"conventional {function}"),
        )
    init = statistics.median(s["cpu"] for s in samples["init start_verify"])
    cold = statistics.median(s["cpu"] for s in samples["ours start_verify"])
    rows.append(
        (
            "init (import only) of start_verify, of its cold start",
            f"{init * 1000:.0f} ms, {init / cold:.0%} (what a SnapStart snapshot holds today)",
            "(shown)",
            True,
        )
    )
    for who in ("ours", "conventional"):
        peak = max(s["maxrss_kb"] for name, runs in samples.items() if name.startswith(who) for s in runs) / 1024
        budget = BUDGETS["peak MB"]
        rows.append(
            (
                f"peak memory of a handler process ({who})",
                f"{peak:.1f} MiB",
                f"< {budget:.0f} MiB" if who == "ours" else "(shown)",
                who != "ours" or peak < budget,
            )
        )
    return rows


def _call_rows(runner: Runner, events: Events, ours: dict[str, list[str]], conventional: list[str]) -> list[Row]:
    """Each handler's requests, warm (after one request), in a counting process; then IAM's cache."""
    to, checked = events.number(), events.number()
    plans = {
        "start_verify": [
            events.make("start_verify"),
            events.make("start_verify", to),
            events.make("start_verify", to),
            events.make("cancel_verify", to),
        ],
        "check_verify": [events.make("check_verify"), events.make("check_verify", checked)],
        "customer_info": [events.make("customer_info"), events.make("customer_info")],
    }
    names = {
        "start_verify": ["start-verify (new number)", "start-verify (number seen today)", "cancel-verify"],
        "check_verify": ["check-verify"],
        "customer_info": ["customer-info"],
    }
    rows: list[Row] = []
    for function, plan in plans.items():
        answers = runner.run({"path": ours[function], "app": _app(function), "events": plan, "count": True}, function)[
            "answers"
        ]
        first = answers[0]["calls"]
        rows.append(
            (
                f"calls of a cold {function} (first request)",
                _calls(first | {k: v for k, v in answers[0]["init_calls"].items()}),
                "Secrets Manager <= 2",
                first.get("secretsmanager", 0) + answers[0]["init_calls"].get("secretsmanager", 0) <= 2,
            )
        )
        for endpoint, answer in zip(names[function], answers[1:], strict=True):
            calls = answer["calls"]
            twilio, dynamodb, iam = CALL_BUDGETS[endpoint]
            ok = (
                calls.get("twilio", 0) == twilio and calls.get("dynamodb", 0) <= dynamodb and calls.get("iam", 0) <= iam
            )
            ok = ok and calls.get("secretsmanager", 0) == 0
            if endpoint == "customer-info":  # the same token as the request before: IAM's answer is cached
                ok = ok and calls.get("iam", 0) == 0
            rows.append(
                (
                    f"calls per {endpoint} (warm)",
                    _calls(calls),
                    f"Twilio {twilio}, DynamoDB <= {dynamodb}, IAM <= {iam}",
                    ok,
                )
            )
    theirs = runner.run(
        {"path": conventional, "app": _conventional_app(), "events": [events.make("start_verify")], "count": True},
        "conventional",
    )["answers"][0]
    rows.append(
        ("calls of a cold conventional start-verify", _calls(theirs["calls"] | theirs["init_calls"]), "(shown)", True)
    )
    return rows


def _taskrouter_rows(runner: Runner, events: Events, ours: dict[str, list[str]], router: Any) -> list[Row]:
    """With TASKROUTER_WORKSPACE_SID: each handler warm, a task it has not looked at (a fresh look: the task
    and the holder's reservation, 2 HTTP requests), then the same task again within 30 s (0: remembered)."""
    runner.env = runner.env | {"TASKROUTER_WORKSPACE_SID": router.workspace_sid}

    def task(to: str) -> str:
        return str(router.create_task(to, "bench-agent"))

    n = [events.number() for _ in range(4)] + ["+12025550101", "+12025550102"]  # the last two: sample customers
    t = [task(to) for to in n]
    events.approve(n[4], t[4])
    events.approve(n[5], t[5])
    plans = {
        "start_verify": [
            events.make("start_verify", n[0], t[0]),
            events.make("start_verify", n[1], t[1]),
            events.make("start_verify", n[1], t[1]),
            events.make("cancel_verify", n[1], t[1]),
        ],
        "check_verify": [events.make("check_verify", n[2], t[2]), events.make("check_verify", n[3], t[3])],
        "customer_info": [
            events.make("customer_info", n[4], t[4]),
            events.make("customer_info", n[5], t[5]),
            events.make("customer_info", n[5], t[5]),
        ],
    }
    names = {
        "start_verify": ["start-verify (a task not seen)", "start-verify (the same task)", "cancel-verify (the same)"],
        "check_verify": ["check-verify (a task not seen)"],
        "customer_info": ["customer-info (a task not seen)", "customer-info (the same task)"],
    }
    rows: list[Row] = []
    for function, plan in plans.items():
        spec = {"path": ours[function], "app": _app(function), "events": plan, "count": True}
        answers = runner.run(spec, f"taskrouter {function}")["answers"]
        for name, answer in zip(names[function], answers[1:], strict=True):
            calls = answer["calls"]
            most = 2 if "not seen" in name else 0
            # A start also asks Lookup for a number not seen today, after reading its cache (one more call).
            start = name.startswith("start-verify")
            twilio = 0 if "customer-info" in name else 2 if start and "not seen" in name else 1
            dynamodb = 3 if start else 2
            ok = calls.get("taskrouter", 0) <= most and calls.get("dynamodb", 0) <= dynamodb
            ok = ok and calls.get("twilio", 0) == twilio
            rows.append(
                (
                    f"TaskRouter on: calls per {name} (warm)",
                    _calls(calls),
                    f"TaskRouter <= {most}, Twilio {twilio}, DynamoDB <= {dynamodb}",
                    ok,
                )
            )
    return rows


def _calls(calls: dict[str, int]) -> str:
    names = {
        "twilio": "Twilio",
        "taskrouter": "TaskRouter",
        "dynamodb": "DynamoDB",
        "iam": "IAM",
        "secretsmanager": "Secrets Manager",
    }
    return ", ".join(f"{label} {calls.get(key, 0)}" for key, label in names.items())


def _warm_rows(python: str, runtime: str, env: dict[str, str]) -> list[Row]:
    code = (
        "import sys, json; sys.path[:0] = json.loads(sys.argv[1]);from bench.warm import main; main(int(sys.argv[2]))"
    )
    path = [str(LAYER), runtime, str(ROOT)]
    done = subprocess.run(
        [python, "-S", "-c", code, json.dumps(path), str(WARM_CALLS)],
        capture_output=True, text=True, check=True, env=env, cwd=ROOT,
    )  # fmt: skip
    rows: list[Row] = []
    for endpoint, (median_ms, p99_ms) in json.loads(done.stdout.strip().splitlines()[-1]).items():
        budget = BUDGETS["warm median ms"]
        rows.append(
            (
                f"warm overhead {endpoint}",
                f"median {median_ms:.3f} ms, p99 {p99_ms:.3f} ms",
                f"median < {budget} ms",
                median_ms < budget,
            )
        )
    return rows


def _print(rows: list[Row]) -> None:
    width = [max(len(str(row[i])) for row in rows) for i in range(3)]
    print(f"\n{'figure'.ljust(width[0])}  {'measured'.ljust(width[1])}  {'budget'.ljust(width[2])}  ok")
    for name, measured, budget, ok in rows:
        print(f"{name.ljust(width[0])}  {measured.ljust(width[1])}  {budget.ljust(width[2])}  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
