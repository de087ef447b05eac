"""Unit tests for shared.settings: every app setting, read and validated at start.

Why: a bad deployment must stop at start with a message naming the setting, instead of
polling the wrong table or losing alerts later; defaults must be the documented ones.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from shared.settings import (
    AcsConnection,
    SettingsError,
    environment_with_local_settings,
    load_settings,
    local_settings_values,
    parse_acs_connection_string,
    poll_schedule,
)

STORAGE = "DefaultEndpointsProtocol=https;AccountName=app;AccountKey=YWJj;EndpointSuffix=x.net"
LEADS = "DefaultEndpointsProtocol=https;AccountName=leads;AccountKey=ZGVm;EndpointSuffix=x.net"
ACS_KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ACS_HOST = "https://contoso-mail.communication.azure.com"


def minimal_env(**overrides: str | None) -> dict[str, str]:
    env = {
        "AzureWebJobsStorage": STORAGE,
        "ACS_CONNECTION_STRING": f"endpoint={ACS_HOST}/;accesskey={ACS_KEY}",
        "EMAIL_SENDER": "DoNotReply@leads.contoso.com",
        "LEAD_ALERT_RECIPIENTS": "sales@contoso.com",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def test_minimal_env_gives_documented_defaults() -> None:
    settings = load_settings(minimal_env())
    assert settings.app_storage.connection_string == STORAGE
    assert settings.leads_storage.connection_string == STORAGE
    assert settings.leads_table == "MarketplaceLeads"
    assert settings.poll_schedule == "0 */1 * * * *"
    assert settings.poll_overlap == timedelta(minutes=5)
    assert settings.duplicate_window == timedelta(days=14)
    assert settings.start_from is None
    assert settings.acs == AcsConnection(endpoint=ACS_HOST, access_key=ACS_KEY)
    assert settings.email_sender == "DoNotReply@leads.contoso.com"
    assert settings.alert_recipients == ("sales@contoso.com",)
    assert settings.admin_recipients == ("sales@contoso.com",)


def test_every_setting_given() -> None:
    settings = load_settings(
        minimal_env(
            LEADS_STORAGE=LEADS,
            LEADS_TABLE_NAME="PartnerLeads2",
            LEADS_POLL_SCHEDULE="0 */5 * * * *",
            LEADS_POLL_OVERLAP_MINUTES="10",
            LEADS_START_FROM="2026-01-31T00:00:00Z",
            LEAD_ADMIN_RECIPIENTS="admin@contoso.com",
            LEAD_DUPLICATE_WINDOW_DAYS="3",
        )
    )
    assert settings.leads_storage.connection_string == LEADS
    assert settings.app_storage.connection_string == STORAGE
    assert settings.leads_table == "PartnerLeads2"
    assert settings.poll_schedule == "0 */5 * * * *"
    assert settings.poll_overlap == timedelta(minutes=10)
    assert settings.start_from == datetime(2026, 1, 31, tzinfo=timezone.utc)
    assert settings.admin_recipients == ("admin@contoso.com",)
    assert settings.alert_recipients == ("sales@contoso.com",)
    assert settings.duplicate_window == timedelta(days=3)


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LEADS_STORAGE",
        "LEADS_TABLE_NAME",
        "LEADS_POLL_SCHEDULE",
        "LEADS_POLL_OVERLAP_MINUTES",
        "LEADS_START_FROM",
        "LEAD_ADMIN_RECIPIENTS",
        "LEAD_DUPLICATE_WINDOW_DAYS",
        "ACS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in minimal_env(LEADS_TABLE_NAME="FromEnviron").items():
        monkeypatch.setenv(name, value)
    assert load_settings().leads_table == "FromEnviron"


# --------------------------------------------------------------------------- required


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("AzureWebJobsStorage", None, "AzureWebJobsStorage"),
        ("AzureWebJobsStorage", "   ", "AzureWebJobsStorage"),
        ("LEAD_ALERT_RECIPIENTS", None, "LEAD_ALERT_RECIPIENTS"),
        ("LEAD_ALERT_RECIPIENTS", " ; , ", "LEAD_ALERT_RECIPIENTS"),
        ("LEAD_ALERT_RECIPIENTS", "sales@contoso.com, not-an-address", "LEAD_ALERT_RECIPIENTS"),
        ("LEAD_ADMIN_RECIPIENTS", "admin(at)contoso.com", "LEAD_ADMIN_RECIPIENTS"),
        ("EMAIL_SENDER", None, "EMAIL_SENDER"),
        ("EMAIL_SENDER", "DoNotReply", "EMAIL_SENDER"),
        ("ACS_CONNECTION_STRING", None, "ACS_CONNECTION_STRING"),
        ("ACS_CONNECTION_STRING", f"endpoint={ACS_HOST}/", "ACS_CONNECTION_STRING"),
        ("ACS_CONNECTION_STRING", f"accesskey={ACS_KEY}", "ACS_CONNECTION_STRING"),
        (
            "ACS_CONNECTION_STRING",
            f"endpoint={ACS_HOST}/;accesskey=not base64!",
            "ACS_CONNECTION_STRING",
        ),
        (
            "ACS_CONNECTION_STRING",
            f"endpoint=contoso.communication.azure.com;accesskey={ACS_KEY}",
            "ACS_CONNECTION_STRING",
        ),
        (
            "ACS_CONNECTION_STRING",
            f"endpoint=ftp://contoso.example;accesskey={ACS_KEY}",
            "ACS_CONNECTION_STRING",
        ),
        ("LEADS_TABLE_NAME", "leads-table", "LEADS_TABLE_NAME"),
        ("LEADS_TABLE_NAME", "ab", "LEADS_TABLE_NAME"),
        ("LEADS_TABLE_NAME", "1Leads", "LEADS_TABLE_NAME"),
        ("LEADS_TABLE_NAME", "L" * 64, "LEADS_TABLE_NAME"),
        ("LEADS_POLL_SCHEDULE", "*/5 * * * *", "LEADS_POLL_SCHEDULE"),
        ("LEADS_POLL_SCHEDULE", "0 */5 * * * * *", "LEADS_POLL_SCHEDULE"),
        ("LEADS_POLL_SCHEDULE", "0 */5 * * * ;rm", "LEADS_POLL_SCHEDULE"),
        ("LEADS_POLL_OVERLAP_MINUTES", "0", "LEADS_POLL_OVERLAP_MINUTES"),
        ("LEADS_POLL_OVERLAP_MINUTES", "five", "LEADS_POLL_OVERLAP_MINUTES"),
        ("LEAD_DUPLICATE_WINDOW_DAYS", "-1", "LEAD_DUPLICATE_WINDOW_DAYS"),
        ("LEAD_DUPLICATE_WINDOW_DAYS", "1.5", "LEAD_DUPLICATE_WINDOW_DAYS"),
        ("LEADS_START_FROM", "yesterday", "LEADS_START_FROM"),
        ("LEADS_START_FROM", "31/01/2026", "LEADS_START_FROM"),
    ],
)
def test_missing_or_malformed_setting_is_named(name: str, value: str | None, named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(**{name: value}))
    assert named in str(caught.value)


def test_settings_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_settings({})


def test_missing_acs_mentions_both_ways_to_configure_it() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(ACS_CONNECTION_STRING=None))
    assert "ACS_CONNECTION_STRING" in str(caught.value)
    assert "ACS_ENDPOINT" in str(caught.value)


@pytest.mark.parametrize(
    "conn",
    [
        f"endpoint={ACS_HOST}/;accesskey=s3cr3t!!",
        f"endpoint=nota url;accesskey={ACS_KEY}",
    ],
)
def test_connection_string_errors_do_not_echo_the_key(conn: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(minimal_env(ACS_CONNECTION_STRING=conn))
    assert "s3cr3t" not in str(caught.value)
    assert ACS_KEY not in str(caught.value)


# --------------------------------------------------------------------------- ACS


def test_acs_endpoint_alone_uses_managed_identity() -> None:
    settings = load_settings(minimal_env(ACS_CONNECTION_STRING=None, ACS_ENDPOINT=ACS_HOST + "/"))
    assert settings.acs == AcsConnection(endpoint=ACS_HOST, access_key=None)


def test_bad_acs_endpoint_is_named() -> None:
    with pytest.raises(SettingsError, match="ACS_ENDPOINT"):
        load_settings(minimal_env(ACS_CONNECTION_STRING=None, ACS_ENDPOINT="contoso-mail"))


def test_connection_string_wins_over_endpoint() -> None:
    settings = load_settings(minimal_env(ACS_ENDPOINT="https://other.communication.azure.com"))
    assert settings.acs.endpoint == ACS_HOST
    assert settings.acs.access_key == ACS_KEY


def test_http_endpoint_is_kept_for_a_local_emulator() -> None:
    conn = f"endpoint=http://127.0.0.1:7071/;accesskey={ACS_KEY}"
    assert parse_acs_connection_string(conn) == AcsConnection("http://127.0.0.1:7071", ACS_KEY)


def test_connection_string_keys_in_any_case_and_padded_key() -> None:
    key = base64.b64encode(b"x").decode()  # "eA==": '=' inside the value
    conn = f" Endpoint = {ACS_HOST}/ ; AccessKey = {key} ;"
    assert parse_acs_connection_string(conn) == AcsConnection(ACS_HOST, key)


# --------------------------------------------------------------------------- recipients


def test_recipients_split_on_commas_and_semicolons_and_deduplicated() -> None:
    settings = load_settings(
        minimal_env(
            LEAD_ALERT_RECIPIENTS=" a@contoso.com; b@contoso.com,a@CONTOSO.com ;; b@contoso.com,",
            LEAD_ADMIN_RECIPIENTS="ops@contoso.com;ops@contoso.com",
        )
    )
    assert settings.alert_recipients == ("a@contoso.com", "b@contoso.com")
    assert settings.admin_recipients == ("ops@contoso.com",)


def test_blank_admin_recipients_fall_back_to_alert_recipients() -> None:
    settings = load_settings(
        minimal_env(LEAD_ALERT_RECIPIENTS="x@contoso.com,y@contoso.com", LEAD_ADMIN_RECIPIENTS=" ")
    )
    assert settings.admin_recipients == ("x@contoso.com", "y@contoso.com")


def test_sender_domain_is_normalized() -> None:
    settings = load_settings(minimal_env(EMAIL_SENDER=" DoNotReply@LEADS.Contoso.com "))
    assert settings.email_sender == "DoNotReply@leads.contoso.com"


# --------------------------------------------------------------------------- start, schedule


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=timezone.utc)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=timezone.utc)),  # naive: UTC
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=timezone.utc)),
        ("2026-01-31T12:00:00z", datetime(2026, 1, 31, 12, tzinfo=timezone.utc)),
        ("2026-01-31T14:30:00+02:00", datetime(2026, 1, 31, 12, 30, tzinfo=timezone.utc)),
    ],
)
def test_start_from(raw: str, expected: datetime) -> None:
    start = load_settings(minimal_env(LEADS_START_FROM=raw)).start_from
    assert start == expected
    assert start is not None and start.utcoffset() == timedelta(0)


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local time zone far from UTC, so "naive means local" would show."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_naive_start_from_is_utc_whatever_the_local_time_zone() -> None:
    start = load_settings(minimal_env(LEADS_START_FROM="2026-01-31T12:00:00")).start_from
    assert start == datetime(2026, 1, 31, 12, tzinfo=timezone.utc)


def test_schedule_whitespace_is_normalized() -> None:
    assert poll_schedule({"LEADS_POLL_SCHEDULE": "  0   */2  * * * MON-FRI "}) == (
        "0 */2 * * * MON-FRI"
    )


def test_schedule_default_without_setting() -> None:
    assert poll_schedule({}) == "0 */1 * * * *"


def test_zero_duplicate_window_is_allowed() -> None:
    assert load_settings(minimal_env(LEAD_DUPLICATE_WINDOW_DAYS="0")).duplicate_window == timedelta(
        0
    )


def test_table_name_limits_are_inclusive() -> None:
    assert load_settings(minimal_env(LEADS_TABLE_NAME="Abc")).leads_table == "Abc"
    assert load_settings(minimal_env(LEADS_TABLE_NAME="L" * 63)).leads_table == "L" * 63


# --------------------------------------------------------------------------- local.settings.json


def test_local_settings_fill_in_what_the_environment_lacks(tmp_path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(
        '{"IsEncrypted": false, "Values": {"EMAIL_SENDER": "a@contoso.com", "X": "file"}}'
    )
    env = environment_with_local_settings(path, {"X": "environment"})
    assert env["EMAIL_SENDER"] == "a@contoso.com"
    assert env["X"] == "environment"
    assert environment_with_local_settings(None, {"X": "y"}) == {"X": "y"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{", "is not valid JSON"),
        ("[]", 'has no "Values" object'),
        ('{"Values": {"LEADS_POLL_OVERLAP_MINUTES": 5}}', "Values.LEADS_POLL_OVERLAP_MINUTES"),
    ],
)
def test_bad_local_settings_are_named(tmp_path, text: str, words: str) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(text)
    with pytest.raises(SettingsError, match=words):
        local_settings_values(path)


def test_settings_from_az_functionapp_config_appsettings_list(tmp_path) -> None:
    path = tmp_path / "app.settings.json"
    path.write_text(
        '[{"name": "EMAIL_SENDER", "slotSetting": false, "value": "a@contoso.com"},'
        ' {"name": "LEADS_START_FROM", "slotSetting": false, "value": null}]'
    )
    assert local_settings_values(path) == {"EMAIL_SENDER": "a@contoso.com", "LEADS_START_FROM": ""}
