"""Table and queue access: the leads table, the checkpoint, the ledger, customer histories.

This is the only module that talks to Azure Storage. Every write that guards exactly-once
delivery is atomic on its own: an insert that fails with 409 when the row exists, or an update
with If-Match that fails with 412 when someone else wrote first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TableErrorCode, UpdateMode
from azure.storage.queue import QueueClient

from shared.model import DecisionKind, HistoryEntry, RowRef
from shared.parsing import parse_created_time, row_timestamp

log = logging.getLogger(__name__)

#: Characters Azure Tables forbids in PartitionKey/RowKey, plus our escape character.
_FORBIDDEN_IN_KEYS = set("/\\#?%")
#: A seen-set larger than this (characters of JSON) is trimmed, oldest first; it is only a
#: cache. A string property holds at most 32K UTF-16 characters (64 KiB).
MAX_SEEN_JSON = 30_000
#: How many history entries are kept per customer and offer (the newest).
MAX_HISTORY_ENTRIES = 100


def escape_key(value: str) -> str:
    """Make any text a valid, distinct table key: `%XX` for forbidden and control characters."""
    escaped = "".join(
        f"%{ord(ch):02X}"
        if ch in _FORBIDDEN_IN_KEYS or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0
        else ch
        for ch in value
    )
    if len(escaped.encode("utf-8")) > 512:  # keys may hold at most 1 KiB
        escaped = "sha256-" + hashlib.sha256(value.encode("utf-8")).hexdigest()
    return escaped


def write_if_unchanged(
    table: TableClient, entity: dict, etag: str | None, mode: UpdateMode
) -> bool:
    """Insert when `etag` is None, else update with If-Match: the atomic step every exactly-once
    guard rests on. False when another writer got there first (409 or 412)."""
    try:
        if etag is None:
            table.create_entity(entity)
        else:
            table.update_entity(
                entity, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified
            )
    except (ResourceExistsError, ResourceModifiedError):
        return False
    return True


def row_cache_key(ref: RowRef) -> str:
    return f"{escape_key(ref.partition_key)}/{escape_key(ref.row_key)}"


# --------------------------------------------------------------------------- leads table


@dataclass(frozen=True)
class ChangedRow:
    ref: RowRef
    timestamp: datetime  # last modified, set by the service
    created: datetime | None  # the row's CreatedTime, when it can be read


class LeadsTableMissing(LookupError):
    """Partner Center has not created the leads table yet (it does with the first lead)."""


class LeadsTable:
    """The marketplace's table, read only."""

    def __init__(self, table: TableClient, *, page_size: int = 1000) -> None:
        self._table = table
        self._page_size = page_size  # the service's maximum; smaller only to test paging

    @property
    def name(self) -> str:
        return self._table.table_name

    def changed_since(self, lower: datetime) -> Iterator[ChangedRow]:
        """Every row modified at or after `lower`, across all pages (keys and times only).

        Timestamp is not indexed, so the service scans; pages may be empty and still carry a
        continuation token, which the SDK's pager follows until there is none.
        """
        entities = self._table.query_entities(
            "Timestamp ge @lower",
            parameters={"lower": lower},
            select=["PartitionKey", "RowKey", "Timestamp", "CreatedTime"],
            results_per_page=self._page_size,
        )
        try:
            for entity in entities:
                timestamp = row_timestamp(entity)
                if timestamp is not None:
                    yield ChangedRow(
                        RowRef(entity["PartitionKey"], entity["RowKey"]),
                        timestamp,
                        parse_created_time(entity.get("CreatedTime")),
                    )
        except ResourceNotFoundError as err:
            if _is_table_missing(err):
                raise LeadsTableMissing(self.name) from err
            raise

    def written_between(self, since: datetime, until: datetime) -> Iterator[TableEntity]:
        """Whole rows last modified in [since, until) (for `cli backfill`)."""
        entities = self._table.query_entities(
            "Timestamp ge @since and Timestamp lt @until",
            parameters={"since": since, "until": until},
            results_per_page=self._page_size,
        )
        try:
            yield from entities
        except ResourceNotFoundError as err:
            if _is_table_missing(err):
                raise LeadsTableMissing(self.name) from err
            raise

    def get(self, ref: RowRef) -> TableEntity | None:
        try:
            return self._table.get_entity(ref.partition_key, ref.row_key)
        except ResourceNotFoundError:
            return None


# --------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """How far the poller has read the leads table.

    `floor` is fixed at the first run: nothing older is ever alerted. `watermark` is the newest
    Timestamp known to be claimed and enqueued. `seen` caches the keys already enqueued inside
    the overlap window, so re-reading that window costs no writes.
    """

    floor: datetime
    watermark: datetime
    seen: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    saved_at: datetime | None = None  # when a poller last saved it (the service's Timestamp)


class CheckpointStore:
    PARTITION = "poller"

    def __init__(self, table: TableClient, leads_table_name: str) -> None:
        self._table = table
        self._row = escape_key(leads_table_name.lower())

    def read(self) -> Checkpoint | None:
        """The checkpoint, or None before the first run (raises if the table is missing)."""
        try:
            entity = self._table.get_entity(self.PARTITION, self._row)
        except ResourceNotFoundError as err:
            if _is_table_missing(err):
                raise
            return None
        return Checkpoint(
            floor=entity["Floor"],
            watermark=entity["Watermark"],
            seen=json.loads(entity.get("Seen") or "{}"),
            etag=entity.metadata["etag"],
            saved_at=entity.metadata.get("timestamp"),
        )

    def create(self, floor: datetime) -> Checkpoint:
        """The first checkpoint; if another poller made it first, theirs."""
        try:
            metadata = self._table.create_entity(
                {
                    "PartitionKey": self.PARTITION,
                    "RowKey": self._row,
                    "Floor": floor,
                    "Watermark": floor,
                    "Seen": "{}",
                }
            )
            return Checkpoint(floor=floor, watermark=floor, seen={}, etag=metadata["etag"])
        except ResourceExistsError:
            existing = self.read()
            assert existing is not None
            return existing

    def save(self, checkpoint: Checkpoint) -> bool:
        """Write with If-Match; False when another poller saved in between (theirs stands)."""
        seen = dict(checkpoint.seen)
        text = json.dumps(seen, separators=(",", ":"))
        while len(text) > MAX_SEEN_JSON and seen:
            for key in sorted(seen, key=seen.__getitem__)[: max(1, len(seen) // 4)]:
                del seen[key]
            text = json.dumps(seen, separators=(",", ":"))
        entity = {
            "PartitionKey": self.PARTITION,
            "RowKey": self._row,
            "Floor": checkpoint.floor,
            "Watermark": checkpoint.watermark,
            "Seen": text,
        }
        return write_if_unchanged(self._table, entity, checkpoint.etag, UpdateMode.REPLACE)


def _is_table_missing(err: ResourceNotFoundError) -> bool:
    return getattr(err, "error_code", None) == TableErrorCode.TABLE_NOT_FOUND


# --------------------------------------------------------------------------- ledger


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this poller inserted the claim: it must enqueue
    TAKEN_OVER = "taken_over"  # a stale claim (its poller died) now belongs to this poller
    ENQUEUED = "enqueued"  # someone already enqueued (or processed) the row
    HELD = "held"  # another poller claimed it moments ago and will enqueue it


class Status(StrEnum):
    DECIDED = "decided"  # decision written; mail may or may not have gone out
    SENT = "sent"  # mail accepted by ACS
    RECORDED = "recorded"  # no mail needed (duplicate, do-not-contact)
    FAILED = "failed"  # ACS accepted the mail but reported it failed
    SOURCE_MISSING = "source_missing"  # the row was deleted before it could be read

    @property
    def final(self) -> bool:
        return self is not Status.DECIDED


@dataclass(frozen=True)
class LedgerRecord:
    status: Status | None
    kind: DecisionKind | None
    operation_id: str | None
    identity: str | None
    earlier: tuple[HistoryEntry, ...]
    lease_until: datetime | None  # a processor holds the right to send until then
    etag: str
    resend_id: str | None = None  # the latest operator-requested extra mail (`cli resend`)
    resend_status: str | None = None  # its ACS status once sent
    resend_lease_until: datetime | None = None


class Ledger:
    """One row per source row; its state only moves forward: claimed, enqueued, decided, done."""

    def __init__(self, table: TableClient, lease: timedelta) -> None:
        self._table = table
        self._lease = lease

    @staticmethod
    def _keys(ref: RowRef) -> dict[str, str]:
        return {"PartitionKey": escape_key(ref.partition_key), "RowKey": escape_key(ref.row_key)}

    def claim(self, ref: RowRef, timestamp: datetime, claimer: str, now: datetime) -> ClaimOutcome:
        """Atomically claim a source row for enqueueing (insert; 409 means it exists)."""
        entity = {
            **self._keys(ref),
            "SourcePartitionKey": ref.partition_key,
            "SourceRowKey": ref.row_key,
            "SourceTimestamp": timestamp,
            "ClaimedAt": now,
            "ClaimedBy": claimer,
        }
        if write_if_unchanged(self._table, entity, None, UpdateMode.MERGE):
            return ClaimOutcome.CLAIMED
        existing = self._table.get_entity(**_key_args(self._keys(ref)))
        if existing.get("EnqueuedAt") or existing.get("Status"):
            return ClaimOutcome.ENQUEUED
        claimed_at = existing.get("ClaimedAt")
        if isinstance(claimed_at, datetime) and now - claimed_at < self._lease:
            return ClaimOutcome.HELD
        takeover = {**self._keys(ref), "ClaimedAt": now, "ClaimedBy": claimer}
        if write_if_unchanged(self._table, takeover, existing.metadata["etag"], UpdateMode.MERGE):
            return ClaimOutcome.TAKEN_OVER
        return ClaimOutcome.HELD

    def mark_enqueued(self, ref: RowRef, now: datetime) -> None:
        self._merge(ref, {"EnqueuedAt": now})

    def get(self, ref: RowRef) -> LedgerRecord | None:
        try:
            entity = self._table.get_entity(**_key_args(self._keys(ref)))
        except ResourceNotFoundError:
            return None
        return LedgerRecord(
            status=Status(entity["Status"]) if entity.get("Status") else None,
            kind=DecisionKind(entity["Decision"]) if entity.get("Decision") else None,
            operation_id=entity.get("OperationId") or None,
            identity=entity.get("Identity") or None,
            earlier=entries_from_json(entity.get("Earlier")),
            lease_until=_time(entity.get("SendLeaseUntil")),
            etag=entity.metadata["etag"],
            resend_id=entity.get("ResendOperationId") or None,
            resend_status=entity.get("ResendStatus") or None,
            resend_lease_until=_time(entity.get("ResendLeaseUntil")),
        )

    def record_decision(
        self,
        ref: RowRef,
        record: LedgerRecord | None,
        *,
        kind: DecisionKind,
        operation_id: str | None,
        identity: str | None,
        earlier: tuple[HistoryEntry, ...],
        now: datetime,
        lease: timedelta,
    ) -> bool:
        """Write the decision and, if it mails, the right to send; If-Match on `record`.

        False when another processor wrote in between (it handles the row, or re-read).
        """
        values = {
            "Status": Status.DECIDED.value,
            "Decision": kind.value,
            "OperationId": operation_id or "",
            "Identity": identity or "",
            "Earlier": entries_to_json(earlier),
            "DecidedAt": now,
        }
        if kind.sends_mail:
            values["SendLeaseUntil"] = now + lease
        return self._conditional_merge(ref, record, values)

    def claim_send(self, ref: RowRef, record: LedgerRecord, until: datetime) -> bool:
        """Take the right to send a decided mail (If-Match); False if someone else did."""
        return self._conditional_merge(ref, record, {"SendLeaseUntil": until})

    def release_send(self, ref: RowRef, now: datetime) -> None:
        """Give the right to send back early: the send failed in a way a retry may repeat
        (the retry still asks ACS first whether the mail went out)."""
        self._merge(ref, {"SendLeaseUntil": now})

    def claim_resend(
        self, ref: RowRef, record: LedgerRecord | None, resend_id: str, until: datetime
    ) -> bool:
        """Take the right to send an operator-requested extra mail (If-Match, or insert)."""
        values = {"ResendOperationId": resend_id, "ResendLeaseUntil": until, "ResendStatus": ""}
        return self._conditional_merge(ref, record, values)

    def release_resend(self, ref: RowRef, now: datetime) -> None:
        self._merge(ref, {"ResendLeaseUntil": now})

    def record_resend(self, ref: RowRef, resend_id: str, acs_status: str, now: datetime) -> None:
        values = {"ResendOperationId": resend_id, "ResendStatus": acs_status, "ResentAt": now}
        self._merge(ref, values)

    def _conditional_merge(self, ref: RowRef, record: LedgerRecord | None, values: dict) -> bool:
        etag = None if record is None else record.etag
        return write_if_unchanged(self._table, self._entity(ref, values), etag, UpdateMode.MERGE)

    def changed_since(self, since: datetime) -> Iterator[TableEntity]:
        """Ledger rows written at or after `since` (for `cli status`; the table is small)."""
        return self._table.query_entities("Timestamp ge @since", parameters={"since": since})

    def record_outcome(self, ref: RowRef, status: Status, now: datetime, **details: str) -> None:
        self._merge(ref, {"Status": status.value, "DoneAt": now, **details})

    def _merge(self, ref: RowRef, values: dict) -> None:
        """Blind upsert-merge of properties no other step writes (enqueue time, outcome)."""
        self._table.upsert_entity(self._entity(ref, values), mode=UpdateMode.MERGE)

    def _entity(self, ref: RowRef, values: dict) -> dict:
        """A ledger row: its keys, the source row it stands for, and the given properties."""
        return {
            **self._keys(ref),
            "SourcePartitionKey": ref.partition_key,
            "SourceRowKey": ref.row_key,
            **values,
        }


def _time(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _key_args(keys: dict[str, str]) -> dict[str, str]:
    return {"partition_key": keys["PartitionKey"], "row_key": keys["RowKey"]}


# --------------------------------------------------------------------------- customer history


def entries_to_json(entries: tuple[HistoryEntry, ...] | list[HistoryEntry]) -> str:
    return json.dumps(
        [
            {
                "row": e.row_id,
                "action": e.action_code,
                "label": e.action_label,
                "at": e.at.isoformat(),
                "kind": e.kind.value,
                "op": e.operation_id,
            }
            for e in entries
        ],
        separators=(",", ":"),
    )


def entries_from_json(text: str | None) -> tuple[HistoryEntry, ...]:
    if not text:
        return ()
    return tuple(
        HistoryEntry(
            row_id=item["row"],
            action_code=item["action"],
            action_label=item["label"],
            at=datetime.fromisoformat(item["at"]),
            kind=DecisionKind(item["kind"]),
            operation_id=item.get("op"),
        )
        for item in json.loads(text)
    )


@dataclass(frozen=True)
class History:
    entries: tuple[HistoryEntry, ...]
    etag: str | None  # None: no history yet (write creates it)


class HistoryStore:
    """Per customer and offer, the actions seen, with times, source rows and decisions."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    @staticmethod
    def _keys(identity: str, offer_key: str) -> dict[str, str]:
        customer = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
        return {"PartitionKey": customer, "RowKey": escape_key(offer_key)}

    def read(self, identity: str, offer_key: str) -> History:
        keys = self._keys(identity, offer_key)
        try:
            entity = self._table.get_entity(**_key_args(keys))
        except ResourceNotFoundError:
            return History(entries=(), etag=None)
        return History(entries_from_json(entity.get("Entries")), entity.metadata["etag"])

    def write(
        self, identity: str, offer_key: str, entries: list[HistoryEntry], etag: str | None
    ) -> bool:
        """Create or If-Match replace; False when another processor wrote first (re-decide)."""
        entity = {
            **self._keys(identity, offer_key),
            "Identity": identity,
            "Offer": offer_key,
            "Entries": entries_to_json(entries[-MAX_HISTORY_ENTRIES:]),
        }
        return write_if_unchanged(self._table, entity, etag, UpdateMode.REPLACE)


# --------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class LeadMessage:
    """What a queue message asks for: handle a row, or (`resend_id`) mail it again on purpose."""

    ref: RowRef
    resend_id: str | None = None  # the ACS operation id of the requested extra mail


def encode_message(ref: RowRef, *, resend_id: str | None = None) -> str:
    """A queue message carries the row's keys only, never the customer's data."""
    data = {"pk": ref.partition_key, "rk": ref.row_key}
    if resend_id is not None:
        data["resend"] = resend_id
    return json.dumps(data, separators=(",", ":"))


def decode_message(body: str | bytes) -> LeadMessage:
    """The request a message holds; ValueError for anything else."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    data = json.loads(body)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("pk"), str)
        or not isinstance(data.get("rk"), str)
        or not isinstance(data.get("resend", ""), str)
    ):
        raise ValueError("queue message is not {'pk': str, 'rk': str}")
    return LeadMessage(RowRef(data["pk"], data["rk"]), data.get("resend") or None)


class LeadQueue:
    def __init__(self, queue: QueueClient) -> None:
        self._queue = queue

    def send(
        self, ref: RowRef, *, delay: timedelta | None = None, resend_id: str | None = None
    ) -> None:
        """Enqueue a row's keys; `delay` keeps the message invisible that long (deferral)."""
        visibility = int(delay.total_seconds()) if delay else None
        self._queue.send_message(
            encode_message(ref, resend_id=resend_id), visibility_timeout=visibility
        )


def queue_depth(queue: QueueClient) -> int | None:
    """The approximate number of messages (visible or not); None when the queue is missing."""
    try:
        return queue.get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return None


@dataclass(frozen=True)
class ReplayReport:
    moved: int
    unreadable: tuple[str, ...]  # message ids left in the poison queue


class PoisonQueue:
    """Messages the host gave up on after `maxDequeueCount` failed attempts.

    Both clients are raw (no base64 policy): a message is moved byte for byte, exactly as the
    queue trigger will read it, and a message that is not a lead request is left where it is.
    """

    #: How long a message being moved stays invisible to other readers of the poison queue.
    MOVE_VISIBILITY = 300

    def __init__(self, poison: QueueClient, target: QueueClient) -> None:
        self._poison = poison
        self._target = target

    @property
    def name(self) -> str:
        return self._poison.queue_name

    def depth(self) -> int | None:
        return queue_depth(self._poison)

    def peek(self, count: int = 32) -> list[LeadMessage | None]:
        """The first messages (at most 32, the service's limit); None for unreadable ones."""
        try:
            messages = self._poison.peek_messages(max_messages=min(count, 32))
        except ResourceNotFoundError:
            return []
        return [_lead_request(message.content) for message in messages]

    def replay(self, limit: int | None = None) -> ReplayReport:
        """Move poison messages back to the lead queue: send first, then delete, so a crash in
        between leaves a duplicate message (harmless: processing is idempotent), never a loss."""
        moved, unreadable = 0, []
        while limit is None or moved < limit:
            batch_size = 32 if limit is None else min(32, limit - moved)
            try:
                batch = list(
                    self._poison.receive_messages(
                        messages_per_page=batch_size,
                        max_messages=batch_size,
                        visibility_timeout=self.MOVE_VISIBILITY,
                    )
                )
            except ResourceNotFoundError:
                break
            if not batch:
                break
            for message in batch:
                if _lead_request(message.content) is None:
                    unreadable.append(message.id)  # visible again after MOVE_VISIBILITY
                    continue
                self._target.send_message(message.content)
                self._poison.delete_message(message)
                moved += 1
        return ReplayReport(moved, tuple(unreadable))


def _lead_request(content: str | bytes) -> LeadMessage | None:
    try:
        return decode_message(base64.b64decode(content, validate=True))
    except (ValueError, binascii.Error):
        return None
