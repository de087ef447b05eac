"""Unit tests for shared.backfill's plan: which old rows become history entries, and whose."""

from __future__ import annotations

from datetime import datetime, timezone

from azure.data.tables import TableEntity

from shared import sample_leads
from shared.backfill import plan
from shared.model import DecisionKind

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
WHEN = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)


def test_plan_groups_entries_by_customer_and_offer() -> None:
    rows = [
        sample_leads.jane("PLT", when=WHEN),
        sample_leads.jane("INS", when=WHEN),
        sample_leads.jane("INS", email="JANE.DOE@Contoso.com", when=WHEN),  # same customer
        sample_leads.jane("PLT", email="john@fabrikam.com", when=WHEN),
        sample_leads.test_lead(when=WHEN),
        sample_leads.lead_row("SPZA-PLT|x", "{not json", when=WHEN),
    ]
    seen = []
    result = plan([TableEntity(row) for row in rows], now=NOW, on_row=lambda: seen.append(1))

    report = result.report
    assert (report.rows_read, report.test_leads, report.unmatched) == (6, 1, 1)
    assert report.customers == 2 and len(seen) == 6
    jane = result.entries[("email:jane.doe@contoso.com", sample_leads.OFFER)]
    assert [entry.action_code for entry in jane] == ["PLT", "INS", "INS"]
    assert {entry.kind for entry in jane} == {DecisionKind.HISTORY}
    assert all(entry.operation_id is None for entry in jane)
    assert jane[0].at == WHEN
    assert len({entry.row_id for entry in jane}) == 3
