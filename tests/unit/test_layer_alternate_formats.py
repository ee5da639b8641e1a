"""The layer defers libphonenumber's alternate-format tables (layers/core/tools/layer.py): same answers, later."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import phonenumbers
import phonenumbers.data
import pytest

ROOT = Path(__file__).resolve().parents[2]
# The matcher finds this London number only through Britain's alternate formats (0208 is not how the
# main metadata groups it): the proof that a deferred table is still loaded when it is needed.
ALTERNATE_ONLY = ("0208 366 1177", "GB")
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher
import phonenumbers.data as data
def loaded():
    return sorted(m for m in sys.modules if m.startswith("phonenumbers.data.alt_format_"))
at_import = loaded()
text, region = sys.argv[2], sys.argv[3]
found = [m.raw_string for m in PhoneNumberMatcher(text, region, leniency=Leniency.EXACT_GROUPING)]
after_match = loaded()
tables = {code: [f.pattern for f in table] for code, table in data._ALT_NUMBER_FORMATS.items()}
print(json.dumps({"file": phonenumbers.__file__, "at_import": at_import, "found": found,
                  "after_match": after_match, "tables": tables}))
"""


def _layer_tool() -> Any:
    spec = importlib.util.spec_from_file_location("layer_tool", ROOT / "layers" / "core" / "tools" / "layer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_of_phonenumbers(tmp_path: Path) -> Path:
    shutil.copytree(Path(phonenumbers.__file__).parent, tmp_path / "phonenumbers")
    return tmp_path


def _probe(path: Path) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own probe
        [sys.executable, "-c", PROBE, str(path), *ALTERNATE_ONLY], capture_output=True, text=True, check=True
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["file"].startswith(str(path))  # the copy was imported, not the installed package
    return answer


def _upstream_tables() -> dict[str, list[str | None]]:
    return {str(code): [f.pattern for f in table] for code, table in phonenumbers.data._ALT_NUMBER_FORMATS.items()}


def test_the_upstream_package_loads_every_table_at_import(tmp_path: Path) -> None:
    """The control: the probe sees what the rewrite removes."""
    answer = _probe(_copy_of_phonenumbers(tmp_path))
    assert len(answer["at_import"]) == len(_upstream_tables()) > 40
    assert answer["found"] == [ALTERNATE_ONLY[0]]


def test_deferred_tables_load_only_when_the_matcher_needs_them_and_are_the_same(tmp_path: Path) -> None:
    root = _copy_of_phonenumbers(tmp_path)
    _layer_tool().defer_alternate_formats(root / "phonenumbers" / "data" / "__init__.py")
    answer = _probe(root)
    assert answer["at_import"] == []
    assert answer["found"] == [ALTERNATE_ONLY[0]]
    assert "phonenumbers.data.alt_format_44" in answer["after_match"]
    assert answer["tables"] == _upstream_tables()


def test_the_rewrite_refuses_a_file_it_does_not_know(tmp_path: Path) -> None:
    data = tmp_path / "__init__.py"
    data.write_text(
        "from .alt_format_44 import PHONE_ALT_FORMAT_44\n"
        "from .alt_format_49 import PHONE_ALT_FORMAT_49\n"
        "_ALT_NUMBER_FORMATS = {44: PHONE_ALT_FORMAT_44}\n"  # an import the table does not name
    )
    with pytest.raises(SystemExit, match="not the generated file"):
        _layer_tool().defer_alternate_formats(data)
    assert "PHONE_ALT_FORMAT_49" in data.read_text()  # untouched
