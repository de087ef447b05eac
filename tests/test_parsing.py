"""Unit tests for shared.parsing: a marketplace table row to a `Lead`.

Why: every column comes from strangers and the marketplace's own formats vary (two LeadSource
shapes, key casing, broken JSON, several time formats). Parsing must read them all, keep
unknown codes, and report rather than raise.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from azure.data.tables import TableEntity

from shared import sample_leads
from shared.parsing import MAX_RAW_CUSTOMER_INFO, parse_created_time, parse_lead, row_timestamp

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
WHEN = datetime(2026, 3, 5, 9, 30, 15, tzinfo=timezone.utc)


def row(**columns: object) -> dict[str, object]:
    """A leads-table row with system keys and whatever columns the test gives."""
    return {"PartitionKey": "3:2F5:2F2026", "RowKey": "row-1", **columns}


def info(**fields: object) -> str:
    return json.dumps(fields)


# --------------------------------------------------------------------------- LeadSource


def test_lead_source_with_action_and_offer_is_split() -> None:
    lead = parse_lead(row(LeadSource="SPZA-PLT|contoso.crm-connector"), now=NOW)
    assert lead.source_code == "SPZA"
    assert lead.source_label == "AppSource"
    assert lead.action_code == "PLT"
    assert lead.action_label == "Contact me"
    assert lead.offer_id == "contoso.crm-connector"
    assert lead.lead_source == "SPZA-PLT|contoso.crm-connector"


def test_plain_lead_source_takes_action_from_action_code_column() -> None:
    lead = parse_lead(
        row(LeadSource="AzureMarketplace", ActionCode="INS", OfferTitle="Test Microsoft"),
        now=NOW,
    )
    assert lead.source_code == "AzureMarketplace"
    assert lead.source_label == "Azure Marketplace"
    assert lead.action_code == "INS"
    assert lead.action_label == "Install"
    assert lead.offer_id == ""
    # The HTTPS destination's name for the offer title is accepted too.
    assert lead.offer_name == "Test Microsoft"
    assert "no action code" not in lead.problems


def test_source_containing_a_space_and_parentheses_is_recognized() -> None:
    lead = parse_lead(row(LeadSource="AppSource (SPZA)-INS|x.y"), now=NOW)
    assert lead.source_code == "AppSource (SPZA)"
    assert lead.source_label == "AppSource"
    assert lead.action_code == "INS"
    assert lead.action_label == "Install"
    assert lead.offer_id == "x.y"


@pytest.mark.parametrize(
    ("lead_source", "source_label", "action_label"),
    [
        ("AzurePortal-Create|a.b", "Azure portal", "Purchase in the Azure portal"),
        ("TestDrive-StartTestDrive|a.b", "Test Drive", "Test drive started"),
        ("SPZA-DNC|a.b", "AppSource", "Do not contact"),
        ("azuremarketplace-ins|a.b", "Azure Marketplace", "Install"),
    ],
)
def test_known_codes_get_labels_in_any_case(
    lead_source: str, source_label: str, action_label: str
) -> None:
    lead = parse_lead(row(LeadSource=lead_source), now=NOW)
    assert lead.source_label == source_label
    assert lead.action_label == action_label


def test_unknown_action_code_is_kept_verbatim() -> None:
    lead = parse_lead(row(LeadSource="AzureMarketplace-FreeTrial|contoso.analytics"), now=NOW)
    assert lead.action_code == "FreeTrial"
    assert lead.action_label == "FreeTrial"
    assert lead.source_label == "Azure Marketplace"
    assert lead.offer_id == "contoso.analytics"
    assert lead.problems == ("no customer details in the row",)


def test_unknown_source_code_is_kept_verbatim() -> None:
    lead = parse_lead(row(LeadSource="NewStorefront-Subscribe|a.b"), now=NOW)
    assert (lead.source_code, lead.source_label) == ("NewStorefront", "NewStorefront")
    assert (lead.action_code, lead.action_label) == ("Subscribe", "Subscribe")


def test_action_in_lead_source_wins_over_action_code_column() -> None:
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", ActionCode="INS"), now=NOW)
    assert lead.action_code == "PLT"


def test_column_names_are_read_case_insensitively() -> None:
    lead = parse_lead(
        row(
            leadsource="SPZA-PLT|a.b",
            OFFERDISPLAYNAME="Contoso CRM",
            customerinfo=info(FirstName="Ada", Email="ada@contoso.com"),
        ),
        now=NOW,
    )
    assert lead.action_code == "PLT"
    assert lead.offer_name == "Contoso CRM"
    assert lead.contact.first_name == "Ada"


# --------------------------------------------------------------------------- CustomerInfo


def test_customer_info_fields_fill_the_contact() -> None:
    lead = parse_lead(sample_leads.jane("PLT", when=WHEN), now=NOW)
    contact = lead.contact
    assert contact.first_name == "JANE"  # untouched here; normalization comes later
    assert contact.last_name == "DOE"
    assert contact.email == "jane.doe@contoso.com"
    assert contact.phone == "(425) 555-0100"
    assert contact.country == "United States"
    assert contact.company == "Contoso Ltd"
    assert contact.title == "VP of Sales Operations"
    assert lead.problems == ()
    assert lead.customer_info_raw is None
    assert lead.description == "Campaigns: winter-launch"
    assert lead.offer_name == sample_leads.OFFER_NAME


def test_customer_info_keys_are_case_insensitive() -> None:
    text = info(firstname="Ada", LASTNAME="Lovelace", eMail="ada@contoso.com", COUNTRY="GB")
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=text), now=NOW)
    assert lead.contact.first_name == "Ada"
    assert lead.contact.last_name == "Lovelace"
    assert lead.contact.email == "ada@contoso.com"
    assert lead.contact.country == "GB"


@pytest.mark.parametrize("wrapper", ["UserDetails", "userDetails", "userdetails"])
def test_user_details_wrapper_is_unwrapped(wrapper: str) -> None:
    text = json.dumps(
        {
            wrapper: {"FirstName": "Some", "LastName": "One", "Email": "someone@contoso.com"},
            "LeadSource": "AzureMarketplace",
        }
    )
    lead = parse_lead(row(LeadSource="AzureMarketplace-INS|a.b", CustomerInfo=text), now=NOW)
    assert lead.contact.first_name == "Some"
    assert lead.contact.last_name == "One"
    assert lead.contact.email == "someone@contoso.com"
    assert lead.problems == ()


def test_numeric_phone_value_becomes_text() -> None:
    text = json.dumps({"FirstName": "Some", "Phone": 16175555555})
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=text), now=NOW)
    assert lead.contact.phone == "16175555555"


def test_nested_or_null_values_do_not_become_text() -> None:
    text = json.dumps(
        {"FirstName": None, "LastName": {"x": 1}, "Company": ["a"], "Email": "a@b.co"}
    )
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=text), now=NOW)
    assert (lead.contact.first_name, lead.contact.last_name, lead.contact.company) == ("", "", "")
    assert lead.contact.email == "a@b.co"


def test_missing_columns_are_reported_not_raised() -> None:
    lead = parse_lead({"PartitionKey": "p", "RowKey": "r"}, now=NOW)
    assert lead.row.partition_key == "p"
    assert lead.row.row_key == "r"
    assert lead.lead_source == ""
    assert lead.action_code == ""
    assert lead.offer_name == ""
    assert lead.description == ""
    assert lead.received_at == NOW
    assert "LeadSource is empty" in lead.problems
    assert "no action code" in lead.problems
    assert "no customer details in the row" in lead.problems
    assert lead.incomplete


def test_flat_contact_columns_are_used_without_customer_info() -> None:
    lead = parse_lead(
        row(LeadSource="SPZA-PLT|a.b", FirstName="Ada", Email="ada@contoso.com"), now=NOW
    )
    assert lead.contact.first_name == "Ada"
    assert lead.contact.email == "ada@contoso.com"
    assert lead.problems == ()


def test_customer_info_not_json_keeps_raw_and_recovers_fields() -> None:
    broken = (
        '{"FirstName":"Li","LastName":"Wei","Email":"li.wei@fabrikam.cn",'
        '"Phone": 8613800138000,"Company":"Fab'
    )
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=broken), now=NOW)
    assert lead.customer_info_raw == broken
    assert len(lead.problems) == 1
    assert "CustomerInfo" in lead.problems[0]
    assert "JSON" in lead.problems[0]
    assert lead.incomplete
    assert lead.contact.first_name == "Li"
    assert lead.contact.last_name == "Wei"
    assert lead.contact.email == "li.wei@fabrikam.cn"
    assert lead.contact.phone.strip() == "8613800138000"
    assert lead.contact.company == ""  # its value is cut off: not guessed


def test_recovered_fields_unescape_quotes() -> None:
    broken = '{"Company": "The \\"Best\\" Co", "Email": "a@b.co"'
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=broken), now=NOW)
    assert lead.contact.company == 'The "Best" Co'


def test_raw_customer_info_beyond_limit_is_truncated() -> None:
    broken = "not json " + "x" * 5000
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=broken), now=NOW)
    assert lead.customer_info_raw is not None
    assert len(lead.customer_info_raw) == MAX_RAW_CUSTOMER_INFO
    assert lead.customer_info_raw.endswith("…")
    assert lead.customer_info_raw[:-1] == broken[: MAX_RAW_CUSTOMER_INFO - 1]


def test_raw_customer_info_loses_control_and_bidi_characters() -> None:
    broken = '{"FirstName":"Bob\u202e\x00gnp.exe", "Email":"bob@contoso.com"'
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=broken), now=NOW)
    assert lead.customer_info_raw is not None
    assert "\u202e" not in lead.customer_info_raw and "\x00" not in lead.customer_info_raw
    assert "bob@contoso.com" in lead.customer_info_raw


@pytest.mark.parametrize("value", ["[1, 2]", "null", '"just text"', "42"])
def test_json_that_is_not_an_object_is_reported_as_such(value: str) -> None:
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=value), now=NOW)
    assert any("not an object" in problem for problem in lead.problems)
    assert lead.customer_info_raw == value


@pytest.mark.parametrize("value", ["{}", '{"FirstName": "", "Email": null}'])
def test_empty_customer_info_is_reported_like_a_missing_one(value: str) -> None:
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=value), now=NOW)
    assert lead.problems == ("no customer details in the row",)


def test_raw_customer_info_at_limit_is_kept_whole() -> None:
    broken = "{" + "y" * (MAX_RAW_CUSTOMER_INFO - 1)
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo=broken), now=NOW)
    assert lead.customer_info_raw == broken


def test_blank_customer_info_is_no_details_not_invalid_json() -> None:
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CustomerInfo="   "), now=NOW)
    assert lead.customer_info_raw is None
    assert lead.problems == ("no customer details in the row",)


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-05T14:07:09.123Z", datetime(2026, 3, 5, 14, 7, 9, 123000, tzinfo=timezone.utc)),
        # .NET's round-trip format has seven fractional digits.
        (
            "2026-03-05T14:07:09.1234567Z",
            datetime(2026, 3, 5, 14, 7, 9, 123456, tzinfo=timezone.utc),
        ),
        ("2026-03-05T14:07:09", datetime(2026, 3, 5, 14, 7, 9, tzinfo=timezone.utc)),
        ("3/5/2026 2:07:09 PM", datetime(2026, 3, 5, 14, 7, 9, tzinfo=timezone.utc)),
        ("12/31/2026 11:59:59 PM", datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
        ("1/2/2026 12:05:00 AM", datetime(2026, 1, 2, 0, 5, 0, tzinfo=timezone.utc)),
        ("1/2/2026 12:05:00 PM", datetime(2026, 1, 2, 12, 5, 0, tzinfo=timezone.utc)),
    ],
)
def test_created_time_formats(text: str, expected: datetime) -> None:
    parsed = parse_created_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


def test_created_time_with_offset_keeps_the_instant() -> None:
    parsed = parse_created_time("2026-03-05T14:07:09+02:00")
    assert parsed == datetime(2026, 3, 5, 12, 7, 9, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", [None, "", "   ", "yesterday", "13/45/2026 99:00:00"])
def test_unreadable_created_time_is_none(value: object) -> None:
    assert parse_created_time(value) is None


def test_created_time_is_the_lead_time() -> None:
    lead = parse_lead(row(LeadSource="SPZA-PLT|a.b", CreatedTime="3/5/2026 9:30:15 AM"), now=NOW)
    assert lead.received_at == WHEN


def test_missing_created_time_falls_back_to_metadata_timestamp() -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    entity = TableEntity(PartitionKey="p", RowKey="r", LeadSource="SPZA-PLT|a.b")
    # What azure-data-tables' deserializer does: the system Timestamp lives in the metadata.
    entity._metadata = {"etag": 'W/"1"', "timestamp": stamp}
    assert row_timestamp(entity) == stamp
    lead = parse_lead(entity, now=NOW)
    assert lead.received_at == stamp


def test_unreadable_created_time_falls_back_to_naive_metadata_timestamp_as_utc() -> None:
    entity = TableEntity(PartitionKey="p", RowKey="r", CreatedTime="soon")
    entity._metadata = {"etag": None, "timestamp": datetime(2026, 1, 2, 3, 4, 5)}
    lead = parse_lead(entity, now=NOW)
    assert lead.received_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_created_time_wins_over_metadata_timestamp() -> None:
    # Timestamp is last-modified: an update to the row must not move the lead's time.
    entity = TableEntity(PartitionKey="p", RowKey="r", CreatedTime=WHEN.isoformat())
    entity._metadata = {"etag": None, "timestamp": WHEN + timedelta(days=3)}
    assert parse_lead(entity, now=NOW).received_at == WHEN


def test_no_time_at_all_uses_now() -> None:
    entity = TableEntity(PartitionKey="p", RowKey="r", LeadSource="SPZA-PLT|a.b")
    assert row_timestamp(entity) is None
    assert parse_lead(entity, now=NOW).received_at == NOW


# --------------------------------------------------------------------------- test lead


def test_partner_center_test_lead_row() -> None:
    lead = parse_lead(sample_leads.test_lead(when=WHEN), now=NOW)
    test_id = sample_leads.TEST_ID
    assert lead.source_code == test_id
    assert lead.action_code == test_id
    assert lead.action_label == test_id  # unknown code, kept
    assert lead.offer_id == sample_leads.OFFER_NAME  # the test lead puts the name there
    assert lead.offer_name == sample_leads.OFFER_NAME
    assert lead.contact.first_name == test_id
    assert lead.contact.email == f"{test_id}@test.com"
    assert lead.contact.phone == "1234567890"
    assert lead.contact.country == "US"
    assert lead.received_at == WHEN
    assert lead.problems == ()


# --------------------------------------------------------------------------- cleaning


def test_text_columns_are_cleaned() -> None:
    lead = parse_lead(
        row(
            LeadSource="  SPZA-PLT|a.b\r\n",
            OfferDisplayName="Contoso\u202e CRM\x07",
            Description="line one\x00\r\n\r\n\r\n\r\nline\ttwo",
        ),
        now=NOW,
    )
    assert lead.lead_source == "SPZA-PLT|a.b"
    assert lead.offer_name == "Contoso CRM"
    assert lead.description == "line one\n\nline two"


def test_offer_key_prefers_offer_id_and_ignores_case() -> None:
    by_id = parse_lead(row(LeadSource="SPZA-PLT|Contoso.CRM", OfferDisplayName="X"), now=NOW)
    by_name = parse_lead(row(LeadSource="AzureMarketplace", OfferDisplayName="My Offer"), now=NOW)
    nothing = parse_lead(row(LeadSource="AzureMarketplace"), now=NOW)
    assert by_id.offer_key == "contoso.crm"
    assert by_name.offer_key == "my offer"
    assert nothing.offer_key == "(unknown offer)"
