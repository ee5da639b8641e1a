"""The layer leaves charset-normalizer out (layers/core/tools/layer.py): the Twilio client must work without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# As in the layer: neither of requests' encoding guessers can be imported. Warnings are errors.
PROBE = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("charset_normalizer", "chardet"):
            raise ImportError(name)
sys.meta_path.insert(0, Absent())
if {quiet}:
    import callerauth.twilio_rest
import requests
from requests.structures import CaseInsensitiveDict
answer = requests.Response()
answer._content = '{{"to": "caf\\u00e9"}}'.encode()
answer.headers = CaseInsensitiveDict({{"Content-Type": "{content_type}"}})
print(answer.text)
"""


def _probe(quiet: bool, content_type: str = "application/json") -> subprocess.CompletedProcess[str]:
    code = PROBE.format(quiet=quiet, content_type=content_type)
    environment = os.environ | {"PYTHONPATH": str(ROOT / "layers" / "core")}
    return subprocess.run(  # noqa: S603 - our own interpreter, our own probe
        [sys.executable, "-W", "error", "-c", code], env=environment, capture_output=True, text=True
    )


def test_the_twilio_adapters_import_requests_without_a_warning_and_read_json_as_utf8() -> None:
    done = _probe(quiet=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"to": "café"}'


def test_a_body_that_names_no_charset_is_read_as_utf8() -> None:
    done = _probe(quiet=True, content_type="application/octet-stream")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"to": "café"}'


def test_without_the_filter_requests_would_warn() -> None:
    done = _probe(quiet=False)
    assert done.returncode != 0
    assert "Unable to find acceptable character detection" in done.stderr
