"""One cold start, in this fresh interpreter: import a handler, build it, answer one request.

Run by bench/__main__.py as `python bench/coldstart.py <function> <event json>`; prints one JSON line
(last on stdout) with the answer's status and this process's peak memory.
"""

import json
import resource
import sys
import uuid
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Context:
    aws_request_id = str(uuid.uuid4())
    function_name = "bench"
    memory_limit_in_mb = 256


def main() -> None:
    function, event = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, str(ROOT / "layers" / "core"))
    spec = spec_from_file_location("app", ROOT / "functions" / function / "app.py")
    assert spec and spec.loader
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    answer = module.lambda_handler(event, Context())
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"status": answer["statusCode"], "peak_mb": round(peak_kb / 1024, 1)}))


if __name__ == "__main__":
    main()
