"""SDK clients for the configured connections: connection strings locally, identities in Azure.

In Azure the app holds no keys: storage and ACS are reached with the function app's managed
identity (user-assigned when a client id is configured). Locally, connection strings point at
Azurite and the local ACS endpoint.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from azure.core.credentials import AzureKeyCredential, TokenCredential
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.settings import AcsConnection, StorageConnection


@cache
def identity_credential(managed_identity: bool, client_id: str | None) -> TokenCredential:
    """One credential per identity, shared by every client so tokens are cached once.

    `managedidentity` (as the Functions host reads `__credential`) means the app's managed
    identity only; otherwise DefaultAzureCredential, which also finds a developer's sign-in.
    """
    if managed_identity:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(managed_identity_client_id=client_id)


def storage_credential(connection: StorageConnection) -> TokenCredential:
    return identity_credential(connection.managed_identity, connection.client_id)


def table_service(connection: StorageConnection, **options: Any) -> TableServiceClient:
    if connection.connection_string is not None:
        return TableServiceClient.from_connection_string(connection.connection_string, **options)
    assert connection.table_service_uri is not None
    return TableServiceClient(
        endpoint=connection.table_service_uri,
        credential=storage_credential(connection),
        **options,
    )


def queue_client(
    connection: StorageConnection, queue_name: str, *, raw: bool = False, **options: Any
) -> QueueClient:
    """A queue client that writes base64 text, the encoding the queue trigger expects
    (`raw`: messages as stored, for moving them without decoding)."""
    codecs = (
        {}
        if raw
        else {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
        }
    )
    if connection.connection_string is not None:
        return QueueClient.from_connection_string(
            connection.connection_string, queue_name, **codecs, **options
        )
    assert connection.queue_service_uri is not None
    return QueueClient(
        account_url=connection.queue_service_uri,
        queue_name=queue_name,
        credential=storage_credential(connection),
        **codecs,
        **options,
    )


def acs_credential(acs: AcsConnection) -> AzureKeyCredential | TokenCredential:
    """The access key when configured, else the app's identity (managed identity in Azure)."""
    if acs.access_key is not None:
        return AzureKeyCredential(acs.access_key)
    return identity_credential(False, acs.client_id)
