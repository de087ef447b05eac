"""Every app setting the code reads is set by the Bicep and the local sample, and nothing else.

The names are not listed by hand: `load_settings` runs against a mapping that records every
name it looks up, once with the Bicep's app settings (identity connections, Azure) and once
with local.settings.sample.json (connection strings, Azurite).
"""

from __future__ import annotations

import json

import tree_sitter
import tree_sitter_bicep

from shared.settings import load_settings
from tests.conftest import ROOT

#: Read by the Functions host or platform, not by the app's code.
HOST_SETTINGS_AZURE = {
    "AzureWebJobsStorage__blobServiceUri",  # the host's own blobs (leases, deployment)
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
HOST_SETTINGS_LOCAL = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsFeatureFlags"}
#: Key-based forms the code accepts but Azure must never use (no keys in app settings).
KEY_SETTINGS = {"AzureWebJobsStorage", "LEADS_STORAGE", "ACS_CONNECTION_STRING"}


class RecordingEnv(dict):
    """A settings mapping that remembers every name looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.looked_up: set[str] = set()

    def get(self, key, default=None):
        self.looked_up.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.looked_up.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.looked_up.add(key)
        return super().__contains__(key)


def bicep_app_settings() -> set[str]:
    """Keys of `var appSettings = { ... }` in infra/main.bicep, read with the Bicep grammar."""
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    tree = parser.parse((ROOT / "infra" / "main.bicep").read_bytes())
    for node in tree.root_node.children:
        if node.type != "variable_declaration":
            continue
        name = next(child for child in node.named_children if child.type == "identifier")
        if name.text != b"appSettings":
            continue
        body = next(child for child in node.named_children if child.type == "object")
        keys = set()
        for prop in body.named_children:
            if prop.type == "object_property":
                key = prop.named_children[0]
                keys.add(key.text.decode().strip("'"))
        return keys
    raise AssertionError("infra/main.bicep has no `var appSettings = { ... }`")


def plausible(name: str) -> str:
    """A valid value for a setting, so load_settings walks the same path as in Azure."""
    if name.endswith("ServiceUri"):
        kind = name.rpartition("__")[2].removesuffix("ServiceUri")
        return f"https://account.{kind}.core.windows.net"
    values = {
        "credential": "managedidentity",
        "clientId": "00000000-0000-0000-0000-000000000000",
        "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000000",
        "ACS_ENDPOINT": "https://acs.unitedstates.communication.azure.com",
        "EMAIL_SENDER": "DoNotReply@0000.azurecomm.net",
        "LEAD_ALERT_RECIPIENTS": "sales@contoso.com",
        "LEAD_ADMIN_RECIPIENTS": "admin@contoso.com",
        "LEADS_TABLE_NAME": "MarketplaceLeads",
        "LEADS_POLL_SCHEDULE": "0 */1 * * * *",
        "LEADS_POLL_OVERLAP_MINUTES": "5",
        "LEAD_DUPLICATE_WINDOW_DAYS": "14",
        "LEADS_START_FROM": "2026-01-01T00:00:00Z",
    }
    return values.get(name.rpartition("__")[2], values.get(name, "x"))


def read_by_code(values: dict[str, str]) -> set[str]:
    env = RecordingEnv(values)
    load_settings(env)
    return env.looked_up


def test_bicep_sets_exactly_the_settings_the_code_reads():
    in_bicep = bicep_app_settings()
    read = read_by_code({name: plausible(name) for name in in_bicep})
    assert in_bicep - HOST_SETTINGS_AZURE - read == set(), "set by Bicep, read by nobody"
    assert read - in_bicep - KEY_SETTINGS == set(), "read by the code, not set by Bicep"
    assert in_bicep & KEY_SETTINGS == set(), "no keys or connection strings in Azure"


def test_local_sample_lists_the_settings_the_code_reads():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    read_local = read_by_code(sample)
    read_azure = read_by_code({name: plausible(name) for name in bicep_app_settings()})
    assert set(sample) - HOST_SETTINGS_LOCAL - read_local - read_azure == set()
    identity_only = {name for name in read_azure if "__" in name} | {"AZURE_CLIENT_ID"}
    assert read_local - set(sample) - identity_only == set()


def test_readme_documents_every_setting_the_code_reads():
    readme = (ROOT / "README.md").read_text()
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    read = read_by_code(sample) | read_by_code(
        {name: plausible(name) for name in bicep_app_settings()}
    )
    assert {name for name in read if f"`{name}`" not in readme} == set()


def test_recording_sees_both_connection_forms():
    """The extraction itself: a connection string hides the identity names, and vice versa."""
    local = read_by_code({"AzureWebJobsStorage": "UseDevelopmentStorage=true"} | _rest())
    assert "AzureWebJobsStorage" in local
    assert "AzureWebJobsStorage__tableServiceUri" not in local
    azure = read_by_code(
        {
            "AzureWebJobsStorage__tableServiceUri": plausible("x__tableServiceUri"),
            "AzureWebJobsStorage__queueServiceUri": plausible("x__queueServiceUri"),
        }
        | _rest()
    )
    assert {"AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId"} <= azure


def _rest() -> dict[str, str]:
    return {
        "ACS_ENDPOINT": plausible("ACS_ENDPOINT"),
        "EMAIL_SENDER": plausible("EMAIL_SENDER"),
        "LEAD_ALERT_RECIPIENTS": plausible("LEAD_ALERT_RECIPIENTS"),
    }
