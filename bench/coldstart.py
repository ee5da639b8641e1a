"""One cold start, in this fresh interpreter: import a handler, build it, answer its request(s).

Run by bench/launch.py (itself run by bench/__main__.py) as
`python3.13 -S bench/coldstart.py <spec json>`, with spec:
- "path": the directories put first on sys.path, as Lambda's are (function code, layer, runtime's boto3);
- "app": the handler module's file, and "events": the API Gateway events it answers, in order;
  or "floor": a table name, for the floor (import boto3, make a DynamoDB client, one GetItem);
- "count": count HTTP attempts at the transports (only in runs that are not timed);
- "profile": a file to write cProfile's statistics of the whole cold start to (`BENCH_PROFILE`, untimed).
Prints one JSON line (last on stdout): each answer's status and, when counting, its attempts; then
exits without the interpreter's teardown.
"""

import json
import os
import sys
import uuid
from collections import Counter
from importlib.util import module_from_spec, spec_from_file_location


class Context:
    aws_request_id = str(uuid.uuid4())
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 256
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def main() -> None:
    spec = json.loads(sys.argv[1])
    sys.path[:0] = spec["path"]
    counts: Counter[str] = _counting() if spec.get("count") else Counter()
    answers = []
    if spec.get("profile"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    if "floor" in spec:
        import boto3

        client = boto3.client("dynamodb")
        client.get_item(TableName=spec["floor"], Key={"phone": {"S": "+12025550100"}})
        answers.append({"status": 200, "calls": dict(counts)})
    else:
        module_spec = spec_from_file_location("app", spec["app"])
        assert module_spec and module_spec.loader
        module = module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        init = dict(counts)
        for event in spec["events"]:
            before = Counter(counts)
            answer = module.lambda_handler(event, Context())
            calls = dict(counts - before)
            answers.append({"status": answer["statusCode"], "body": answer.get("body", "")[:300], "calls": calls})
        if answers:
            answers[0]["init_calls"] = init
    if spec.get("profile"):
        profile.disable()
        profile.dump_stats(spec["profile"])
    print("\n" + json.dumps({"answers": answers}), flush=True)
    # No interpreter teardown: Lambda never tears an environment down while a request waits on it, so
    # the cost of finalising modules is no part of a cold start (and it would differ with the heap).
    os._exit(0)


def _counting() -> Counter[str]:
    """HTTP attempts, retries included, counted where they leave the process: botocore's endpoint (every
    attempt of every client and session: DynamoDB, Secrets Manager), requests' adapter (only the Twilio
    client uses requests: TaskRouter by its /Workspaces/ paths, else Verify) and urllib3's
    PoolManager.request (only the IAM validator calls it)."""
    import botocore.endpoint
    import requests.adapters
    import urllib3

    counts: Counter[str] = Counter()
    send, adapter_send, pool_request = (
        getattr(botocore.endpoint.Endpoint, "_send"),  # noqa: B009 - a private method, patched to count
        requests.adapters.HTTPAdapter.send,
        urllib3.PoolManager.request,
    )

    def botocore_send(self, request):
        counts.update([self._endpoint_prefix])
        return send(self, request)

    def twilio_send(self, request, *args, **kwargs):
        counts.update(["taskrouter" if "/Workspaces/" in request.url else "twilio"])  # TaskRouter, or Verify
        return adapter_send(self, request, *args, **kwargs)

    def iam_request(self, *args, **kwargs):
        counts.update(["iam"])
        return pool_request(self, *args, **kwargs)

    setattr(botocore.endpoint.Endpoint, "_send", botocore_send)  # noqa: B010 - counting every attempt
    setattr(requests.adapters.HTTPAdapter, "send", twilio_send)  # noqa: B010
    setattr(urllib3.PoolManager, "request", iam_request)  # noqa: B010
    return counts


if __name__ == "__main__":
    main()
