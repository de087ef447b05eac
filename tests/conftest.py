"""Shared fixtures: a real Azurite and a local ACS email endpoint, started once per session.

Integration tests drive `function_app` the way the Functions host does (see shared/hostdriver.py):
the settings come from environment variables set here before the app is imported.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueServiceClient

from shared.azurite import Azurite
from shared.hostdriver import HostDriver
from shared.local_email import LocalEmailService
from shared.services import Services, build_services
from shared.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SENDER = "DoNotReply@leads.contoso.com"
SALES = "sales@contoso.com"
ADMINS = "marketplace-admin@contoso.com"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def email_service() -> Iterator[LocalEmailService]:
    with LocalEmailService() as service:
        yield service


@pytest.fixture(scope="session")
def app_env(azurite: Azurite, email_service: LocalEmailService) -> Iterator[dict[str, str]]:
    """The app settings for the session, as the host would pass them (environment)."""
    values = {
        "AzureWebJobsStorage": azurite.connection_string,
        "LEADS_STORAGE": azurite.connection_string,
        "LEADS_TABLE_NAME": "MarketplaceLeads",
        "ACS_CONNECTION_STRING": email_service.connection_string,
        "EMAIL_SENDER": SENDER,
        "LEAD_ALERT_RECIPIENTS": SALES,
        "LEAD_ADMIN_RECIPIENTS": ADMINS,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("LEADS_START_FROM", "ACS_ENDPOINT", "LEAD_DUPLICATE_WINDOW_DAYS"):
            patch.delenv(name, raising=False)
        for name, value in values.items():
            patch.setenv(name, value)
        yield values


@pytest.fixture(scope="session")
def host(app_env: dict[str, str]) -> HostDriver:
    """The function app, indexed once as the host does, with failed messages retried at once."""
    function_app = importlib.import_module("function_app")
    return HostDriver(function_app.app, host_json=ROOT / "host.json", retry_delay_seconds=0)


@pytest.fixture
def clean_storage(azurite: Azurite, email_service: LocalEmailService) -> None:
    """Every integration test starts from empty storage and an empty mailbox."""
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    for table in tables.list_tables():
        tables.delete_table(table.name)
    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    for queue in queues.list_queues():
        queues.delete_queue(queue.name)
    email_service.clear()
    email_service.clear_outage()


@pytest.fixture
def leads(app_env: dict[str, str], clean_storage: None) -> TableClient:
    """The marketplace's leads table, created empty (as Partner Center does)."""
    service = TableServiceClient.from_connection_string(app_env["LEADS_STORAGE"])
    return service.create_table(app_env["LEADS_TABLE_NAME"])


@pytest.fixture
def services(app_env: dict[str, str], clean_storage: None) -> Services:
    """Fresh clients for the current environment (tests may change settings first)."""
    return build_services(load_settings(os.environ))
