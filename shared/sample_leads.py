"""Realistic marketplace rows for the demo, the tests and the benchmark.

Shaped like what Partner Center writes into `MarketplaceLeads`: string columns, `CustomerInfo`
as one JSON string, PartitionKey like the creation date with `/` written as `:2F`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

OFFER = "contoso.crm-connector"
OFFER_NAME = "Contoso CRM Connector"
TEST_ID = "MSFT_TEST_636573304831318844"


def partition_key(when: datetime) -> str:
    return f"{when.month}:2F{when.day}:2F{when.year}"


def customer_info(**fields: str) -> str:
    """CustomerInfo JSON with the marketplace's key names (FirstName, LastName, ...)."""
    return json.dumps(fields)


def lead_row(
    lead_source: str,
    info: str | None,
    *,
    offer_name: str = OFFER_NAME,
    action_code: str | None = None,
    description: str = "",
    when: datetime | None = None,
    row_key: str | None = None,
) -> dict[str, str]:
    when = when or datetime.now(timezone.utc)
    row = {
        "PartitionKey": partition_key(when),
        "RowKey": row_key or str(uuid.uuid4()),
        "LeadSource": lead_source,
        "OfferDisplayName": offer_name,
        "Description": description,
        "CreatedTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    if action_code is not None:
        row["ActionCode"] = action_code
    if info is not None:
        row["CustomerInfo"] = info
    return row


def test_lead(offer_name: str = OFFER_NAME, when: datetime | None = None) -> dict[str, str]:
    """Partner Center's test lead, as documented (every text field MSFT_TEST_<digits>)."""
    info = customer_info(
        FirstName=TEST_ID,
        LastName=TEST_ID,
        Email=f"{TEST_ID}@test.com",
        Phone="1234567890",
        Country="US",
        Company=TEST_ID,
        Title=TEST_ID,
    )
    return lead_row(f"{TEST_ID}-{TEST_ID}|{offer_name}", info, description=TEST_ID, when=when)


def jane(action: str, *, email: str = "jane.doe@contoso.com", when: datetime | None = None):
    info = customer_info(
        FirstName="JANE",
        LastName="DOE",
        Email=email,
        Phone="(425) 555-0100",
        Country="United States",
        Company="Contoso Ltd",
        Title="VP of Sales Operations",
    )
    return lead_row(
        f"SPZA-{action}|{OFFER}", info, description="Campaigns: winter-launch", when=when
    )


def hostile_lead(when: datetime | None = None) -> dict[str, str]:
    """Markup, header injection attempts, emoji and control characters in every field."""
    info = customer_info(
        FirstName="<script>alert('x')</script>",
        LastName="Smith\r\nBcc: attacker@evil.example",
        Email="mallory@fabrikam.com",
        Phone="+44 20 7946 0958",
        Country="GB",
        Company='ACME <a href="https://evil.example">click here</a>',
        Title="\U0001f600 Chief \u202eEmoji\u202c Officer\x07",
    )
    return lead_row(
        f"AzureMarketplace-INS|{OFFER}",
        info,
        description="<img src=x onerror=alert(1)>\r\nSecond line\x00",
        when=when,
    )


def demo_rows(start: datetime | None = None) -> list[dict[str, str]]:
    """A morning of leads: a test lead, a customer across the funnel, a repeat, DNC, .edu,
    broken JSON, a hostile one, a huge one, an unknown action and the plain source shape.

    Rows are a minute apart from `start` (default: an hour ago), RowKeys sort in that order.
    """
    start = start or datetime.now(timezone.utc) - timedelta(hours=1)
    rows = _demo_rows()
    for index, row in enumerate(rows):
        when = start + timedelta(minutes=index)
        row["PartitionKey"] = partition_key(when)
        row["RowKey"] = f"{when:%Y%m%d%H%M%S}-{index:03d}-{uuid.uuid4().hex[:8]}"
        row["CreatedTime"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return rows


def _demo_rows(when: datetime | None = None) -> list[dict[str, str]]:
    return [
        test_lead(when=when),
        jane("PLT", when=when),
        jane("PLT", email="Jane.Doe@CONTOSO.com", when=when),  # a repeat: same customer
        lead_row(
            f"AzurePortal-Create|{OFFER}",
            customer_info(
                FirstName="raj",
                LastName="patel",
                Email="raj.patel@northwind.in",
                Phone="098765 43210",
                Country="India",
                Company="Northwind Traders",
                Title="CTO",
            ),
            when=when,
        ),
        jane("INS", when=when),  # the same customer goes on to install: an update
        lead_row(
            f"SPZA-DNC|{OFFER}",
            customer_info(FirstName="Ana", LastName="Silva", Email="ana.silva@tailspin.pt"),
            when=when,
        ),
        lead_row(
            f"SPZA-PLT|{OFFER}",
            customer_info(FirstName="", LastName="", Email="", Phone="", Country="US"),
            description="Customer email domain is .edu; contact details withheld",
            when=when,
        ),
        lead_row(
            f"SPZA-PLT|{OFFER}",
            '{"FirstName":"Li","LastName":"Wei","Email":"li.wei@fabrikam.cn","Company":"Fab',
            when=when,
        ),
        hostile_lead(when=when),
        lead_row(
            f"AzureMarketplace-INS|{OFFER}",
            customer_info(FirstName="A" * 10_000, LastName="Long", Email="long@wingtip.com"),
            when=when,
        ),
        lead_row(
            "AzureMarketplace-FreeTrial|contoso.analytics",
            customer_info(
                FirstName="Kim", LastName="Lee", Email="kim.lee@litware.kr", Country="KR"
            ),
            offer_name="Contoso Analytics",
            when=when,
        ),
        lead_row(
            "AzureMarketplace",
            customer_info(
                FirstName="Some",
                LastName="One",
                Email="someone@adventure-works.com",
                Phone="16175555555",
                Country="USA",
                Company="Adventure Works",
                Title="Esquire",
            ),
            action_code="INS",
            offer_name="Contoso Analytics",
            when=when,
        ),
    ]


def bulk_rows(count: int, when: datetime | None = None) -> list[dict[str, str]]:
    """`count` distinct customers' Contact-me leads (for the benchmark)."""
    return [
        lead_row(
            f"SPZA-PLT|{OFFER}",
            customer_info(
                FirstName=f"Customer{n}",
                LastName="Bench",
                Email=f"customer{n}@bench-{n % 97}.example.com",
                Country="US",
                Company=f"Company {n}",
            ),
            when=when,
        )
        for n in range(count)
    ]
