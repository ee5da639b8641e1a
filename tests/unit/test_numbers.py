"""numbers.py reads numbers with libphonenumber's core alone, and answers exactly as the whole library does.

The canonical E.164 spelling keys every limit and state item, so start, check, cancel and customer-info
must all compute it the library's way: these tests compare `numbers.parse` with the package's public API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import phonenumbers
from callerauth import numbers
from hypothesis import example, given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
KINDS = [
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.VOIP,
]


def _library(text: str) -> numbers.PhoneNumber | None:
    """What the whole library says, through `import phonenumbers` as its documentation shows."""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return numbers.PhoneNumber(
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.region_code_for_number(number),
        numbers.COSTLY_KINDS.get(phonenumbers.number_type(number)),
    )


@st.composite
def spellings(draw: st.DrawFn) -> str:
    """Real numbers of every region and kind (libphonenumber's examples), as E.164 or with a national prefix
    after the country code, a digit changed, added or dropped; and any digits at all."""
    region, kind = draw(st.sampled_from(REGIONS)), draw(st.sampled_from(KINDS))
    real = phonenumbers.example_number_for_type(region, kind)
    if real is None or draw(st.integers(0, 5)) == 0:
        return "+" + draw(st.text("0123456789", min_size=1, max_size=15))
    code, national = str(real.country_code), phonenumbers.national_significant_number(real)
    prefix = draw(st.sampled_from(["", "", "0", "1", "00"]))
    digits = list(national)
    edit = draw(st.integers(0, 3))
    at = draw(st.integers(0, len(digits) - 1))
    if edit == 1:
        digits[at] = draw(st.sampled_from("0123456789"))
    elif edit == 2:
        digits.insert(at, draw(st.sampled_from("0123456789")))
    elif edit == 3:
        del digits[at]
    return f"+{code}{prefix}{''.join(digits)}"


@given(text=spellings())
@example(text="+4407911123456")  # a national prefix after the country code: one spelling, +447911123456
@example(text="+12025550123")
@example(text="+390612345678")  # Italy keeps its leading zero
@example(text="+15555550100")  # +1 555 is not allocated
def test_the_core_alone_reads_every_number_as_the_whole_library_does(text: str) -> None:
    assert numbers.parse(text) == _library(text)


def test_the_core_is_the_library_the_package_exports() -> None:
    core = numbers._core()
    for name in ("parse", "is_valid_number", "format_number", "region_code_for_number", "number_type"):
        assert getattr(phonenumbers, name) is getattr(core, name)


def test_a_fresh_process_loads_only_the_core_and_a_later_import_gets_the_whole_library() -> None:
    # Given a fresh interpreter that reads one number through numbers.py, then imports phonenumbers itself
    script = """
import json, sys
from callerauth import numbers
TRICKY = ["+4407911123456", "+390612345678", "+5491123456789", "+5215512345678", "+18095551234", "+15555550100",
          "+80012345678", "+882354", "+9791234567", "+2250101234567", "+4412345"]
ours = [numbers.parse(text) for text in TRICKY]
first = ours[0]
loaded = sorted(m for m in sys.modules if m.startswith("phonenumbers") and ".data." not in m)
import phonenumbers
from phonenumbers import AsYouTypeFormatter, PhoneNumberMatcher
def library(text):
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return numbers.PhoneNumber(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.region_code_for_number(number), numbers.COSTLY_KINDS.get(phonenumbers.number_type(number)))
agree = ours == [library(text) for text in TRICKY]
after = phonenumbers.format_number(phonenumbers.parse("+4407911123456"), phonenumbers.PhoneNumberFormat.E164)
print(json.dumps({"agree": agree, "first": first.e164, "loaded": loaded, "after": after,
                  "same": phonenumbers.parse is numbers._core().parse,
                  "core": phonenumbers.phonenumberutil is numbers._core()}))
"""
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "layers" / "core")},
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(done.stdout)

    # Then the first read took the core alone: not the formatter, the matcher or short-number info
    assert seen["first"] == "+447911123456"
    assert "phonenumbers.phonenumberutil" in seen["loaded"]
    for unused in (
        "phonenumbers.asyoutypeformatter",
        "phonenumbers.phonenumbermatcher",
        "phonenumbers.shortnumberinfo",
    ):
        assert unused not in seen["loaded"]
    # and the later import is the whole library, over the same core, which agrees with what the core alone read
    assert (seen["after"], seen["same"], seen["core"]) == ("+447911123456", True, True)
    assert seen["agree"] is True
