"""The IVR's settings (config.py): typed, defaulted, and nonsense refused at start."""

from __future__ import annotations

import pytest
from callerauth.config import ConfigError, Settings

BASE = {"STATE_TABLE": "state", "CUSTOMERS_TABLE": "customers"}


def test_the_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert (settings.ivr_base_url, settings.ivr_max_attempts, settings.ivr_locale) == ("", 3, "en-US")
    assert (settings.ivr_redirect_url, settings.ivr_workflow_sid) == ("", "")


def test_good_values_are_kept() -> None:
    settings = Settings.from_env(
        BASE
        | {
            "IVR_BASE_URL": "https://api.example.com/callerauth/",
            "IVR_MAX_ATTEMPTS": "5",
            "IVR_LOCALE": "es-MX",
            "IVR_REDIRECT_URL": "https://webhooks.twilio.com/v1/Accounts/AC1/Flows/FW1?FlowEvent=return",
        }
    )
    assert settings.ivr_base_url == "https://api.example.com/callerauth"
    assert (settings.ivr_max_attempts, settings.ivr_locale) == (5, "es-MX")
    assert settings.ivr_redirect_url.endswith("?FlowEvent=return")


@pytest.mark.parametrize(
    "env",
    [
        {"IVR_BASE_URL": "ftp://example.com"},
        {"IVR_BASE_URL": "https://example.com/x?q=1"},
        {"IVR_REDIRECT_URL": "not a url"},
        {"IVR_WORKFLOW_SID": "WW123"},
        {"IVR_WORKFLOW_SID": "WW" + "a" * 32, "IVR_REDIRECT_URL": "https://example.com/flow"},
        {"IVR_LOCALE": "en"},
        {"IVR_LOCALE": "fr-FR"},  # no French sentences
        {"IVR_MAX_ATTEMPTS": "0"},
        {"IVR_MAX_ATTEMPTS": "11"},
        {"IVR_MAX_ATTEMPTS": "three"},
    ],
)
def test_nonsense_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(BASE | env)
