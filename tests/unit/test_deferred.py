"""callerauth.deferred: a package's submodule without the package's `__init__`, and the whole package later."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = "aws_lambda_powertools.utilities.parameters"
SCRIPT = f"""
import json, sys
from callerauth import deferred
secrets = deferred.submodule("{PARAMETERS}", "secrets")
loaded = sorted(m for m in sys.modules if m.startswith("{PARAMETERS}."))
from {PARAMETERS} import SecretsProvider, SSMProvider, get_secret
print(json.dumps({{"loaded": loaded, "same": SecretsProvider is secrets.SecretsProvider,
                  "whole": [SSMProvider.__name__, get_secret.__name__]}}))
"""


def test_powertools_secrets_provider_alone_then_the_whole_parameters_package() -> None:
    # Given a fresh interpreter that takes the Secrets Manager provider as callerauth.wiring does
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", SCRIPT],
        env={"PYTHONPATH": str(ROOT / "layers" / "core"), "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout)
    # Then the other providers were not imported with it
    assert not [m for m in answer["loaded"] if m.rsplit(".", 1)[1] in ("ssm", "appconfig", "dynamodb")]
    assert f"{PARAMETERS}.secrets" in answer["loaded"]
    # And importing the package afterwards runs its __init__ and gives the very same provider class
    assert answer["same"] is True
    assert answer["whole"] == ["SSMProvider", "get_secret"]
