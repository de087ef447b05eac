"""Unit tests for shared.render: the subject, HTML and plain text of each mail.

Why: the alert is the product. Sales must see who, how to reach them, what they did and what
they did before; nothing a customer typed may inject markup, links or mail headers.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.matching import decide, identity_key
from shared.model import Decision, DecisionKind, HistoryEntry, Lead
from shared.normalize import normalize_contact
from shared.parsing import parse_lead
from shared.render import MAX_SUBJECT_CHARS, RenderedEmail, render, render_alert
from shared.sample_leads import OFFER, OFFER_NAME, customer_info, hostile_lead, jane, lead_row
from shared.sample_leads import test_lead as sample_test_lead

WHEN = datetime(2026, 3, 5, 9, 30, tzinfo=timezone.utc)
WINDOW = timedelta(days=14)
TAG = re.compile(r"</?[A-Za-z!][^>]*>")


def mail_for(row: dict, history: list[HistoryEntry] | None = None) -> RenderedEmail:
    """Parse, normalize, decide and render one row the way the processor does."""
    lead = parse_lead(row, now=WHEN)
    customer = normalize_contact(lead.contact)
    decision = decide(lead, identity_key(customer), history or [], WINDOW)
    assert decision.kind.sends_mail
    return render(lead, customer, decision)


def mail_with(**fields: str) -> RenderedEmail:
    """A Contact-me lead whose CustomerInfo holds exactly `fields`."""
    return mail_for(lead_row(f"SPZA-PLT|{OFFER}", customer_info(**fields), when=WHEN))


def update_mail() -> tuple[Lead, RenderedEmail]:
    lead = parse_lead(jane("INS", when=WHEN), now=WHEN)
    customer = normalize_contact(lead.contact)
    earlier = (
        HistoryEntry(
            "r1",
            "PLT",
            "Contact me",
            datetime(2026, 2, 10, 8, 15, tzinfo=timezone.utc),
            DecisionKind.NEW,
        ),
        HistoryEntry(
            "r2",
            "PLT",
            "Contact me",
            datetime(2026, 2, 11, 17, 45, tzinfo=timezone.utc),
            DecisionKind.DUPLICATE,
        ),
        HistoryEntry(
            "r3",
            "FreeTrial",
            "",
            datetime(2026, 3, 1, 23, 5, tzinfo=timezone.utc),
            DecisionKind.UPDATE,
        ),
        HistoryEntry(
            "r4",
            "MSFT_TEST_9",
            "MSFT_TEST_9",
            datetime(2026, 3, 2, 6, 40, tzinfo=timezone.utc),
            DecisionKind.TEST,
        ),
    )
    decision = Decision(DecisionKind.UPDATE, identity_key(customer), "op", earlier)
    return lead, render_alert(lead, customer, decision)


# --------------------------------------------------------------------------- subject


def test_new_lead_subject() -> None:
    mail = mail_for(jane("PLT", when=WHEN))
    assert mail.subject.startswith("[New lead] ")
    assert "Jane Doe" in mail.subject
    assert "Contoso Ltd" in mail.subject
    assert "Contact me" in mail.subject
    assert OFFER_NAME in mail.subject


def test_update_subject() -> None:
    _, mail = update_mail()
    assert mail.subject.startswith("[Lead update] ")
    assert "Install" in mail.subject


def test_test_lead_subject() -> None:
    mail = mail_for(sample_test_lead(when=WHEN))
    assert mail.subject.startswith("[Test lead] ")
    assert OFFER_NAME in mail.subject


def test_subject_is_one_short_line_even_for_hostile_and_huge_fields() -> None:
    mail = mail_with(
        FirstName="A" * 10_000,
        LastName="Smith\r\nBcc: attacker@evil.example",
        Company="C" * 10_000 + "\n",
        Email="x@contoso.com",
    )
    assert "\r" not in mail.subject and "\n" not in mail.subject
    assert len(mail.subject) <= MAX_SUBJECT_CHARS
    assert mail.subject.startswith("[New lead] Aaaa")
    assert mail.subject.endswith("…")


def test_subject_is_one_line_even_from_uncleaned_values() -> None:
    # Defense in depth: render must not rely on parsing having cleaned every value.
    lead = replace(
        parse_lead(jane("PLT", when=WHEN), now=WHEN),
        action_label="Contact\r\nBcc: x@evil.example",
        offer_name="Offer\nTo: y@evil.example" + "O" * 500,
    )
    customer = replace(normalize_contact(lead.contact), company="Co\r\nCc: z@evil.example")
    decision = Decision(DecisionKind.NEW, None, "op")
    subject = render_alert(lead, customer, decision).subject
    assert not re.search(r"[\r\n]", subject)
    assert len(subject) <= MAX_SUBJECT_CHARS
    assert "Bcc: x@evil.example" in subject


def test_subject_of_hostile_sample_has_no_line_breaks() -> None:
    mail = mail_for(hostile_lead(when=WHEN))
    assert not re.search(r"[\r\n\x00-\x1f]", mail.subject)
    assert "Bcc: attacker@evil.example" in mail.subject  # shown as text, on the same line


def test_subject_names_someone_even_without_a_name() -> None:
    mail = mail_with(Email="buyer@contoso.com")
    assert "buyer@contoso.com" in mail.subject
    nobody = mail_with(Country="US")
    assert "Unnamed customer" in nobody.subject


# --------------------------------------------------------------------------- escaping

SCRIPT = "<script>alert(1)</script>"
LINK = '<a href="https://evil.example">click</a>'


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(
            lead_row(
                f"SPZA-PLT|{OFFER}",
                customer_info(FirstName=SCRIPT, LastName=LINK, Email="a@contoso.com"),
            ),
            id="name",
        ),
        pytest.param(
            lead_row(
                f"SPZA-PLT|{OFFER}",
                customer_info(Company=SCRIPT, Title=LINK, Email="a@contoso.com"),
            ),
            id="company-title",
        ),
        pytest.param(
            lead_row(f"SPZA-PLT|{OFFER}", customer_info(Email=SCRIPT, Phone=LINK, Country="US")),
            id="invalid-email-phone",
        ),
        pytest.param(
            lead_row(
                f"SPZA-PLT|{OFFER}", customer_info(Country=SCRIPT + LINK, Email="a@contoso.com")
            ),
            id="country",
        ),
        pytest.param(
            lead_row(
                f"SPZA-PLT|{OFFER}",
                customer_info(Email="a@contoso.com"),
                description=SCRIPT + "\n" + LINK,
            ),
            id="description",
        ),
        pytest.param(
            lead_row(
                f"SPZA-PLT|{OFFER}", customer_info(Email="a@contoso.com"), offer_name=SCRIPT + LINK
            ),
            id="offer-name",
        ),
        pytest.param(
            lead_row(f"SPZA-{SCRIPT}|{LINK}", customer_info(Email="a@contoso.com")),
            id="lead-source",
        ),
        pytest.param(
            lead_row(f"SPZA-PLT|{OFFER}", '{"FirstName": "' + SCRIPT + LINK), id="raw-customer-info"
        ),
    ],
)
def test_html_escapes_markup_from_any_field(row: dict) -> None:
    mail = mail_for(row)
    lowered = mail.html.lower()
    assert "<script" not in lowered
    assert 'evil.example"' not in lowered  # no attribute built from the payload
    assert '<a href="https://evil.example' not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in lowered
    assert "&lt;a href=" in lowered
    # Every link in the mail is one the app made.
    for href in re.findall(r'href="([^"]*)"', mail.html):
        assert href.startswith(("mailto:", "tel:")), href


def test_hostile_sample_html() -> None:
    mail = mail_for(hostile_lead(when=WHEN))
    assert "<script" not in mail.html.lower()
    assert "<img" not in mail.html.lower()
    assert "&lt;img src=x onerror=alert(1)&gt;" in mail.html
    assert "\u202e" not in mail.html and "\x07" not in mail.html and "\x00" not in mail.html
    assert "\U0001f600" in mail.html  # emoji are kept
    assert "Emoji" in mail.html


# --------------------------------------------------------------------------- content


def test_alert_shows_contact_and_lead_facts() -> None:
    mail = mail_for(jane("PLT", when=WHEN))
    for text in (mail.html, mail.plain_text):
        assert "Jane" in text and "Doe" in text
        assert "jane.doe@contoso.com" in text
        assert "+14255550100" in text
        assert "United States" in text
        assert "Contact me" in text and "PLT" in text
        assert OFFER_NAME in text and OFFER in text
        assert "AppSource" in text
        assert "2026-03-05 09:30" in text
        assert "VP of Sales Operations" in text
        assert "Contoso Ltd" in text
        assert "Campaigns: winter-launch" in text
    assert 'href="mailto:jane.doe@contoso.com"' in mail.html
    assert 'href="tel:+14255550100"' in mail.html


def test_plain_text_has_no_html_tags() -> None:
    for row in (jane("PLT", when=WHEN), sample_test_lead(when=WHEN)):
        mail = mail_for(row)
        assert TAG.search(mail.plain_text) is None
        assert "&lt;" not in mail.plain_text and "&#" not in mail.plain_text
    _, update = update_mail()
    assert TAG.search(update.plain_text) is None


def test_invalid_email_and_phone_are_shown_as_entered_without_links() -> None:
    mail = mail_with(FirstName="Bo", Email="bo at contoso", Phone="ext 12", Country="Narnia")
    assert "bo at contoso" in mail.html
    assert "ext 12" in mail.html
    assert "Narnia" in mail.html
    assert "mailto:" not in mail.html
    assert "tel:" not in mail.html


def test_action_label_and_code_and_unknown_code() -> None:
    known = mail_for(lead_row(f"AzurePortal-Create|{OFFER}", customer_info(Email="a@b.com")))
    assert "Purchase in the Azure portal (Create)" in known.plain_text
    unknown = mail_for(
        lead_row(
            "AzureMarketplace-FreeTrial|contoso.analytics",
            customer_info(Email="a@b.com"),
            offer_name="Contoso Analytics",
        )
    )
    assert "FreeTrial" in unknown.plain_text
    assert "FreeTrial (FreeTrial)" not in unknown.plain_text
    assert "Contoso Analytics (contoso.analytics)" in unknown.plain_text


@pytest.mark.parametrize("email", ["student@mit.edu", "prof@cs.uni.edu.au"])
def test_edu_note(email: str) -> None:
    mail = mail_with(FirstName="Stu", LastName="Dent", Email=email)
    assert ".edu" in mail.plain_text
    assert "Partner Center" in mail.plain_text
    assert ".edu" in mail.html


def test_no_edu_note_for_ordinary_domain() -> None:
    mail = mail_with(FirstName="Jo", LastName="Ray", Email="jo@education.com")
    assert ".edu" not in mail.plain_text
    assert "missing" not in mail.plain_text


def test_missing_contact_note_and_edu_hint() -> None:
    row = lead_row(
        f"SPZA-PLT|{OFFER}",
        customer_info(FirstName="", LastName="", Email="", Phone="", Country="US"),
        when=WHEN,
    )
    mail = mail_for(row)
    assert "Contact details are missing" in mail.plain_text
    assert ".edu" in mail.plain_text
    assert "cannot be matched" in mail.plain_text
    assert "Contact details are missing" in mail.html
    assert "mailto:" not in mail.html


def test_update_mail_lists_earlier_actions_with_dates() -> None:
    _, mail = update_mail()
    for text in (mail.html, mail.plain_text):
        assert "2026-02-10 08:15" in text
        assert "2026-02-11 17:45" in text
        assert "2026-03-01 23:05" in text
        assert "FreeTrial" in text  # no label: the code is shown
        assert "Contact me" in text
        assert "not alerted" in text  # the duplicate is marked as such
        assert "MSFT_TEST_9" not in text  # a test lead is no customer history
        assert "2026-03-02 06:40" not in text
    plain = mail.plain_text
    assert (
        plain.index("2026-02-10 08:15")
        < plain.index("2026-02-11 17:45")
        < plain.index("2026-03-01 23:05")
    )
    assert "Update" in mail.plain_text


def test_new_lead_mail_has_no_earlier_section() -> None:
    mail = mail_for(jane("PLT", when=WHEN))
    assert "Earlier" not in mail.html
    assert "EARLIER" not in mail.plain_text


def test_raw_invalid_customer_info_is_shown_escaped() -> None:
    raw = '{"FirstName":"Li","LastName":"Wei","Email":"li.wei@fabrikam.cn","Company":"<b>Fab'
    mail = mail_for(lead_row(f"SPZA-PLT|{OFFER}", raw, when=WHEN))
    assert raw in mail.plain_text
    assert raw not in mail.html
    assert "<b>" not in mail.html
    assert "&lt;b&gt;Fab" in mail.html
    assert raw in html.unescape(mail.html)
    assert "not valid JSON" in mail.plain_text
    # The fields that could be read are still used.
    assert "li.wei@fabrikam.cn" in mail.subject or "Li Wei" in mail.subject
    assert 'href="mailto:li.wei@fabrikam.cn"' in mail.html


def test_valid_customer_info_is_not_dumped_raw() -> None:
    mail = mail_for(jane("PLT", when=WHEN))
    assert "not valid JSON" not in mail.plain_text
    assert '"FirstName"' not in mail.plain_text


def test_test_lead_mail_says_destination_works_for_the_offer() -> None:
    mail = mail_for(sample_test_lead(when=WHEN))
    expected = f"The lead destination works for {OFFER_NAME}"
    assert expected in mail.plain_text
    assert expected in mail.html
    assert "2026-03-05 09:30" in mail.plain_text
    assert TAG.search(mail.plain_text) is None
    # It is not dressed up as a customer alert.
    assert "mailto:" not in mail.html
    assert "@test.com" not in mail.html


def test_mail_names_the_source_row() -> None:
    row = jane("PLT", when=WHEN)
    mail = mail_for(row)
    assert row["RowKey"] in mail.plain_text
    assert row["PartitionKey"] in mail.plain_text


def test_rendered_html_is_a_document_with_the_subject_as_title() -> None:
    mail = mail_for(jane("PLT", when=WHEN))
    assert mail.html.lstrip().lower().startswith("<!doctype html>")
    title = re.search(r"<title>(.*?)</title>", mail.html, flags=re.S)
    assert title is not None
    assert html.unescape(title.group(1)) == mail.subject


def test_numbers_in_customer_info_render() -> None:
    row = lead_row(
        f"AzureMarketplace-INS|{OFFER}",
        json.dumps({"FirstName": "Some", "LastName": "One", "Phone": 16175555555}),
        when=WHEN,
    )
    mail = mail_for(row)
    assert "+16175555555" in mail.plain_text


def test_resent_alert_is_marked_in_subject_and_body() -> None:
    lead = parse_lead(jane("PLT", when=WHEN), now=WHEN)
    customer = normalize_contact(lead.contact)
    decision = decide(lead, identity_key(customer), [], WINDOW)
    first = render(lead, customer, decision)
    again = render(lead, customer, decision, resent_at=WHEN + timedelta(days=1))
    assert again.subject == f"[Resent] {first.subject}"
    note = "Sent again at an operator's request on 2026-03-06 09:30 UTC."
    assert note in again.plain_text and note in html.unescape(again.html)
    assert "Sent again" not in first.plain_text


def test_backfilled_leads_are_listed_as_from_before_the_alerts() -> None:
    earlier = HistoryEntry("r0", "INS", "Install", WHEN - timedelta(days=40), DecisionKind.HISTORY)
    mail = mail_for(jane("PLT", when=WHEN), [earlier])
    assert mail.subject.startswith("[Lead update]")
    assert "before these alerts were set up" in mail.plain_text
