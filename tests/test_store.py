"""Storage-layer behaviour against a real Azurite: limits and conditional writes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from azure.data.tables import TableServiceClient

from shared import sample_leads
from shared.settings import CHECKPOINT_TABLE
from shared.store import MAX_SEEN_JSON, Checkpoint, CheckpointStore, LeadsTable


def test_checkpoint_with_a_burst_of_rows_keeps_the_newest_within_the_property_limit(
    services, app_env
):
    services.ensure_app_storage()
    store = CheckpointStore(
        TableServiceClient.from_connection_string(app_env["AzureWebJobsStorage"]).get_table_client(
            CHECKPOINT_TABLE
        ),
        "MarketplaceLeads",
    )
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    created = store.create(start)
    seen = {
        f"12:2F1:2F2026/row-{n:05d}": (start + timedelta(milliseconds=n)).isoformat()
        for n in range(3000)
    }
    assert len(json.dumps(seen)) > MAX_SEEN_JSON  # more than one property can hold

    assert store.save(Checkpoint(start, start + timedelta(seconds=3), seen, created.etag))
    saved = store.read()
    assert saved is not None and 0 < len(saved.seen) < len(seen)
    oldest_kept = min(saved.seen.values())
    assert all(ts < oldest_kept for key, ts in seen.items() if key not in saved.seen)


def test_checkpoint_save_loses_to_a_concurrent_save(services, app_env):
    services.ensure_app_storage()
    store = services.checkpoints
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    first = store.create(start)
    assert store.save(Checkpoint(start, start + timedelta(minutes=1), {}, first.etag))
    assert not store.save(Checkpoint(start, start + timedelta(minutes=2), {}, first.etag))
    assert store.read().watermark == start + timedelta(minutes=1)


def test_changed_since_reads_every_page(leads):
    rows = sample_leads.bulk_rows(7)
    for row in rows:
        leads.create_entity(row)
    small_pages = LeadsTable(leads, page_size=2)  # 4 pages, 3 of them behind a continuation
    found = {
        row.ref.row_key
        for row in small_pages.changed_since(datetime(2000, 1, 1, tzinfo=timezone.utc))
    }
    assert found == {row["RowKey"] for row in rows}
    pages = list(leads.query_entities("PartitionKey ne ''", results_per_page=2).by_page())
    assert len(pages) >= 4  # the paging really happens
