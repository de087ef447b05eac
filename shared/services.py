"""The storage and email clients the use cases need, built from settings in one place."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from shared.connections import queue_client, table_service
from shared.mailer import Mailer, build_email_client
from shared.settings import (
    CHECKPOINT_TABLE,
    HISTORY_TABLE,
    LEAD_QUEUE_NAME,
    LEDGER_TABLE,
    POISON_QUEUE_NAME,
    Settings,
)
from shared.store import (
    CheckpointStore,
    HistoryStore,
    LeadQueue,
    LeadsTable,
    Ledger,
    PoisonQueue,
    queue_depth,
)

#: How long a poller's claim on a row is honoured before another poller may take it over.
CLAIM_LEASE = timedelta(minutes=2)


@dataclass
class Services:
    settings: Settings
    leads: LeadsTable
    checkpoints: CheckpointStore
    ledger: Ledger
    histories: HistoryStore
    queue: LeadQueue
    poison: PoisonQueue
    mailer: Mailer
    _app_tables: TableServiceClient
    _queue_client: QueueClient

    def queue_depth(self) -> int | None:
        return queue_depth(self._queue_client)

    def ensure_app_storage(self) -> None:
        """Create the app's tables and queue; the checkpoint table last, as the marker."""
        for name in (LEDGER_TABLE, HISTORY_TABLE, CHECKPOINT_TABLE):
            self._app_tables.create_table_if_not_exists(name)
        with contextlib.suppress(ResourceExistsError):
            self._queue_client.create_queue()


def build_services(settings: Settings, **client_options: Any) -> Services:
    """Clients for the settings; `client_options` go to every SDK client (e.g. hooks)."""
    app_tables = table_service(settings.app_storage, **client_options)
    leads_tables = (
        app_tables
        if settings.leads_storage == settings.app_storage
        else table_service(settings.leads_storage, **client_options)
    )
    lead_queue = queue_client(settings.app_storage, LEAD_QUEUE_NAME, **client_options)
    poison = PoisonQueue(
        queue_client(settings.app_storage, POISON_QUEUE_NAME, raw=True, **client_options),
        queue_client(settings.app_storage, LEAD_QUEUE_NAME, raw=True, **client_options),
    )
    return Services(
        settings=settings,
        leads=LeadsTable(leads_tables.get_table_client(settings.leads_table)),
        checkpoints=CheckpointStore(
            app_tables.get_table_client(CHECKPOINT_TABLE), settings.leads_table
        ),
        ledger=Ledger(app_tables.get_table_client(LEDGER_TABLE), lease=CLAIM_LEASE),
        histories=HistoryStore(app_tables.get_table_client(HISTORY_TABLE)),
        queue=LeadQueue(lead_queue),
        poison=poison,
        mailer=Mailer(build_email_client(settings.acs, **client_options)),
        _app_tables=app_tables,
        _queue_client=lead_queue,
    )


@lru_cache(maxsize=4)
def services_for(settings: Settings) -> Services:
    """One set of clients per distinct settings, reused across invocations of a worker."""
    return build_services(settings)
