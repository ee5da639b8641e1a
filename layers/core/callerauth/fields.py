"""Field names, aliases and validation rules of the HTTP contract."""

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from callerauth import errors

# Canonical name -> the names a client may use for it (the plugin and Twilio's own conventions).
ALIASES: dict[str, tuple[str, ...]] = {
    "to": ("to", "To"),
    "verification_code": ("verification_code", "code", "Code"),
    "channel": ("channel",),
    "locale": ("locale",),
    "token": ("Token",),
    "task_sid": ("taskSid", "TaskSid", "task_sid"),
}
FIELD_OF_ALIAS = {alias: name for name, aliases in ALIASES.items() for alias in aliases}

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# No blank or control character anywhere: they would forge log lines or split a mailbox in two.
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+", re.ASCII)
LOCALE = re.compile(r"[a-z]{2}(-[A-Za-z]{2,4})?")
CODE = re.compile(r"[0-9]{4,10}")
TASK_SID = re.compile(r"WT[0-9a-fA-F]{32}")
CHANNELS = ("sms", "call", "email", "whatsapp")

BLANKS = " \t\r\n"  # stripped from `to` and `verification_code`: a pasted code often carries them
START_MISSING = "Missing parameter; please provide a phone number or email."


class Destination(NamedTuple):
    to: str  # what Twilio is sent: the number in its one E.164 spelling, or the address in lower case
    channel: str
    key: str  # what limits, state and audit are keyed by: the number, or the mailbox without its +tag
    region: str | None = None  # the number's country (ISO 3166 alpha-2)
    costly: str | None = None  # "premium_rate" or "shared_cost": numbers that bill the sender


def destination(
    fields: Mapping[str, str],
    allowed_channels: Sequence[str] = CHANNELS,
    *,
    missing_message: str = "Missing parameter.",
    more_info: str | None = None,
) -> Destination:
    """The `to` and `channel` of a request: a valid phone number, or an e-mail address for channel email."""
    channel = fields.get("channel", "") or "sms"
    if channel not in CHANNELS:
        raise errors.invalid_parameter("Invalid parameter 'channel': use sms, call, email or whatsapp.")
    if channel not in allowed_channels:
        raise errors.invalid_parameter(
            f"Invalid parameter 'channel': this deployment sends codes by {' or '.join(allowed_channels)} only."
        )
    to = fields.get("to", "").strip(BLANKS)
    if not to:
        raise errors.missing_parameter(missing_message, more_info)
    if channel == "email":
        return _mailbox(to)
    return _phone(to, channel)


def start_target(fields: Mapping[str, str], allowed_channels: Sequence[str]) -> Destination:
    """The destination of a start, refused as the reference backend refuses a start without `to`."""
    return destination(fields, allowed_channels, missing_message=START_MISSING, more_info=errors.VERIFY_DOCS)


def recipient(fields: Mapping[str, str]) -> Destination:
    """The destination of a request that names an earlier verification: a phone number or an e-mail address."""
    to = fields.get("to", "").strip(BLANKS)
    if not to:
        raise errors.missing_parameter()
    return _mailbox(to) if "@" in to else _phone(to, "sms")


def _phone(to: str, channel: str) -> Destination:
    from callerauth import numbers

    if len(to) > 16 or not E164.fullmatch(to):
        raise errors.invalid_parameter("Invalid parameter 'to': expected an E.164 number such as +12025550100.")
    number = numbers.parse(to)
    if number is None:
        raise errors.invalid_parameter("Invalid parameter 'to': this is not a valid phone number.")
    return Destination(number.e164, channel, number.e164, number.region, number.costly)


def _mailbox(to: str) -> Destination:
    if len(to) > 254 or not EMAIL.fullmatch(to):
        raise errors.invalid_parameter("Invalid parameter 'to': expected an e-mail address.")
    address = to.lower()
    local, _, domain = address.rpartition("@")
    return Destination(address, "email", f"{local.partition('+')[0]}@{domain}")


def locale(fields: Mapping[str, str]) -> str:
    value = fields.get("locale", "") or "en"
    if len(value) > 7 or not LOCALE.fullmatch(value):
        raise errors.invalid_parameter("Invalid parameter 'locale': expected a code such as en or pt-BR.")
    return value


def verification_code(fields: Mapping[str, str]) -> str:
    value = fields.get("verification_code", "").strip(BLANKS)
    if not value:
        raise errors.missing_parameter()
    if len(value) > 10 or not CODE.fullmatch(value):
        raise errors.invalid_parameter("Invalid parameter 'verification_code': expected 4 to 10 digits.")
    return value


def task_sid(fields: Mapping[str, str]) -> str | None:
    value = fields.get("task_sid", "")
    if not value:
        return None
    if len(value) != 34 or not TASK_SID.fullmatch(value):
        raise errors.invalid_parameter("Invalid parameter 'taskSid': expected WT followed by 32 hex digits.")
    return value
