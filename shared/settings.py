"""Every app setting, read and validated in one place.

The Functions host passes app settings as environment variables. `load_settings` turns them
into one frozen `Settings` record and fails with a message naming the setting when one is
missing or malformed, so a bad deployment stops at start instead of losing leads later.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

#: Names of the app's own storage objects (in `AzureWebJobsStorage`). Constants, not settings:
#: the queue name is part of the trigger binding and must not drift between deployments.
LEAD_QUEUE_NAME = "lead-alerts"
#: Where the Functions host moves a message after `maxDequeueCount` failures.
POISON_QUEUE_NAME = f"{LEAD_QUEUE_NAME}-poison"
CHECKPOINT_TABLE = "LeadAlertsCheckpoint"
LEDGER_TABLE = "LeadAlertsLedger"
HISTORY_TABLE = "LeadAlertsCustomers"

DEFAULT_POLL_SCHEDULE = "0 */1 * * * *"
DEFAULT_LEADS_TABLE = "MarketplaceLeads"
DEFAULT_DUPLICATE_WINDOW_DAYS = 14
DEFAULT_OVERLAP_MINUTES = 5

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_NCRONTAB_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?#L]+$")


class SettingsError(ValueError):
    """A required app setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class StorageConnection:
    """A storage account: a connection string (local, Azurite) or service URIs plus an identity.

    The identity form is the Functions convention for a connection named NAME:
    `NAME__tableServiceUri`, `NAME__queueServiceUri`, `NAME__credential` (`managedidentity`),
    `NAME__clientId` (a user-assigned identity). Without `__credential` the developer's own
    sign-in (DefaultAzureCredential) is used, as the Functions host does locally.
    """

    setting: str = field(compare=False)  # the setting's name, for messages
    connection_string: str | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    managed_identity: bool = False
    client_id: str | None = None


@dataclass(frozen=True)
class AcsConnection:
    """How to reach Azure Communication Services: an access key, or the app's identity."""

    endpoint: str
    access_key: str | None = None
    client_id: str | None = None  # user-assigned identity (AZURE_CLIENT_ID)


@dataclass(frozen=True)
class Settings:
    app_storage: StorageConnection
    leads_storage: StorageConnection
    leads_table: str
    poll_schedule: str
    poll_overlap: timedelta
    start_from: datetime | None
    acs: AcsConnection
    email_sender: str
    alert_recipients: tuple[str, ...]
    admin_recipients: tuple[str, ...]
    duplicate_window: timedelta


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise `SettingsError` naming the first bad one."""
    env = os.environ if env is None else env
    app_storage = _storage(env, "AzureWebJobsStorage", queues=True)
    if app_storage is None:
        raise SettingsError(
            "AzureWebJobsStorage is not set: give a connection string, or "
            "AzureWebJobsStorage__tableServiceUri and AzureWebJobsStorage__queueServiceUri "
            "for the app's identity; see the settings table in README.md"
        )
    alert_recipients = _recipients(env, "LEAD_ALERT_RECIPIENTS", required=True)
    return Settings(
        app_storage=app_storage,
        leads_storage=_storage(env, "LEADS_STORAGE", queues=False) or app_storage,
        leads_table=_table_name(env, "LEADS_TABLE_NAME"),
        poll_schedule=poll_schedule(env),
        poll_overlap=timedelta(
            minutes=_int(env, "LEADS_POLL_OVERLAP_MINUTES", DEFAULT_OVERLAP_MINUTES, low=1)
        ),
        start_from=_timestamp(env, "LEADS_START_FROM"),
        acs=_acs(env),
        email_sender=_email("EMAIL_SENDER", _required(env, "EMAIL_SENDER")),
        alert_recipients=alert_recipients,
        admin_recipients=_recipients(env, "LEAD_ADMIN_RECIPIENTS") or alert_recipients,
        duplicate_window=timedelta(
            days=_int(env, "LEAD_DUPLICATE_WINDOW_DAYS", DEFAULT_DUPLICATE_WINDOW_DAYS, low=0)
        ),
    )


def local_settings_values(path: Path) -> dict[str, str]:
    """Settings from a file: the `Values` of a local.settings.json (as `func start` reads them),
    or the list `az functionapp config appsettings list` prints ([{"name", "value"}, ...]).

    Non-string values are rejected with the key named: Core Tools would refuse them too.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SettingsError(f"{path} is not valid JSON: {err}") from None
    if (
        isinstance(document, list)
        and document
        and all(isinstance(item, dict) and "name" in item for item in document)
    ):
        values = {item["name"]: item.get("value") or "" for item in document}
    else:
        values = document.get("Values") if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise SettingsError(
            f'{path} has no "Values" object (nor is it the list that '
            "`az functionapp config appsettings list` prints)"
        )
    for key, value in values.items():
        if not isinstance(value, str):
            raise SettingsError(f"{path}: Values.{key} must be a string, got {value!r}")
    return dict(values)


def environment_with_local_settings(
    path: Path | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment, filled in from a local.settings.json where a variable is not set.

    Variables already set win, so one setting can be overridden on the command line.
    """
    environ = dict(os.environ if environ is None else environ)
    if path is None:
        return environ
    return {**local_settings_values(path), **environ}


def poll_schedule(env: Mapping[str, str] | None = None) -> str:
    """The poller's NCRONTAB schedule (six fields, seconds first), validated."""
    env = os.environ if env is None else env
    value = _optional(env, "LEADS_POLL_SCHEDULE") or DEFAULT_POLL_SCHEDULE
    fields = value.split()
    if len(fields) != 6 or not all(_NCRONTAB_FIELD.match(f) for f in fields):
        raise SettingsError(
            f"LEADS_POLL_SCHEDULE must be an NCRONTAB expression with six fields "
            f"(second minute hour day month weekday), e.g. {DEFAULT_POLL_SCHEDULE!r}; "
            f"got {value!r}"
        )
    return " ".join(fields)


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _required(env: Mapping[str, str], name: str) -> str:
    value = _optional(env, name)
    if value is None:
        raise SettingsError(f"{name} is not set; see the settings table in README.md")
    return value


def _storage(env: Mapping[str, str], name: str, *, queues: bool) -> StorageConnection | None:
    """A connection string in NAME, or the identity-based NAME__* settings; None if neither."""
    connection_string = _optional(env, name)
    if connection_string is not None:
        return StorageConnection(setting=name, connection_string=connection_string)
    table_uri = _optional(env, f"{name}__tableServiceUri")
    queue_uri = _optional(env, f"{name}__queueServiceUri") if queues else None
    if table_uri is None and queue_uri is None:
        return None
    needed = [f"{name}__tableServiceUri"] + ([f"{name}__queueServiceUri"] if queues else [])
    missing = [setting for setting in needed if _optional(env, setting) is None]
    if missing:
        raise SettingsError(f"{', '.join(missing)} must be set with the other {name}__ settings")
    credential = _optional(env, f"{name}__credential")
    if credential is not None and credential.lower() != "managedidentity":
        raise SettingsError(f"{name}__credential must be 'managedidentity', got {credential!r}")
    return StorageConnection(
        setting=name,
        table_service_uri=_endpoint(f"{name}__tableServiceUri", table_uri) if table_uri else None,
        queue_service_uri=_endpoint(f"{name}__queueServiceUri", queue_uri) if queue_uri else None,
        managed_identity=credential is not None,
        client_id=_optional(env, f"{name}__clientId"),
    )


def _int(env: Mapping[str, str], name: str, default: int, *, low: int) -> int:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < low:
        raise SettingsError(f"{name} must be at least {low}, got {value}")
    return value


def _table_name(env: Mapping[str, str], name: str) -> str:
    value = _optional(env, name) or DEFAULT_LEADS_TABLE
    if not _TABLE_NAME.match(value):
        raise SettingsError(
            f"{name} must be a table name (3-63 letters or digits, starting with a letter), "
            f"got {value!r}"
        )
    return value


def _timestamp(env: Mapping[str, str], name: str) -> datetime | None:
    raw = _optional(env, name)
    if raw is None:
        return None
    try:
        return parse_utc_time(raw)
    except ValueError:
        raise SettingsError(
            f"{name} must be an ISO-8601 date or time, e.g. 2026-01-31T00:00:00Z; got {raw!r}"
        ) from None


def parse_utc_time(text: str) -> datetime:
    """An ISO-8601 date or time (`Z` allowed; no zone means UTC), in UTC; ValueError if not."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _email(name: str, value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise SettingsError(f"{name} holds an invalid email address {value!r}: {err}") from None


def _recipients(env: Mapping[str, str], name: str, *, required: bool = False) -> tuple[str, ...]:
    raw = _required(env, name) if required else _optional(env, name)
    if raw is None:
        return ()
    addresses = [part.strip() for part in re.split(r"[,;]", raw) if part.strip()]
    if not addresses:
        raise SettingsError(f"{name} must list at least one email address, comma-separated")
    unique = dict.fromkeys(_email(name, address) for address in addresses)
    return tuple(unique)


def _acs(env: Mapping[str, str]) -> AcsConnection:
    conn = _optional(env, "ACS_CONNECTION_STRING")
    if conn is not None:
        return parse_acs_connection_string(conn)
    endpoint = _optional(env, "ACS_ENDPOINT")
    if endpoint is None:
        raise SettingsError(
            "Set ACS_CONNECTION_STRING (endpoint=...;accesskey=...) or ACS_ENDPOINT "
            "(with the app's managed identity) so alerts can be emailed"
        )
    return AcsConnection(
        endpoint=_endpoint("ACS_ENDPOINT", endpoint), client_id=_optional(env, "AZURE_CLIENT_ID")
    )


def parse_acs_connection_string(conn: str) -> AcsConnection:
    """Split `endpoint=...;accesskey=...` (keys in any case); the key must be base64."""
    parts: dict[str, str] = {}
    for part in conn.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            parts[key.strip().lower()] = value.strip()
    endpoint, key = parts.get("endpoint"), parts.get("accesskey")
    if not endpoint or not key:
        raise SettingsError(
            "ACS_CONNECTION_STRING must look like endpoint=https://<resource>.communication."
            "azure.com/;accesskey=<key>"
        )
    try:
        base64.b64decode(key, validate=True)
    except binascii.Error:
        raise SettingsError("ACS_CONNECTION_STRING has an accesskey that is not base64") from None
    return AcsConnection(endpoint=_endpoint("ACS_CONNECTION_STRING", endpoint), access_key=key)


def _endpoint(name: str, value: str) -> str:
    """An http(s) URL of a service: scheme and host (and an account path for emulators)."""
    value = value.rstrip("/")
    if not re.match(r"^https?://[^/\s]+(/[^/\s]+)?$", value):
        raise SettingsError(f"{name} must hold an http(s) endpoint URL, got {value!r}")
    return value
