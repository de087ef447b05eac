"""Subject, HTML and plain text of each kind of mail.

HTML goes through Jinja2 with autoescaping on, so a lead field can never add markup or links;
every value was cleaned of control characters by normalization, and the subject is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from urllib.parse import quote

import jinja2

from shared.model import Customer, Decision, DecisionKind, Lead
from shared.normalize import clean_text

MAX_SUBJECT_CHARS = 200
#: Each part of a subject is cut to this, so a huge name cannot push out the action and offer.
MAX_SUBJECT_PART = 80
_TEMPLATES = Path(__file__).with_name("templates")
_SUBJECT_TAGS = {
    DecisionKind.NEW: "[New lead]",
    DecisionKind.UPDATE: "[Lead update]",
    DecisionKind.TEST: "[Test lead]",
}
_EDU_NOTE = (
    "For privacy the marketplace passes no personal data for customers with .edu addresses; "
    "Microsoft may have sent you a separate notice about this lead. Ask for the contact through "
    "Partner Center support (aka.ms/marketplacepublishersupport)."
)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    plain_text: str
    html: str


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _render(name: str, context: dict) -> tuple[str, str]:
    html = _environment(True).get_template(f"{name}.html").render(context)
    text = _environment(False).get_template(f"{name}.txt").render(context)
    return html, text


def format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def subject_line(*parts: str) -> str:
    """One line, no CR/LF, at most `MAX_SUBJECT_CHARS` characters."""
    text = clean_text(" — ".join(part for part in parts if part), None)
    if len(text) > MAX_SUBJECT_CHARS:
        text = text[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return text


def offer_title(lead: Lead) -> str:
    return lead.offer_name or lead.offer_id or "unknown offer"


def _display_name(customer: Customer) -> str:
    return customer.full_name or customer.email or customer.company or "Unnamed customer"


def _who(customer: Customer) -> str:
    name = customer.full_name or customer.email
    if name and customer.company:
        return f"{name} ({customer.company})"
    return name or customer.company or "Unnamed customer"


def _action(lead: Lead) -> str:
    if not lead.action_code:
        return "unknown action"
    if lead.action_label != lead.action_code:
        return f"{lead.action_label} ({lead.action_code})"
    return lead.action_code


def _contact_rows(customer: Customer) -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = []
    if customer.email:
        rows.append(("Email", customer.email, "mailto:" + quote(customer.email, safe="@.+-_")))
    elif customer.email_raw:
        rows.append(("Email", f"{customer.email_raw} (not a valid address)", None))
    if customer.phone_e164:
        rows.append(("Phone", customer.phone_e164, "tel:" + customer.phone_e164))
    elif customer.phone_raw:
        rows.append(("Phone", f"{customer.phone_raw} (as entered)", None))
    if customer.country_name:
        rows.append(("Country", f"{customer.country_name} ({customer.country_code})", None))
    elif customer.country_raw:
        rows.append(("Country", customer.country_raw, None))
    return rows


def _lead_rows(lead: Lead) -> list[tuple[str, str]]:
    offer = lead.offer_name
    if lead.offer_id:
        offer = f"{offer} ({lead.offer_id})" if offer else lead.offer_id
    return [
        ("Action", _action(lead)),
        ("Marketplace", lead.source_label or lead.source_code or "not given"),
        ("Offer", offer or "not given"),
        ("Arrived", format_time(lead.received_at)),
    ]


def _notes(
    lead: Lead, customer: Customer, decision: Decision, resent_at: datetime | None = None
) -> list[str]:
    notes = [f"Incomplete lead: {problem}." for problem in lead.problems]
    if resent_at is not None:
        notes.append(f"Sent again at an operator's request on {format_time(resent_at)}.")
    domain = (customer.email or customer.email_raw).rpartition("@")[2].lower()
    if not customer.email and not customer.phone_e164 and not customer.phone_raw:
        notes.append("Contact details are missing: no email address or phone number.")
        if not customer.full_name:
            notes.append(_EDU_NOTE)
    elif domain.endswith(".edu") or ".edu." in f"{domain}.":
        notes.append(_EDU_NOTE)
    if decision.identity is None:
        notes.append("Without an email or a phone and last name this lead cannot be matched.")
    return notes


def _earlier(decision: Decision) -> list[dict[str, str]]:
    notes = {
        DecisionKind.DUPLICATE: "repeat, not alerted",
        DecisionKind.DO_NOT_CONTACT: "do not contact",
        DecisionKind.HISTORY: "before these alerts were set up",
    }
    return [
        {
            "when": format_time(entry.at),
            "action": entry.action_label or entry.action_code or "unknown action",
            "note": notes.get(entry.kind, ""),
        }
        for entry in decision.earlier
        if entry.kind is not DecisionKind.TEST
    ]


def render_alert(
    lead: Lead, customer: Customer, decision: Decision, *, resent_at: datetime | None = None
) -> RenderedEmail:
    """The sales alert: who, how to reach them, what they did, and what they did before."""
    tag = _SUBJECT_TAGS[decision.kind]
    subject = subject_line(
        f"{tag} {_who(customer)}", lead.action_label or "Lead", offer_title(lead)
    )
    heading = (
        "Update on a customer you were alerted about"
        if decision.kind is DecisionKind.UPDATE
        else "New marketplace lead"
    )
    context = {
        "subject": subject,
        "heading": heading,
        "display_name": _display_name(customer),
        "customer": customer,
        "notes": _notes(lead, customer, decision, resent_at),
        "contact_rows": _contact_rows(customer),
        "lead_rows": _lead_rows(lead),
        "description": lead.description,
        "earlier": _earlier(decision),
        "raw_customer_info": lead.customer_info_raw,
        "row": lead.row.display,
    }
    html, text = _render("alert", context)
    return RenderedEmail(subject=subject, plain_text=text, html=html)


def render_test_lead(lead: Lead) -> RenderedEmail:
    """The mail to the admins proving the lead destination works for an offer."""
    offer = offer_title(lead)
    subject = subject_line(f"[Test lead] Lead destination works for {offer}")
    context = {
        "subject": subject,
        "offer": offer,
        "received": format_time(lead.received_at),
        "lead_rows": _lead_rows(lead),
        "row": lead.row.display,
    }
    html, text = _render("test_lead", context)
    return RenderedEmail(subject=subject, plain_text=text, html=html)


def render(
    lead: Lead, customer: Customer, decision: Decision, *, resent_at: datetime | None = None
) -> RenderedEmail:
    """The mail for a decision; `resent_at` marks one an operator asked to send again."""
    if decision.kind is DecisionKind.TEST:
        rendered = render_test_lead(lead)
    else:
        rendered = render_alert(lead, customer, decision, resent_at=resent_at)
    if resent_at is None:
        return rendered
    return RenderedEmail(
        subject=subject_line(f"[Resent] {rendered.subject}"),
        plain_text=rendered.plain_text,
        html=rendered.html,
    )
