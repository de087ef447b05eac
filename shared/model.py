"""The records that flow through the pipeline, and the label tables for sources and actions.

Everything here is plain data: parsing builds it, the decision reads it, templates render it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

#: Known marketplace source codes and how a sales rep calls them. Unknown codes are kept.
SOURCE_LABELS: dict[str, str] = {
    "azuremarketplace": "Azure Marketplace",
    "azureportal": "Azure portal",
    "spza": "AppSource",
    "appsource": "AppSource",
    "appsource (spza)": "AppSource",
    "testdrive": "Test Drive",
}

#: Known action codes. `PLT` is AppSource's "Contact me"; `DNC` is a do-not-contact heads-up.
ACTION_LABELS: dict[str, str] = {
    "ins": "Install",
    "plt": "Contact me",
    "dnc": "Do not contact",
    "create": "Purchase in the Azure portal",
    "starttestdrive": "Test drive started",
}

DNC_ACTION = "DNC"


@dataclass(frozen=True)
class RowRef:
    """The keys of one row in the marketplace's leads table."""

    partition_key: str
    row_key: str

    @property
    def display(self) -> str:
        return f"{self.partition_key} / {self.row_key}"


@dataclass(frozen=True)
class Contact:
    """The customer's details as written in `CustomerInfo`, untouched (may be empty)."""

    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    country: str = ""
    company: str = ""
    title: str = ""


@dataclass(frozen=True)
class Lead:
    """One marketplace row, parsed; unknown codes are kept verbatim."""

    row: RowRef
    lead_source: str
    source_code: str
    source_label: str
    action_code: str
    action_label: str
    offer_id: str
    offer_name: str
    description: str
    received_at: datetime
    contact: Contact
    #: The raw `CustomerInfo` text when it was not valid JSON (shown escaped in the alert).
    customer_info_raw: str | None = None
    #: What was wrong with the row, in words for the sales rep ("CustomerInfo is not JSON").
    problems: tuple[str, ...] = ()

    @property
    def offer_key(self) -> str:
        """What identifies the offer in the customer's history."""
        return (self.offer_id or self.offer_name or "(unknown offer)").lower()

    @property
    def incomplete(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class Customer:
    """The customer's details, normalized for display and matching."""

    first_name: str
    last_name: str
    company: str
    title: str
    email: str | None  # validated, domain lower-cased; None when unusable
    email_raw: str
    phone_e164: str | None
    phone_raw: str
    country_code: str | None
    country_name: str | None
    country_raw: str

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class DecisionKind(StrEnum):
    NEW = "new"  # first alerted lead of this customer for this offer (or unmatched)
    UPDATE = "update"  # customer already alerted for this offer, new action
    DUPLICATE = "duplicate"  # same action alerted within the duplicate window: no mail
    TEST = "test"  # Partner Center's test lead: one mail to the admins
    DO_NOT_CONTACT = "dnc"  # heads-up only: recorded, no mail
    HISTORY = "history"  # a lead from before the install, indexed by `cli backfill`: no mail

    @property
    def sends_mail(self) -> bool:
        return self in (DecisionKind.NEW, DecisionKind.UPDATE, DecisionKind.TEST)

    @property
    def alerts_sales(self) -> bool:
        return self in (DecisionKind.NEW, DecisionKind.UPDATE)


@dataclass(frozen=True)
class HistoryEntry:
    """One lead of a customer for an offer, as kept in the customer history."""

    row_id: str
    action_code: str
    action_label: str
    at: datetime
    kind: DecisionKind
    operation_id: str | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with one lead, and what the mail needs to say about the past."""

    kind: DecisionKind
    identity: str | None
    operation_id: str | None
    earlier: tuple[HistoryEntry, ...] = field(default=())
