"""The operator commands, run in-process against the session's Azurite and local ACS endpoint."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from shared import cli, sample_leads
from shared.model import RowRef
from shared.settings import HISTORY_TABLE, StorageConnection
from shared.store import Status
from tests.conftest import ADMINS, SALES
from tests.test_pipeline import (
    POLL,
    PROCESS,
    insert,
    ledger_row,
    run_pipeline,
    sales_mails,
    start_polling,
)


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """`python -m shared.cli ARGS` in-process, away from any developer's local.settings.json."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def poisoned_lead(host, leads, email_service) -> RowRef:
    """A lead that failed every retry while ACS refused it (400: the SDK does not retry it
    itself, which keeps the test fast), then ACS recovered."""
    start_polling(host)
    (ref,) = insert(leads, sample_leads.jane("PLT"))
    host.tick(POLL)
    email_service.set_outage(400)
    assert host.drain(PROCESS).poisoned == 1
    email_service.clear_outage()
    return ref


# --------------------------------------------------------------------------- help


def help_text(capsys: pytest.CaptureFixture, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_command(capsys):
    text = help_text(capsys)
    for name in ("status", "seed", "replay", "backfill", "resend"):
        assert f"    {name} " in text
    backfill = " ".join(help_text(capsys, "backfill").split())
    assert "--since DATE" in backfill and "without mailing" in backfill


# --------------------------------------------------------------------------- status


def test_status_before_the_app_ever_ran(run_cli, app_env, clean_storage):
    code, text = run_cli("status")
    assert code == 1, text
    assert "none: the poller has not run yet" in text
    assert "not created yet (Partner Center creates it" in text
    assert "The poller has never run" in text


def test_status_counts_the_last_day(run_cli, host, leads, email_service):
    start_polling(host)
    insert(
        leads,
        sample_leads.test_lead(),
        sample_leads.jane("PLT"),
        sample_leads.jane("INS"),
        sample_leads.jane("INS"),  # a repeat within the window
        sample_leads.jane("DNC"),
    )
    run_pipeline(host)

    code, text = run_cli("status")
    assert code == 0, text
    assert "MarketplaceLeads: 5 row(s) written in the last 24 h" in text
    assert "new-lead alerts sent: 1" in text
    assert "update alerts sent: 1" in text
    assert "test-lead mails sent: 1" in text
    assert "repeats within the window (no mail): 1" in text
    assert "do-not-contact notices (no mail): 1" in text
    assert "Lead queue    0 message(s)" in text
    assert "Poison queue  0 message(s)" in text
    assert "In progress   0 lead(s)" in text
    lines = [line.rstrip() for line in text.splitlines()]
    assert "Last 24 h     do-not-contact notices (no mail): 1" in lines  # one outcome a line
    assert "All well." in text


def test_status_flags_poison_messages(run_cli, host, leads, email_service):
    poisoned_lead(host, leads, email_service)
    code, text = run_cli("status")
    assert code == 1
    assert "Poison queue  1 message(s)" in text
    assert "1 lead(s) failed every retry and wait in the poison queue" in text


def test_status_shows_no_customer_details(run_cli, host, leads, email_service):
    start_polling(host)
    insert(leads, sample_leads.jane("PLT"))
    run_pipeline(host)
    _, text = run_cli("status")
    assert "jane" not in text.lower() and "555" not in text


# --------------------------------------------------------------------------- seed


def test_seed_demo_rows_are_alerted_by_the_app(run_cli, host, clean_storage, email_service):
    start_polling(host)  # the leads table does not exist yet: seed creates it
    code, text = run_cli("seed")
    assert code == 0, text
    rows = sample_leads.demo_rows()
    assert f"Wrote {len(rows)} sample lead(s) (demo)" in text

    run_pipeline(host)
    assert any(mail.to == (ADMINS,) for mail in email_service.messages)  # the test lead
    assert len(sales_mails(email_service)) >= 5


def test_seed_test_lead_reaches_the_admins_only(run_cli, host, leads, email_service):
    start_polling(host)
    assert run_cli("seed", "--set", "test-lead")[0] == 0
    run_pipeline(host)
    assert [mail.to for mail in email_service.messages] == [(ADMINS,)]
    assert email_service.messages[0].subject.startswith("[Test lead]")


def test_seed_bulk_writes_the_count(run_cli, leads):
    assert run_cli("seed", "--set", "bulk", "--count", "7")[0] == 0
    assert len(list(leads.list_entities())) == 7


def test_seed_refuses_a_real_account_without_yes(run_cli, monkeypatch, leads):
    key = base64.b64encode(b"not-a-real-key").decode()
    real = f"DefaultEndpointsProtocol=https;AccountName=contosoleads;AccountKey={key}"
    monkeypatch.setenv("LEADS_STORAGE", real + ";EndpointSuffix=core.windows.net")
    code, text = run_cli("seed")
    assert code == 2
    assert "into table MarketplaceLeads of account contosoleads" in text
    assert "Add --yes to go ahead" in text


@pytest.mark.parametrize(
    ("connection", "local"),
    [
        (StorageConnection("S", connection_string="UseDevelopmentStorage=true"), True),
        (
            StorageConnection(
                "S",
                connection_string="AccountName=devstoreaccount1;AccountKey=a2V5;"
                "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
                "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1",
            ),
            True,
        ),
        (StorageConnection("S", connection_string="AccountName=x;AccountKey=a2V5"), False),
        (StorageConnection("S", table_service_uri="https://x.table.core.windows.net"), False),
        (StorageConnection("S", table_service_uri="http://localhost:10002/devstore"), True),
    ],
)
def test_is_local(connection, local):
    assert cli.is_local(connection) is local


# --------------------------------------------------------------------------- replay


def test_replay_moves_poison_back_and_the_lead_is_alerted_once(
    run_cli, host, leads, email_service, app_env
):
    ref = poisoned_lead(host, leads, email_service)
    poison = host.queue_client(PROCESS, poison=True)
    poison.send_message(b"not a lead message")  # left in place, reported

    code, text = run_cli("replay", "--dry-run")
    assert code == 0
    assert "2 message(s) in lead-alerts-poison:" in text
    assert f"lead {ref.display}" in text
    assert "(not a lead message: would be left in place)" in text
    assert host.drain(PROCESS).succeeded == 0  # a dry run moves nothing

    code, text = run_cli("replay")
    assert code == 0
    assert "Moved 1 message(s)" in text
    assert "Left 1 message(s) that are not lead requests" in text
    run = host.drain(PROCESS)
    assert (run.succeeded, run.failed) == (1, 0)
    assert len(email_service.messages) == 1
    assert ledger_row(app_env, ref)["Status"] == Status.SENT.value

    assert run_cli("replay")[1].startswith("Moved 0 message(s)")  # the junk one is invisible


def test_replay_limit(run_cli, host, leads, email_service):
    start_polling(host)
    insert(leads, sample_leads.jane("PLT"), sample_leads.jane("INS", email="j2@contoso.com"))
    host.tick(POLL)
    email_service.set_outage(400)
    assert host.drain(PROCESS).poisoned == 2
    email_service.clear_outage()
    assert "Moved 1 message(s)" in run_cli("replay", "--limit", "1")[1]
    assert host.drain(PROCESS).succeeded == 1
    assert "Moved 1 message(s)" in run_cli("replay")[1]


# --------------------------------------------------------------------------- backfill


def test_backfill_turns_a_returning_customer_into_an_update(
    run_cli, host, leads, email_service, app_env
):
    old = insert(
        leads,
        sample_leads.jane("PLT"),
        sample_leads.jane("INS"),
        sample_leads.test_lead(),
        sample_leads.lead_row("SPZA-PLT|x", sample_leads.customer_info(FirstName="Nobody")),
    )
    start_polling(host)  # the app starts: the rows above are history

    code, text = run_cli("backfill", "--since", "2000-01-01")
    assert code == 0, text
    assert "Read 4 row(s): 2 indexed for 1 customer/offer pair(s), 0 already indexed" in text
    assert "1 test lead(s) skipped, 1 without an email or phone" in text
    assert host.drain(PROCESS).succeeded == 0  # nothing was queued or mailed
    assert not email_service.messages

    # Again: nothing new, nothing duplicated.
    code, text = run_cli("backfill", "--since", "2000-01-01")
    assert "0 indexed for 1 customer/offer pair(s), 2 already indexed" in text
    tables = TableServiceClient.from_connection_string(app_env["AzureWebJobsStorage"])
    (history,) = tables.get_table_client(HISTORY_TABLE).list_entities()
    assert len(json.loads(history["Entries"])) == 2

    # A repeat of a backfilled action is mailed (the old process may have lost it) as an update.
    insert(leads, sample_leads.jane("PLT"))
    run_pipeline(host)
    (mail,) = email_service.messages
    assert mail.subject.startswith("[Lead update]")
    assert "before these alerts were set up" in mail.plain_text
    assert old[0].row_key not in mail.plain_text  # earlier leads are listed by action and time


def test_backfill_needs_the_app_to_have_started(run_cli, leads):
    insert(leads, sample_leads.jane("PLT"))
    code, text = run_cli("backfill", "--since", "2000-01-01")
    assert code == 2
    assert "The app has not polled yet" in text


def test_backfill_since_after_the_start_does_nothing(run_cli, host, leads):
    start_polling(host)
    code, text = run_cli("backfill", "--since", "2999-01-01")
    assert code == 2
    assert "Nothing to do" in text


def test_backfill_rejects_a_bad_date(run_cli, leads):
    with pytest.raises(SystemExit):
        run_cli("backfill", "--since", "last tuesday")


# --------------------------------------------------------------------------- resend


def test_resend_mails_the_lead_again_once(run_cli, host, leads, email_service, app_env):
    start_polling(host)
    (ref,) = insert(leads, sample_leads.jane("PLT"))
    run_pipeline(host)
    (first,) = email_service.messages

    code, text = run_cli("resend", f"{ref.partition_key} / {ref.row_key}")
    assert code == 0, text
    assert f"Queued a resend of lead {ref.display}" in text
    (request,) = host.queue_client(PROCESS).peek_messages()
    host.queue_client(PROCESS).send_message(request.content)  # delivered twice
    run = host.drain(PROCESS)
    assert (run.succeeded, run.failed) == (2, 0)

    assert len(email_service.messages) == 2  # one resend, despite the duplicate delivery
    resent = email_service.messages[1]
    assert resent.subject == f"[Resent] {first.subject}"
    assert resent.to == (SALES,)
    assert "Sent again at an operator's request" in resent.plain_text
    assert resent.operation_id != first.operation_id
    row = ledger_row(app_env, ref)
    assert (row["Status"], row["ResendStatus"]) == (Status.SENT.value, "Succeeded")


def test_resend_of_a_repeat_sends_an_alert(run_cli, host, leads, email_service, app_env):
    start_polling(host)
    refs = insert(leads, sample_leads.jane("PLT"), sample_leads.jane("PLT"))
    run_pipeline(host)
    assert len(email_service.messages) == 1
    (repeat,) = [ref for ref in refs if ledger_row(app_env, ref)["Decision"] == "duplicate"]

    assert run_cli("resend", f"{repeat.partition_key}/{repeat.row_key}")[0] == 0
    assert host.drain(PROCESS).succeeded == 1
    assert email_service.messages[1].subject.startswith("[Resent] [Lead update]")


def test_resend_of_a_lead_from_before_the_install(run_cli, host, leads, email_service, app_env):
    (old,) = insert(leads, sample_leads.jane("INS"))
    start_polling(host)  # the row above is history: never mailed
    assert run_cli("resend", f"{old.partition_key}/{old.row_key}")[0] == 0
    assert host.drain(PROCESS).succeeded == 1
    (mail,) = email_service.messages
    assert mail.subject.startswith("[Resent] [New lead] Jane Doe")

    # If the marketplace later rewrites that row, the poller still hands it to the pipeline,
    # which decides it as usual (the resend left no decision behind).
    leads.upsert_entity({"PartitionKey": old.partition_key, "RowKey": old.row_key, "X": "1"})
    run_pipeline(host)
    assert ledger_row(app_env, old)["Status"] == Status.SENT.value
    assert len(email_service.messages) == 2


def test_resend_waits_out_an_acs_outage(run_cli, host, leads, email_service):
    start_polling(host)
    (ref,) = insert(leads, sample_leads.jane("PLT"))
    run_pipeline(host)
    run_cli("resend", f"{ref.partition_key}/{ref.row_key}")
    email_service.set_outage(503)
    first = host.run_queue_once(PROCESS)
    assert first.failed == 1  # the queue retries it
    email_service.clear_outage()
    assert host.drain(PROCESS).succeeded == 1
    assert len(email_service.messages) == 2


def test_resend_of_an_unknown_row(run_cli, host, leads):
    start_polling(host)
    code, text = run_cli("resend", "nope/missing")
    assert code == 2
    assert "No lead nope / missing in table MarketplaceLeads" in text


@pytest.mark.parametrize("text", ["", "no-slash", "/rk", "pk/", "a/b/c"])
def test_resend_rejects_a_malformed_row(run_cli, text):
    with pytest.raises(SystemExit):
        run_cli("resend", text)


def test_operator_signs_in_as_themself_not_as_the_app() -> None:
    app_settings = {
        "AzureWebJobsStorage__tableServiceUri": "https://app.table.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
        "LEADS_STORAGE__credential": "managedidentity",
        "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
        "EMAIL_SENDER": "a@contoso.com",
    }
    assert cli.as_operator(app_settings) == {
        "AzureWebJobsStorage__tableServiceUri": "https://app.table.core.windows.net",
        "EMAIL_SENDER": "a@contoso.com",
    }
