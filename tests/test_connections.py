"""Each way of configuring a connection yields the right SDK client; no network involved."""

from __future__ import annotations

import pytest
from azure.core.credentials import AzureKeyCredential, AzureNamedKeyCredential
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.queue import TextBase64EncodePolicy

from shared.connections import acs_credential, queue_client, table_service
from shared.services import build_services
from shared.settings import SettingsError, load_settings

APP_TABLES = "https://stapp.table.core.windows.net"
APP_QUEUES = "https://stapp.queue.core.windows.net"
LEADS_TABLES = "https://stleads.table.core.windows.net"
CLIENT_ID = "00000000-1111-2222-3333-444444444444"
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=YWJj;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)


def azure_env(**overrides: str) -> dict[str, str]:
    """App settings as the Bicep sets them: identities only, no keys."""
    env = {
        "AzureWebJobsStorage__tableServiceUri": APP_TABLES,
        "AzureWebJobsStorage__queueServiceUri": APP_QUEUES,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "LEADS_STORAGE__tableServiceUri": LEADS_TABLES,
        "LEADS_STORAGE__credential": "managedidentity",
        "LEADS_STORAGE__clientId": CLIENT_ID,
        "ACS_ENDPOINT": "https://acs-leads.unitedstates.communication.azure.com",
        "AZURE_CLIENT_ID": CLIENT_ID,
        "EMAIL_SENDER": "DoNotReply@0000.azurecomm.net",
        "LEAD_ALERT_RECIPIENTS": "sales@contoso.com",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def test_identity_settings_are_read_as_identity_connections():
    settings = load_settings(azure_env())
    app, leads = settings.app_storage, settings.leads_storage
    assert (app.table_service_uri, app.queue_service_uri) == (APP_TABLES, APP_QUEUES)
    assert app.connection_string is None and app.managed_identity and app.client_id == CLIENT_ID
    assert leads.table_service_uri == LEADS_TABLES and leads.queue_service_uri is None
    assert (settings.acs.access_key, settings.acs.client_id) == (None, CLIENT_ID)


def test_leads_storage_defaults_to_the_app_storage_identity():
    env = azure_env()
    for key in [k for k in env if k.startswith("LEADS_STORAGE")]:
        del env[key]
    settings = load_settings(env)
    assert settings.leads_storage == settings.app_storage


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__queueServiceUri"),
        ("AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__tableServiceUri"),
    ],
)
def test_incomplete_identity_settings_name_what_is_missing(missing: str, named: str):
    env = azure_env()
    del env[missing]
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_no_storage_setting_at_all_names_both_forms():
    env = {k: v for k, v in azure_env().items() if not k.startswith("AzureWebJobsStorage")}
    with pytest.raises(SettingsError, match="AzureWebJobsStorage__tableServiceUri"):
        load_settings(env)


def test_unknown_credential_kind_is_rejected():
    with pytest.raises(SettingsError, match="LEADS_STORAGE__credential"):
        load_settings(azure_env(LEADS_STORAGE__credential="connectionstring"))


def test_managed_identity_builds_identity_clients_for_the_service_uris():
    settings = load_settings(azure_env())
    tables = table_service(settings.app_storage)
    assert tables.url.startswith(APP_TABLES)
    assert isinstance(tables.credential, ManagedIdentityCredential)
    queue = queue_client(settings.app_storage, "lead-alerts")
    assert queue.url.startswith(APP_QUEUES + "/lead-alerts")
    assert isinstance(queue.credential, ManagedIdentityCredential)
    assert isinstance(queue._message_encode_policy, TextBase64EncodePolicy)
    assert tables.credential is queue.credential  # one token cache per identity


def test_without_credential_setting_the_developer_sign_in_is_used():
    env = azure_env(AzureWebJobsStorage__credential=None, AzureWebJobsStorage__clientId=None)
    settings = load_settings(env)
    assert isinstance(table_service(settings.app_storage).credential, DefaultAzureCredential)


def test_connection_string_builds_key_clients():
    env = azure_env(AzureWebJobsStorage=AZURITE)
    settings = load_settings(env)
    tables = table_service(settings.app_storage)
    assert tables.url.startswith("http://127.0.0.1:10002/devstoreaccount1")
    assert isinstance(tables.credential, AzureNamedKeyCredential)
    queue = queue_client(settings.app_storage, "lead-alerts")
    assert queue.url.startswith("http://127.0.0.1:10001/devstoreaccount1/lead-alerts")


def test_acs_key_or_identity():
    keyed = load_settings(
        azure_env(
            ACS_CONNECTION_STRING="endpoint=https://x.communication.azure.com/;accesskey=YWJj"
        )
    )
    assert isinstance(acs_credential(keyed.acs), AzureKeyCredential)
    assert isinstance(acs_credential(load_settings(azure_env()).acs), DefaultAzureCredential)


def test_services_for_azure_settings_point_at_both_accounts():
    services = build_services(load_settings(azure_env()))
    assert services.leads._table.url == LEADS_TABLES
    assert services.leads.name == "MarketplaceLeads"
    assert services._app_tables.url.startswith(APP_TABLES)
    assert services._queue_client.url.startswith(APP_QUEUES + "/lead-alerts")
