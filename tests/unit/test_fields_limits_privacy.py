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


@pytest.mark.parametrize(
    ("number", "region"),
    [("+12025550100", "US"), ("+447400123456", "GB"), ("+18765550100", "JM"), ("+4915123456789", "DE")],
)
def test_valid_numbers_are_accepted_with_their_region(number: str, region: str) -> None:
    # Given / When
    target = fields.destination({"to": number})

    # Then: libphonenumber's region, not the calling code, says where the number is (+1 876 is Jamaica)
    assert target == fields.Destination(number, "sms", number, region)


@pytest.mark.parametrize("channel", ["sms", "call", "whatsapp"])
def test_phone_channels_take_an_e164_number(channel: str) -> None:
    # Given / When / Then
    target = fields.destination({"to": "+12025550100", "channel": channel})
    assert (target.to, target.channel, target.key) == ("+12025550100", channel, "+12025550100")


@pytest.mark.parametrize(
    "number",
    [
        "+15555550100",  # NANP's 555 range is not allocated
        "+1234567",  # well formed, but no such number
        "+123456789012345",
        "+12845550100",  # a British Virgin Islands spelling that is not a real number
    ],
)
def test_numbers_libphonenumber_calls_invalid_are_refused(number: str) -> None:
    # Given / When
    error = refusal(fields.destination, {"to": number})

    # Then
    assert (error.status, error.code) == (400, "invalid_parameter")
    assert number not in error.message


@pytest.mark.parametrize(("number", "costly"), [("+19005550100", "premium_rate")])
def test_numbers_that_bill_the_sender_are_marked(number: str, costly: str) -> None:
    # Given / When / Then
    assert fields.destination({"to": number}).costly == costly


def test_two_spellings_of_one_number_share_one_key() -> None:
    # Given a UK number written with its national trunk prefix after the country code
    plain, with_trunk_zero = fields.recipient({"to": "+447400123456"}), fields.recipient({"to": "+4407400123456"})

    # Then both are the same destination, in its one E.164 spelling
    assert plain == with_trunk_zero
    assert plain.to == plain.key == "+447400123456"


def test_a_channel_the_deployment_does_not_allow_is_refused_naming_the_allowed_ones() -> None:
    # Given / When
    error = refusal(fields.start_target, {"to": "+12025550100", "channel": "call"}, ("sms",))

    # Then
    assert (error.status, error.code) == (400, "invalid_parameter")
    assert "sms only" in error.message


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
    assert target == fields.Destination("jane.doe@example.com", "email", "jane.doe@example.com")


@pytest.mark.parametrize("address", ["Jane+Billing@Example.com", "jane+x+y@example.com", "JANE@example.com"])
def test_one_mailbox_is_one_destination_whatever_its_tag_or_case(address: str) -> None:
    # Given / When / Then: limits and state are keyed by the mailbox, the code goes to the address given
    target = fields.destination({"to": address, "channel": "email"})
    assert (target.to, target.key) == (address.lower(), "jane@example.com")


@pytest.mark.parametrize("address", ["jane\x00@example.com", "ja\x1bne@example.com", "jane@exa\x7fmple.com"])
def test_an_address_with_a_control_character_is_refused(address: str) -> None:
    # Given / When
    error = refusal(fields.destination, {"to": address, "channel": "email"})

    # Then
    assert (error.status, error.code) == (400, "invalid_parameter")


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
    assert fields.recipient({"to": to}).to == expected


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

CAPS = limits.caps("D#key", "A#agent", SETTINGS)
DAY_LEFT = 86400 - NOW % 86400


def test_every_cap_of_the_contract_is_counted_most_specific_first() -> None:
    # Given the contract's defaults / Then each cap has its window and its limit, in this order
    assert [(c.name, c.length, c.limit) for c in CAPS] == [
        ("destination", 3600, 5),
        ("agent", 3600, 30),
        ("minute", 60, 60),
        ("hour", 3600, 1000),
        ("day", 86400, 10000),
    ]


@pytest.mark.parametrize(("now", "window", "ends_at"), [(0, 0, 3600), (3599, 0, 3600), (3600, 1, 7200)])
def test_a_cap_s_window_and_its_end(now: int, window: int, ends_at: int) -> None:
    # Given an hourly cap / Then a moment falls in one window, whose counter key names it
    hourly = CAPS[0]
    assert (hourly.window(now), hourly.ends_at(hourly.window(now))) == (window, ends_at)
    assert hourly.counter(window) != hourly.counter(window + 1)


def test_a_lock_answers_too_many_attempts_until_it_ends() -> None:
    # Given a lock with 100 s left, the last send 5 s ago
    breached = {"state": {"locked_until": NOW + 100, "last_send": NOW - 5}}

    # When
    error = errors.api_error(limits.send_refusal(breached, NOW, SETTINGS, CAPS))

    # Then
    assert (error.status, error.code, error.retry_after) == (429, "too_many_attempts", 100)
    assert "2 minutes" in error.message


def test_a_cooldown_answers_rate_limited_with_the_seconds_left() -> None:
    # Given a send 10 s ago and a 30 s cooldown
    error = errors.api_error(limits.send_refusal({"state": {"last_send": NOW - 10}}, NOW, SETTINGS, CAPS))

    # Then
    assert (error.status, error.code, error.retry_after) == (429, "rate_limited", 20)
    assert "20 s" in error.message
    assert error.reason == "cooldown"


def test_an_expired_lock_is_just_a_cooldown() -> None:
    # Given a lock that ended a second ago
    refusal = limits.send_refusal({"state": {"locked_until": NOW - 1, "last_send": NOW - 29}}, NOW, SETTINGS, CAPS)

    # Then
    assert (refusal.code, refusal.retry_after) == ("rate_limited", 1)


def test_a_concurrent_send_holding_the_state_means_a_full_cooldown() -> None:
    # Given the state item held by a concurrent transaction (no values known)
    refusal = limits.send_refusal({"state": None}, NOW, SETTINGS, CAPS)

    # Then
    assert (refusal.code, refusal.retry_after) == ("rate_limited", SETTINGS.send_cooldown_seconds)


@pytest.mark.parametrize(
    ("item", "expected_wait", "limit", "reason"),
    [
        ("destination", HOUR_LEFT, 5, "destination_cap"),
        ("agent", HOUR_LEFT, 30, "agent_cap"),
        ("minute", MINUTE_LEFT, 60, "circuit_breaker"),
        ("hour", HOUR_LEFT, 1000, "hourly_budget"),
        ("day", DAY_LEFT, 10000, "daily_budget"),
    ],
)
def test_each_cap_answers_rate_limited_until_its_window_ends(
    item: str, expected_wait: int, limit: int, reason: str
) -> None:
    # Given / When
    error = errors.api_error(limits.send_refusal({item: {"n": limit}}, NOW, SETTINGS, CAPS))

    # Then: the client sees one code and the limit reached; logs and metrics see which limit it was
    assert (error.status, error.code, error.retry_after) == (429, "rate_limited", expected_wait)
    assert str(limit) in error.message
    assert error.reason == reason


WAITS = {"destination": HOUR_LEFT, "agent": HOUR_LEFT, "minute": MINUTE_LEFT, "hour": HOUR_LEFT, "day": DAY_LEFT}
STATES = {"locked": ({"locked_until": NOW + 100, "last_send": NOW - 5}, 100), "cooling": ({"last_send": NOW - 10}, 20)}
COMBINATIONS = [
    (state, caps)
    for state in (None, "locked", "cooling")
    for n in range(len(WAITS) + 1)
    for caps in itertools.combinations(WAITS, n)
    if state is not None or caps  # a refusal has at least one reason
]


@pytest.mark.parametrize(("state", "caps"), COMBINATIONS)
def test_the_most_specific_reason_speaks_and_retry_after_is_the_longest_wait(
    state: str | None, caps: tuple[str, ...]
) -> None:
    # Given a combination of a state refusal (lock or cooldown) and breached caps
    breached: dict[str, dict[str, int] | None] = {cap: {"n": 99} for cap in caps}
    waits = [WAITS[cap] for cap in caps]
    if state is not None:
        breached["state"], wait = STATES[state]
        waits.append(wait)

    # When
    refusal = limits.send_refusal(breached, NOW, SETTINGS, CAPS)

    # Then: a lock wins, then the cooldown, then destination, agent, minute, hour, day
    assert refusal.retry_after == max(waits)
    expected = {"locked": ("too_many_attempts", "locked"), "cooling": ("rate_limited", "cooldown")}.get(state or "")
    first_cap = next(cap for cap in CAPS if cap.name in caps) if caps else None
    assert (refusal.code, refusal.reason) == (expected or ("rate_limited", first_cap.reason if first_cap else None))


@pytest.mark.parametrize(
    ("seconds", "words"), [(1, "1 minute."), (60, "1 minute."), (61, "2 minutes."), (900, "15 minutes.")]
)
def test_locked_says_how_long_in_whole_minutes_rounded_up(seconds: int, words: str) -> None:
    # Given / When
    error = errors.api_error(limits.locked(NOW + seconds, NOW))

    # Then
    assert (error.code, error.retry_after) == ("too_many_attempts", seconds)
    assert error.message.endswith(words)


# ------------------------------------------------------------------------------------------ privacy


@pytest.mark.parametrize(
    ("destination", "masked"),
    [
        ("+12025550100", "+1******0100"),
        ("+447400123456", "+4*******3456"),
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
