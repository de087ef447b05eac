"""A marketplace table row to a `Lead`.

Rows are written by the marketplace but their content comes from strangers: any column may be
missing, `CustomerInfo` may not be JSON, keys come in any case. Parsing never raises on content;
what it cannot read it reports in `Lead.problems` so the alert can say so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone

from shared.model import ACTION_LABELS, SOURCE_LABELS, Contact, Lead, RowRef
from shared.normalize import clean_multiline, clean_text

#: CustomerInfo keys (lower-case) and the `Contact` field each fills.
_CONTACT_KEYS = {
    "firstname": "first_name",
    "lastname": "last_name",
    "email": "email",
    "phone": "phone",
    "country": "country",
    "company": "company",
    "title": "title",
}
#: Wrappers some destinations put around the contact fields.
_CONTACT_WRAPPERS = ("userdetails", "customerinfo", "customer")
#: Longest raw CustomerInfo kept for display when it is not JSON.
MAX_RAW_CUSTOMER_INFO = 2000
MAX_DESCRIPTION = 4000

_CREATED_TIME_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
)


def row_timestamp(entity: Mapping) -> datetime | None:
    """The service's last-modified time of a row (azure-data-tables keeps it in metadata)."""
    metadata = getattr(entity, "metadata", None) or {}
    value = metadata.get("timestamp") or entity.get("Timestamp")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def parse_lead(entity: Mapping, *, now: datetime) -> Lead:
    """Turn one leads-table entity into a `Lead`; `now` stands in for a missing timestamp."""
    columns = {str(key).lower(): value for key, value in entity.items()}
    problems: list[str] = []

    lead_source = clean_text(columns.get("leadsource"), 500)
    source_code, action_code, offer_id = split_lead_source(lead_source)
    action_column = clean_text(columns.get("actioncode"), 100)
    action_code = action_code or action_column
    if not lead_source:
        problems.append("LeadSource is empty")
    if not action_code:
        problems.append("no action code")

    contact, raw_info, contact_problems = parse_customer_info(columns)
    problems.extend(contact_problems)

    offer_name = clean_text(columns.get("offerdisplayname") or columns.get("offertitle"))
    return Lead(
        row=RowRef(str(entity.get("PartitionKey", "")), str(entity.get("RowKey", ""))),
        lead_source=lead_source,
        source_code=source_code,
        source_label=label(SOURCE_LABELS, source_code),
        action_code=action_code,
        action_label=label(ACTION_LABELS, action_code),
        offer_id=offer_id,
        offer_name=offer_name,
        description=clean_multiline(columns.get("description"), MAX_DESCRIPTION),
        received_at=parse_created_time(columns.get("createdtime")) or row_timestamp(entity) or now,
        contact=contact,
        customer_info_raw=raw_info,
        problems=tuple(problems),
    )


def split_lead_source(lead_source: str) -> tuple[str, str, str]:
    """`Source-Action|publisher.offer` to its three parts; a plain source keeps the rest empty."""
    head, _, offer = lead_source.partition("|")
    head, offer = head.strip(), offer.strip()
    for known in sorted(SOURCE_LABELS, key=len, reverse=True):
        if head.lower().startswith(known + "-"):
            return head[: len(known)], head[len(known) + 1 :].strip(), offer
    source, _, action = head.partition("-")
    return source.strip(), action.strip(), offer


def label(table: Mapping[str, str], code: str) -> str:
    """The human label for a code, or the code itself when it is unknown."""
    return table.get(code.lower(), code) if code else ""


def parse_customer_info(columns: Mapping[str, object]) -> tuple[Contact, str | None, list[str]]:
    """Contact fields from `CustomerInfo` (or flat columns); the raw text if it is not JSON."""
    raw = columns.get("customerinfo")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return _with_emptiness_check(_contact_from_mapping(columns), None, [])
    text = raw if isinstance(raw, str) else str(raw)
    try:
        data = json.loads(text)
    except ValueError:
        problem = "CustomerInfo is not valid JSON; showing what could be read"
    else:
        if isinstance(data, dict):
            for wrapper in _CONTACT_WRAPPERS:
                inner = {str(k).lower(): v for k, v in data.items()}.get(wrapper)
                if isinstance(inner, dict):
                    data = inner
                    break
            return _with_emptiness_check(_contact_from_mapping(data), None, [])
        problem = "CustomerInfo is JSON but not an object; showing it as received"
    # Shown to the rep as received, minus control characters (it is where hostile text lands).
    shown = clean_multiline(text, MAX_RAW_CUSTOMER_INFO)
    return _with_emptiness_check(_recover_fields(text), shown, [problem])


def _with_emptiness_check(
    contact: Contact, raw: str | None, problems: list[str]
) -> tuple[Contact, str | None, list[str]]:
    if not any(vars(contact).values()):
        problems = [*problems, "no customer details in the row"]
    return contact, raw, problems


def _contact_from_mapping(data: Mapping) -> Contact:
    lowered = {str(key).lower(): value for key, value in data.items()}
    values = {}
    for key, attr in _CONTACT_KEYS.items():
        value = lowered.get(key)
        values[attr] = "" if value is None or isinstance(value, (dict, list)) else str(value)
    return Contact(**values)


def _recover_fields(text: str) -> Contact:
    """Best effort for broken JSON: pick `"Key": "value"` pairs that are still readable."""
    values = {}
    for key, attr in _CONTACT_KEYS.items():
        match = re.search(rf'"{key}"\s*:\s*"((?:[^"\\]|\\.)*)"', text, flags=re.IGNORECASE)
        if match is None:
            match = re.search(rf'"{key}"\s*:\s*([0-9+][0-9 ()+\-]*)', text, flags=re.IGNORECASE)
        if match:
            values[attr] = match.group(1).replace('\\"', '"')
    return Contact(**values)


def parse_created_time(value: object) -> datetime | None:
    """`CreatedTime` in the formats seen so far; None when it cannot be read."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = clean_text(value, 64)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for fmt in _CREATED_TIME_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed
