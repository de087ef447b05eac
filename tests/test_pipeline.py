"""End to end against a real Azurite and the local ACS endpoint, driven like the host drives it.

Each test inserts marketplace rows, ticks the timer function, runs the queue function on the
messages it finds in the real queue, and checks the mails the ACS endpoint received.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared import poller, processor, sample_leads
from shared.hostdriver import HostDriver
from shared.local_email import LocalEmailService, ReceivedEmail
from shared.model import RowRef
from shared.processor import SEND_LEASE
from shared.services import CLAIM_LEASE, build_services
from shared.settings import LEDGER_TABLE, load_settings
from shared.store import Ledger, Status, encode_message, escape_key
from tests.conftest import ADMINS, SALES

POLL = "poll_leads"
PROCESS = "process_lead"


def insert(leads: TableClient, *rows: dict[str, str]) -> list[RowRef]:
    for row in rows:
        leads.create_entity(row)
    return [RowRef(row["PartitionKey"], row["RowKey"]) for row in rows]


def run_pipeline(host: HostDriver) -> None:
    host.tick(POLL)
    run = host.drain(PROCESS)
    assert run.failed == 0, run.errors


def ledger_row(app_env: dict[str, str], ref: RowRef) -> dict:
    table = TableServiceClient.from_connection_string(app_env["AzureWebJobsStorage"])
    client = table.get_table_client(LEDGER_TABLE)
    return client.get_entity(escape_key(ref.partition_key), escape_key(ref.row_key))


def sales_mails(email_service: LocalEmailService) -> list[ReceivedEmail]:
    return [mail for mail in email_service.messages if mail.to == (SALES,)]


def start_polling(host: HostDriver) -> None:
    """The first run sets the checkpoint's floor to now; rows inserted after it are new."""
    host.tick(POLL)


@pytest.fixture
def started(host: HostDriver, leads: TableClient) -> TableClient:
    start_polling(host)
    return leads


# --------------------------------------------------------------------------- poller


def test_fresh_install_does_not_mail_history(host, leads, email_service, app_env):
    insert(leads, sample_leads.jane("PLT"), sample_leads.hostile_lead())
    host.tick(POLL)  # first run: the floor is now, the two rows are history
    assert host.drain(PROCESS).succeeded == 0

    (new,) = insert(leads, sample_leads.jane("INS"))
    run_pipeline(host)

    assert [mail.subject.split("]")[0] + "]" for mail in email_service.messages] == ["[New lead]"]
    assert ledger_row(app_env, new)["Status"] == Status.SENT.value


def test_start_from_setting_alerts_history_after_that_time(host, leads, email_service, monkeypatch):
    monkeypatch.setenv("LEADS_START_FROM", "2000-01-01T00:00:00Z")
    insert(leads, sample_leads.jane("PLT"), sample_leads.hostile_lead())
    run_pipeline(host)
    assert len(email_service.messages) == 2


def test_poll_before_partner_center_created_the_table(host, clean_storage, services):
    report = poller.poll(services)
    assert report.leads_table_found is False
    assert report.enqueued == 0


def test_overlap_rereads_and_timer_reruns_enqueue_nothing_twice(
    host, started, services, email_service
):
    refs = insert(started, *sample_leads.bulk_rows(5))
    first = poller.poll(services)
    assert first.enqueued == 5
    rerun = poller.poll(services)  # timer re-run: same window (overlap) read again
    assert (rerun.rows_read, rerun.enqueued) == (5, 0)

    # Even without the checkpoint's cache of seen rows, the ledger's claims stop a re-enqueue.
    checkpoint = services.checkpoints.read()
    services.checkpoints.save(replace(checkpoint, watermark=checkpoint.floor, seen={}))
    again = poller.poll(services)
    assert (again.rows_read, again.enqueued, again.already_enqueued) == (5, 0, 5)

    assert host.drain(PROCESS).succeeded == len(refs)
    assert len(email_service.messages) == 5


def test_overlap_catches_a_row_committed_behind_the_checkpoint(host, started, services):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    (row,) = services.leads.changed_since(datetime(2000, 1, 1, tzinfo=timezone.utc))
    checkpoint = services.checkpoints.read()
    overlap = services.settings.poll_overlap
    # As if an earlier poll had already moved past this row before it became visible.
    ahead = replace(checkpoint, watermark=row.timestamp + overlap - timedelta(seconds=5))
    assert services.checkpoints.save(ahead)
    assert poller.poll(services).enqueued == 1


def test_rows_behind_the_overlap_are_left_to_the_checkpoint(host, started, services):
    insert(started, sample_leads.jane("PLT"))
    (row,) = services.leads.changed_since(datetime(2000, 1, 1, tzinfo=timezone.utc))
    checkpoint = services.checkpoints.read()
    overlap = services.settings.poll_overlap
    ahead = replace(checkpoint, watermark=row.timestamp + overlap + timedelta(seconds=5))
    assert services.checkpoints.save(ahead)
    report = poller.poll(services)
    assert (report.rows_read, report.enqueued) == (0, 0)


def test_old_lead_edited_after_install_is_not_mailed(host, leads, email_service):
    long_ago = datetime.now(timezone.utc) - timedelta(days=30)
    (old,) = insert(leads, sample_leads.jane("PLT", when=long_ago))
    start_polling(host)
    leads.update_entity(  # e.g. the publisher's own tooling marks the row as processed
        {"PartitionKey": old.partition_key, "RowKey": old.row_key, "Processed": "yes"},
        mode=UpdateMode.MERGE,
    )
    insert(leads, sample_leads.jane("INS"))
    run_pipeline(host)
    assert [mail.subject[:10] for mail in email_service.messages] == ["[New lead]"]
    assert "Install" in email_service.messages[0].subject


def test_updated_row_is_not_alerted_again(host, started, email_service):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    run_pipeline(host)
    started.update_entity(
        {"PartitionKey": ref.partition_key, "RowKey": ref.row_key, "Description": "edited"},
        mode=UpdateMode.MERGE,
    )
    run_pipeline(host)
    assert len(email_service.messages) == 1


def test_two_pollers_at_once_enqueue_each_row_once(host, started, app_env, email_service):
    rows = sample_leads.bulk_rows(40)
    insert(started, *rows)
    settings = load_settings()
    pollers = [build_services(settings) for _ in range(2)]
    barrier = threading.Barrier(len(pollers))
    reports: list[poller.PollReport] = []

    def run(services):
        barrier.wait()
        reports.append(poller.poll(services))

    threads = [threading.Thread(target=run, args=(s,)) for s in pollers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(report.enqueued for report in reports) == len(rows)
    queue = host.queue_client(PROCESS)
    assert queue.get_queue_properties().approximate_message_count == len(rows)
    assert host.drain(PROCESS).succeeded == len(rows)
    assert len(email_service.messages) == len(rows)


def test_row_claimed_by_a_crashed_poller_is_enqueued_after_the_lease(
    host, started, services, email_service
):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    (row,) = services.leads.changed_since(datetime(2000, 1, 1, tzinfo=timezone.utc))
    timestamp = row.timestamp
    now = datetime.now(timezone.utc)
    # Another poller claimed the row and died before enqueueing it.
    services.ledger.claim(ref, timestamp, "crashed-poller", now)

    held = poller.poll(services, now=now)
    assert (held.enqueued, held.held_by_other_poller) == (0, 1)
    assert held.watermark <= timestamp  # the row stays inside the next read

    later = poller.poll(services, now=now + CLAIM_LEASE + timedelta(seconds=1))
    assert later.enqueued == 1
    assert host.drain(PROCESS).succeeded == 1
    assert len(email_service.messages) == 1


def test_crash_between_claim_and_enqueue_loses_nothing(
    host, started, services, email_service, monkeypatch
):
    insert(started, *sample_leads.bulk_rows(3))
    calls = {"n": 0}
    real_send = type(services.queue).send

    def crash_on_second(self, ref):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("worker died")
        real_send(self, ref)

    monkeypatch.setattr(type(services.queue), "send", crash_on_second)
    with pytest.raises(ConnectionError):
        poller.poll(services)
    monkeypatch.undo()

    later = datetime.now(timezone.utc) + CLAIM_LEASE + timedelta(seconds=1)
    retry = poller.poll(services, now=later)
    assert retry.enqueued == 2  # the crashed claim (taken over) and the untouched row
    assert host.drain(PROCESS).succeeded == 3
    assert len(email_service.messages) == 3


# --------------------------------------------------------------------------- processor


def test_duplicate_delivery_sends_one_mail(host, started, email_service):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    host.tick(POLL)
    host.queue_client(PROCESS).send_message(encode_message(ref).encode())  # at-least-once
    run = host.drain(PROCESS)
    assert (run.succeeded, run.failed) == (2, 0)
    assert len(email_service.messages) == 1
    assert len(email_service.send_attempts) == 1


def test_crash_between_send_and_record_does_not_mail_twice(
    host, started, email_service, app_env, monkeypatch
):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    host.tick(POLL)
    real = Ledger.record_outcome

    def crash_after_send(self, row, status, now, **details):
        if status is Status.SENT:
            raise ConnectionError("worker died after the send")
        real(self, row, status, now, **details)

    monkeypatch.setattr(Ledger, "record_outcome", crash_after_send)
    first = host.run_queue_once(PROCESS)
    assert first.failed == 1 and len(email_service.messages) == 1
    monkeypatch.undo()

    # The queue's retry comes while the crashed attempt's send lease still runs: it waits.
    retry = host.run_queue_once(PROCESS)
    assert (retry.succeeded, retry.failed) == (1, 0)
    assert ledger_row(app_env, ref)["Status"] == Status.DECIDED.value
    assert host.queue_client(PROCESS).get_queue_properties().approximate_message_count == 1

    # Once the lease is over, the deferred copy asks ACS, finds the mail, and only records it.
    later = datetime.now(timezone.utc) + SEND_LEASE + timedelta(seconds=1)
    report = processor.process(build_services(load_settings()), encode_message(ref), now=later)
    assert report.status is Status.SENT
    assert len(email_service.messages) == 1
    assert len(email_service.send_attempts) == 1
    assert ledger_row(app_env, ref)["Status"] == Status.SENT.value


def test_same_message_processed_concurrently_sends_once(host, started, email_service):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    host.tick(POLL)
    settings = load_settings()
    workers = [build_services(settings) for _ in range(3)]
    barrier = threading.Barrier(len(workers))
    reports = []

    def run(services):
        barrier.wait()
        reports.append(processor.process(services, encode_message(ref)))

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reports) == 3
    assert len(email_service.messages) == 1
    assert len(email_service.send_attempts) == 1
    assert sum(report.status is Status.SENT and not report.already_done for report in reports) == 1


def test_acs_outage_then_recovery_alerts_once(host, started, email_service, app_env):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    host.tick(POLL)
    email_service.set_outage(503)
    failed = host.run_queue_once(PROCESS)
    assert failed.failed == 1 and not email_service.messages
    assert ledger_row(app_env, ref)["Status"] == Status.DECIDED.value

    email_service.clear_outage()
    run = host.drain(PROCESS)
    assert run.succeeded == 1
    assert len(email_service.messages) == 1


def test_lasting_outage_moves_the_lead_to_the_poison_queue(host, started, email_service):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    host.tick(POLL)
    email_service.set_outage(503)
    run = host.drain(PROCESS)
    assert (run.failed, run.poisoned) == (5, 1)
    poison = host.queue_client(PROCESS, poison=True).receive_messages()
    assert [json.loads(m.content)["rk"] for m in poison] == [ref.row_key]
    assert not email_service.messages


def test_throttled_lead_waits_on_the_queue_instead_of_failing(host, started, email_service):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    host.tick(POLL)
    email_service.fail_next(429, retry_after=120)
    first = host.run_queue_once(PROCESS)
    assert (first.succeeded, first.failed) == (1, 0)  # no two-minute sleep, no retry burned
    queue = host.queue_client(PROCESS)
    assert queue.get_queue_properties().approximate_message_count == 1
    assert list(queue.peek_messages()) == []  # invisible until ACS said it is ready
    assert not email_service.messages

    # When the deferred copy comes back, the lead is alerted once.
    report = processor.process(build_services(load_settings()), encode_message(ref))
    assert report.status is Status.SENT
    assert len(email_service.messages) == 1


def test_customer_across_the_funnel(host, started, email_service):
    (contact,) = insert(started, sample_leads.jane("PLT"))
    run_pipeline(host)
    insert(started, sample_leads.jane("PLT", email="JANE.DOE@contoso.com"))  # a repeat
    run_pipeline(host)
    insert(started, sample_leads.jane("INS"))
    run_pipeline(host)

    subjects = [mail.subject for mail in email_service.messages]
    assert len(subjects) == 2
    assert subjects[0].startswith("[New lead] Jane Doe (Contoso Ltd) — Contact me")
    assert subjects[1].startswith("[Lead update] Jane Doe (Contoso Ltd) — Install")
    update = email_service.messages[1]
    assert "Earlier leads" in update.html and "Contact me" in update.plain_text
    assert "repeat, not alerted" in update.plain_text


def test_duplicate_window_setting(host, started, email_service, monkeypatch):
    monkeypatch.setenv("LEAD_DUPLICATE_WINDOW_DAYS", "0")
    day = datetime.now(timezone.utc)
    insert(started, sample_leads.jane("PLT", when=day - timedelta(days=1)))
    run_pipeline(host)
    insert(started, sample_leads.jane("PLT", when=day))
    run_pipeline(host)
    assert len(email_service.messages) == 2


def test_same_customer_processed_concurrently_gets_one_alert(host, started, app_env, email_service):
    refs = insert(started, sample_leads.jane("PLT"), sample_leads.jane("PLT"))
    host.tick(POLL)
    settings = load_settings()
    workers = [build_services(settings) for _ in refs]
    barrier = threading.Barrier(len(refs))
    reports = []

    def run(services, ref):
        barrier.wait()
        reports.append(processor.process(services, encode_message(ref)))

    threads = [threading.Thread(target=run, args=pair) for pair in zip(workers, refs, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(report.kind.value for report in reports) == ["duplicate", "new"]
    assert len(email_service.messages) == 1


def test_test_lead_goes_to_admins_only(host, started, email_service, app_env):
    (ref,) = insert(started, sample_leads.test_lead())
    run_pipeline(host)
    (mail,) = email_service.messages
    assert mail.to == (ADMINS,)
    assert mail.subject.startswith("[Test lead]")
    assert "Contoso CRM Connector" in mail.subject
    assert ledger_row(app_env, ref)["Decision"] == "test"


def test_do_not_contact_is_recorded_without_mail(host, started, email_service, app_env):
    row = sample_leads.lead_row(
        f"SPZA-DNC|{sample_leads.OFFER}",
        sample_leads.customer_info(FirstName="Ana", LastName="Silva", Email="ana@tailspin.pt"),
    )
    (ref,) = insert(started, row)
    run_pipeline(host)
    assert not email_service.messages
    record = ledger_row(app_env, ref)
    assert (record["Status"], record["Decision"]) == (Status.RECORDED.value, "dnc")


def test_edu_lead_without_contact_is_alerted_with_a_note(host, started, email_service):
    row = sample_leads.lead_row(
        f"SPZA-PLT|{sample_leads.OFFER}",
        sample_leads.customer_info(FirstName="", LastName="", Email="", Country="US"),
    )
    insert(started, row)
    run_pipeline(host)
    (mail,) = sales_mails(email_service)
    assert ".edu" in mail.plain_text and ".edu" in mail.html
    assert "Contact details are missing" in mail.plain_text


def test_hostile_and_malformed_leads_are_alerted_safely(host, started, email_service, app_env):
    broken = sample_leads.lead_row(
        f"SPZA-PLT|{sample_leads.OFFER}",
        '{"FirstName":"Li","LastName":"Wei","Email":"li.wei@fabrikam.cn","Company":"<b>Fab',
    )
    huge = sample_leads.lead_row(
        f"SPZA-PLT|{sample_leads.OFFER}",
        sample_leads.customer_info(FirstName="A" * 10_000, LastName="Long", Email="l@wingtip.com"),
    )
    refs = insert(started, sample_leads.hostile_lead(), broken, huge)
    run_pipeline(host)

    mails = email_service.messages
    assert len(mails) == 3
    for mail in mails:
        assert "\r" not in mail.subject and "\n" not in mail.subject
        assert len(mail.subject) <= 200
        assert "<script>" not in mail.html and "<b>Fab" not in mail.html
        assert 'href="https://evil.example"' not in mail.html
        assert "\u202e" not in mail.html and "\x07" not in mail.plain_text
    hostile = next(m for m in mails if "mallory@fabrikam.com" in m.plain_text)
    assert "&lt;script&gt;" in hostile.html.lower()
    assert "&lt;a href=&#34;https://evil.example&#34;&gt;" in hostile.html
    assert "\U0001f600" in hostile.html  # emoji survive
    assert "Smith Bcc: attacker@evil.example" in hostile.subject  # CR/LF became one space
    malformed = next(m for m in mails if "Wei" in m.subject)
    assert "not valid JSON" in malformed.plain_text
    assert "&lt;b&gt;Fab" in malformed.html
    for ref in refs:
        assert ledger_row(app_env, ref)["Status"] == Status.SENT.value


def test_deleted_row_is_set_aside_visibly(host, started, email_service, app_env, caplog):
    (ref,) = insert(started, sample_leads.jane("PLT"))
    host.tick(POLL)
    started.delete_entity(ref.partition_key, ref.row_key)
    assert host.drain(PROCESS).succeeded == 1
    assert not email_service.messages
    assert ledger_row(app_env, ref)["Status"] == Status.SOURCE_MISSING.value
    assert "deleted from the leads table" in caplog.text


def test_garbage_queue_message_ends_in_poison_not_in_a_crash(host, started, email_service):
    host.tick(POLL)
    host.queue_client(PROCESS).send_message(b"not json")
    run = host.drain(PROCESS)
    assert (run.failed, run.poisoned) == (5, 1)


def test_logs_mask_customer_details(host, started, caplog):
    insert(started, sample_leads.jane("PLT"))
    caplog.set_level("INFO")
    run_pipeline(host)
    assert "j***@contoso.com" in caplog.text
    assert "jane.doe@contoso.com" not in caplog.text.lower()
    assert "555-0100" not in caplog.text and "5550100" not in caplog.text
