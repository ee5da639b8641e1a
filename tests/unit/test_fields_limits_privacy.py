"""Field validation, send limits and privacy helpers (fields.py, limits.py, privacy.py)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re

import pytest
from callerauth import errors, fields, limits
from callerauth.config import Settings
from callerauth.privacy import Hasher, mask
from hypothesis import given
from hypothesis import strategies as st

SETTINGS = Settings(state_table="state", customers_table="customers")  # the contract's defaults
NOW = 1_700_000_000  # 800 s into its hour (2800 s left), 20 s into its minute (40 s left)
HOUR_LEFT, MINUTE_LEFT = 2800, 40
SECRET = b"a-test-secret-of-32-bytes-length"


def unicode_digits(ascii_digits: str, zero: int) -> str:
    """The same digits from another Unicode block: full-width (0xFF10) or Arabic-Indic (0x0660)."""
    return "".join(chr(zero + int(d)) for d in ascii_digits)


FULLWIDTH, ARABIC_INDIC = 0xFF10, 0x0660


def refusal(call: object, *args: object, **kwargs: object) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as raised:
        call(*args, **kwargs)  # type: ignore[operator]
    return raised.value


# ------------------------------------------------------------------------------------------ destination


@pytest.mark.parametrize("number", ["+1234567", "+12025550100", "+123456789012345", "+447700900123"])
def test_e164_numbers_from_7_to_15_digits_are_accepted(number: str) -> None:
    # Given / When
    target = fields.destination({"to": number})

    # Then
    assert target == fields.Destination(number, "sms")


@pytest.mark.parametrize("channel", ["sms", "call", "whatsapp"])
def test_phone_channels_take_an_e164_number(channel: str) -> None:
    # Given / When / Then
    assert fields.destination({"to": "+12025550100", "channel": channel}) == fields.Destination("+12025550100", channel)


def test_surrounding_whitespace_is_trimmed_from_the_number() -> None:
    # Given / When / Then
    assert fields.destination({"to": "  +12025550100\n"}).to == "+12025550100"


@pytest.mark.parametrize(
    "number",
    [
        "+123456",  # 6 digits: too short
        "+1234567890123456",  # 16 digits: too long
        "+01555555010",  # no country code starts with 0
        "12025550100",  # no plus
        "++12025550100",
        "+1 555 555 0100",
        "+1-555-555-0100",
        "+1555555O100",  # a letter O
        "+" + unicode_digits("12025550100", FULLWIDTH),
        "+" + unicode_digits("12025550100", ARABIC_INDIC),
        "+1555\n5550100",
        "+12025550100" + "0" * 200,
    ],
)
def test_anything_but_an_e164_number_is_refused_without_echoing_it(number: str) -> None:
    # Given / When
    error = refusal(fields.destination, {"to": number})

    # Then
    assert (error.status, error.code) == (400, "invalid_parameter")
    assert "'to'" in error.message
    without_example = error.message.replace("+12025550100", "")  # the message's documented example
    assert number.strip() not in without_example
    assert "555" not in without_example


def test_an_email_is_taken_for_channel_email_and_lower_cased() -> None:
    # Given / When
    target = fields.destination({"to": "Jane.Doe@Example.COM", "channel": "email"})

    # Then
    assert target == fields.Destination("jane.doe@example.com", "email")


@pytest.mark.parametrize(
    "address",
    [
        "jane.example.com",
        "jane@",
        "@example.com",
        "jane@example",
        "ja ne@example.com",
        "a@b@example.com",
        "x" * 65 + "@example.com",
        "j@" + "e" * 250 + ".com",
    ],
)
def test_a_bad_email_is_refused_without_echoing_it(address: str) -> None:
    # Given / When
    error = refusal(fields.destination, {"to": address, "channel": "email"})

    # Then
    assert (error.status, error.code) == (400, "invalid_parameter")
    assert address not in error.message


def test_an_email_address_with_a_phone_channel_is_refused() -> None:
    # Given / When
    error = refusal(fields.destination, {"to": "jane@example.com"})

    # Then
    assert error.code == "invalid_parameter"
    assert "jane" not in error.message


@pytest.mark.parametrize("channel", ["SMS", "voice", "rcs", "sms "])
def test_an_unknown_channel_is_refused_naming_the_field(channel: str) -> None:
    # Given / When
    error = refusal(fields.destination, {"to": "+12025550100", "channel": channel})

    # Then
    assert (error.code, error.status) == ("invalid_parameter", 400)
    assert "'channel'" in error.message


@pytest.mark.parametrize("given_fields", [{}, {"to": ""}, {"to": "   "}, {"channel": "sms"}])
def test_a_missing_to_is_missing_parameter_with_the_callers_message(given_fields: dict[str, str]) -> None:
    # Given / When
    error = refusal(
        fields.destination, given_fields, missing_message=fields.START_MISSING, more_info=errors.VERIFY_DOCS
    )

    # Then: exactly what the reference backend answers a start without `to`
    assert (error.status, error.code) == (400, "missing_parameter")
    assert error.body()["error"] == {
        "code": "missing_parameter",
        "message": fields.START_MISSING,
        "moreInfo": errors.VERIFY_DOCS,
    }


def test_an_empty_channel_means_sms() -> None:
    # Given / When / Then
    assert fields.destination({"to": "+12025550100", "channel": ""}).channel == "sms"


@pytest.mark.parametrize(
    ("to", "expected"), [("+12025550100", "+12025550100"), ("Jane@Example.com", "jane@example.com")]
)
def test_a_recipient_is_a_number_or_an_email(to: str, expected: str) -> None:
    # Given / When / Then
    assert fields.recipient({"to": to}) == expected


def test_a_missing_recipient_says_missing_parameter() -> None:
    # Given / When
    error = refusal(fields.recipient, {})

    # Then
    assert (error.code, error.message) == ("missing_parameter", "Missing parameter.")


# ------------------------------------------------------------------------------------------ other fields


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "en"), ("", "en"), ("en", "en"), ("pt-BR", "pt-BR"), ("zh-Hant", "zh-Hant")]
)
def test_locale_defaults_to_en_and_accepts_language_and_region(value: str | None, expected: str) -> None:
    # Given / When / Then
    assert fields.locale({} if value is None else {"locale": value}) == expected


@pytest.mark.parametrize(
    "value", ["EN", "e", "eng", "en_US", "en-", "en-ABCDE", "en-U1", "xx-yy-zz", "fr-ÇA", "es-419"]
)
def test_a_bad_locale_is_refused(value: str) -> None:
    # Given / When
    error = refusal(fields.locale, {"locale": value})

    # Then
    assert (error.code, error.status) == ("invalid_parameter", 400)
    assert "'locale'" in error.message
    assert len(value) < 3 or value not in error.message


@pytest.mark.parametrize("code", ["1234", "123456", "0000000000", " 654321 "])
def test_a_code_of_4_to_10_ascii_digits_is_accepted(code: str) -> None:
    # Given / When / Then
    assert fields.verification_code({"verification_code": code}) == code.strip()


@pytest.mark.parametrize(
    "code",
    [
        "123",
        "12345678901",
        "12 34",
        "12a456",
        "-123456",
        "123456\n7",
        unicode_digits("123456", FULLWIDTH),
        unicode_digits("123456", ARABIC_INDIC),
        unicode_digits("1234", FULLWIDTH),
    ],
)
def test_any_other_code_is_refused_without_echoing_it(code: str) -> None:
    # Given / When
    error = refusal(fields.verification_code, {"verification_code": code})

    # Then
    assert (error.code, error.status) == ("invalid_parameter", 400)
    assert "'verification_code'" in error.message
    assert code.strip() not in error.message


def test_a_missing_code_is_missing_parameter_with_the_reference_message() -> None:
    # Given / When
    error = refusal(fields.verification_code, {"to": "+12025550100"})

    # Then
    assert (error.code, error.message) == ("missing_parameter", "Missing parameter.")


@given(st.text(max_size=12))
def test_a_code_is_accepted_exactly_when_it_is_4_to_10_ascii_digits(text: str) -> None:
    # Given any text
    stripped = text.strip()
    expected_ok = bool(re.fullmatch(r"[0-9]{4,10}", stripped))

    # When
    try:
        accepted: str | None = fields.verification_code({"verification_code": text})
    except errors.ApiError as error:
        accepted = None
        assert error.status == 400

    # Then
    assert (accepted is not None) == expected_ok
    if accepted is not None:
        assert accepted == stripped


@pytest.mark.parametrize("sid", ["WT" + "0123456789abcdef" * 2, "WT" + "ABCDEF0123456789" * 2])
def test_a_task_sid_is_wt_and_32_hex_digits(sid: str) -> None:
    # Given / When / Then
    assert fields.task_sid({"task_sid": sid}) == sid


def test_no_task_sid_is_none() -> None:
    # Given / When / Then
    assert fields.task_sid({}) is None
    assert fields.task_sid({"task_sid": ""}) is None


@pytest.mark.parametrize(
    "sid",
    [
        "WT" + "0" * 31,
        "WT" + "0" * 33,
        "WK" + "0" * 32,
        "wt" + "0" * 32,
        "WT" + "g" * 32,
        "WT" + unicode_digits("0" * 32, FULLWIDTH),
    ],
)
def test_a_bad_task_sid_is_refused_without_echoing_it(sid: str) -> None:
    # Given / When
    error = refusal(fields.task_sid, {"task_sid": sid})

    # Then
    assert (error.code, error.status) == ("invalid_parameter", 400)
    assert "'taskSid'" in error.message
    assert sid not in error.message


# ------------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize(
    ("now", "length", "expected"),
    [
        (0, 3600, limits.Window(0, 3600)),
        (3599, 3600, limits.Window(0, 3600)),
        (3600, 3600, limits.Window(1, 7200)),
        (NOW, 3600, limits.Window(NOW // 3600, NOW + HOUR_LEFT)),
        (NOW, 60, limits.Window(NOW // 60, NOW + MINUTE_LEFT)),
    ],
)
def test_window_is_a_fixed_window_with_its_end(now: int, length: int, expected: limits.Window) -> None:
    # Given / When / Then
    assert limits.window(now, length) == expected


def test_a_lock_answers_too_many_attempts_until_it_ends() -> None:
    # Given a lock with 100 s left, the last send 5 s ago
    breached = {"state": {"locked_until": NOW + 100, "last_send": NOW - 5}}

    # When
    error = limits.send_refusal(breached, NOW, SETTINGS)

    # Then
    assert (error.status, error.code, error.retry_after) == (429, "too_many_attempts", 100)
    assert "2 minutes" in error.message


def test_a_cooldown_answers_rate_limited_with_the_seconds_left() -> None:
    # Given a send 10 s ago and a 30 s cooldown
    error = limits.send_refusal({"state": {"last_send": NOW - 10}}, NOW, SETTINGS)

    # Then
    assert (error.status, error.code, error.retry_after) == (429, "rate_limited", 20)
    assert error.message == "A code was just sent; you can resend in 20 s."
    assert error.reason == "cooldown"


def test_an_expired_lock_is_just_a_cooldown() -> None:
    # Given a lock that ended a second ago
    error = limits.send_refusal({"state": {"locked_until": NOW - 1, "last_send": NOW - 29}}, NOW, SETTINGS)

    # Then
    assert (error.code, error.retry_after) == ("rate_limited", 1)


def test_a_concurrent_send_holding_the_state_means_a_full_cooldown() -> None:
    # Given the state item held by a concurrent transaction (no values known)
    error = limits.send_refusal({"state": None}, NOW, SETTINGS)

    # Then
    assert (error.code, error.retry_after) == ("rate_limited", SETTINGS.send_cooldown_seconds)


@pytest.mark.parametrize(
    ("item", "expected_wait", "words", "reason"),
    [
        ("destination", HOUR_LEFT, "this number (5 an hour)", "destination_cap"),
        ("agent", HOUR_LEFT, "You have sent too many codes (30 an hour)", "agent_cap"),
        ("deployment", MINUTE_LEFT, "across the contact centre", "circuit_breaker"),
    ],
)
def test_each_cap_answers_rate_limited_until_its_window_ends(
    item: str, expected_wait: int, words: str, reason: str
) -> None:
    # Given / When
    error = limits.send_refusal({item: {"n": 5}}, NOW, SETTINGS)

    # Then: the client sees one code; logs and metrics see which limit it was
    assert (error.status, error.code, error.retry_after) == (429, "rate_limited", expected_wait)
    assert words in error.message
    assert error.reason == reason


LOCKED = {"locked_until": NOW + 100, "last_send": NOW - 5}
COOLING = {"last_send": NOW - 10}
WAITS = {"destination": HOUR_LEFT, "agent": HOUR_LEFT, "deployment": MINUTE_LEFT}
PRECEDENCE = ["destination", "agent", "deployment"]
REASONS = {"destination": "destination_cap", "agent": "agent_cap", "deployment": "circuit_breaker"}


@pytest.mark.parametrize(
    ("state", "caps"),
    [
        (state, caps)
        for state in (None, "locked", "cooling")
        for n in range(4)
        for caps in itertools.combinations(PRECEDENCE, n)
        if state is not None or caps  # nothing breached is no refusal: there is nothing to answer
    ],
)
def test_the_most_specific_reason_speaks_and_retry_after_is_the_longest_wait(
    state: str | None, caps: tuple[str, ...]
) -> None:
    # Given every combination of a state refusal (lock or cooldown) and breached caps
    breached: dict[str, dict[str, int] | None] = {cap: {"n": 99} for cap in caps}
    waits = [WAITS[cap] for cap in caps]
    if state == "locked":
        breached["state"], waits = LOCKED, [*waits, 100]
    elif state == "cooling":
        breached["state"], waits = COOLING, [*waits, 20]

    # When
    error = limits.send_refusal(breached, NOW, SETTINGS)

    # Then: a lock wins, then the cooldown, then destination, agent, deployment
    assert error.status == 429
    assert error.retry_after == max(waits)
    if state == "locked":
        assert error.code == "too_many_attempts"
    elif state == "cooling":
        assert (error.code, error.reason) == ("rate_limited", "cooldown")
    else:
        assert (error.code, error.reason) == ("rate_limited", REASONS[caps[0]])


@pytest.mark.parametrize(
    ("seconds", "words"), [(1, "1 minute."), (60, "1 minute."), (61, "2 minutes."), (900, "15 minutes.")]
)
def test_locked_says_how_long_in_whole_minutes_rounded_up(seconds: int, words: str) -> None:
    # Given / When
    error = limits.locked(NOW + seconds, NOW)

    # Then
    assert (error.code, error.retry_after) == ("too_many_attempts", seconds)
    assert error.message.endswith(words)


# ------------------------------------------------------------------------------------------ privacy


@pytest.mark.parametrize(
    ("destination", "masked"),
    [
        ("+12025550100", "+1******0100"),
        ("+447700900123", "+4*******0123"),
        ("jane@example.com", "j***@example.com"),
        ("+12345", "******"),
    ],
)
def test_mask_keeps_only_the_country_prefix_and_last_four(destination: str, masked: str) -> None:
    # Given / When / Then
    assert mask(destination) == masked


@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_a_masked_number_never_shows_more_than_its_first_and_last_four_digits(number: str) -> None:
    # Given any E.164 number
    # When
    masked = mask(number)

    # Then
    assert len(masked) == len(number)
    assert masked[:2] == number[:2] and masked[-4:] == number[-4:]
    assert set(masked[2:-4]) == {"*"}
    assert number not in masked


def test_hasher_keys_are_stable_and_are_hmac_sha256_of_the_destination() -> None:
    # Given two hashers with the same secret
    one, two = Hasher(SECRET), Hasher(SECRET)

    # When
    key = one.key("+12025550100")

    # Then
    assert key == one.key("+12025550100") == two.key("+12025550100")
    assert key == hmac.new(SECRET, b"+12025550100", hashlib.sha256).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", key)


def test_hasher_keys_depend_on_the_secret() -> None:
    # Given / When / Then
    assert Hasher(SECRET).key("+12025550100") != Hasher(SECRET[::-1]).key("+12025550100")
    assert Hasher(SECRET).key("+12025550100") != hashlib.sha256(b"+12025550100").hexdigest()


def test_hasher_refuses_a_short_secret() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="16 bytes"):
        Hasher(b"short")


@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True), st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_hasher_keys_hide_the_number_and_tell_numbers_apart(number: str, other: str) -> None:
    # Given any two numbers
    hasher = Hasher(SECRET)

    # When
    key = hasher.key(number)

    # Then: no run of the number's digits (beyond what chance gives 64 hex characters) is in the key
    assert number[1:] not in key
    assert number[-8:] not in key
    assert (key == hasher.key(other)) == (number == other)
