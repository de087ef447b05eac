"""`python -m shared.devhost`: the local runner, against the session's Azurite.

A small FunctionApp defined here exercises timers and queue triggers on test queues; the real
`function_app` is run end to end once, in-process and from the command line.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import azure.functions as func
import pytest
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from shared import sample_leads
from shared.devhost import (
    DevHost,
    DrainTimeout,
    QueueOptions,
    RunSummary,
    ScheduleError,
    is_past_due,
    main,
    next_occurrence,
)
from shared.hostdriver import BindingError, HostDriver, HostJsonError, connection_string
from tests.conftest import ROOT, SALES, SENDER

ECHO_QUEUE = "devhost-echo"
FAIL_QUEUE = "devhost-fail"
STEP_QUEUE = "devhost-step"
HOLD_QUEUE = "devhost-hold"
CHAIN_QUEUE = "devhost-chain"
UTC = timezone.utc


def storage_connection() -> str:
    return connection_string("AzureWebJobsStorage")


# --------------------------------------------------------------------------- the test app


@dataclass
class Call:
    started: datetime
    ended: datetime | None = None
    past_due: bool | None = None
    body: bytes | None = None
    dequeue_count: int | None = None


@dataclass
class Probe:
    """What the test functions saw; functions run on worker threads, hence the condition."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    calls: dict[str, list[Call]] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    most_at_once: dict[str, int] = field(default_factory=dict)
    held_started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    barrier: threading.Barrier = field(default_factory=lambda: threading.Barrier(4))

    @contextmanager
    def call(self, name: str, **details) -> Iterator[Call]:
        call = Call(started=datetime.now(UTC), **details)
        with self.changed:
            self.calls.setdefault(name, []).append(call)
            self.running[name] = self.running.get(name, 0) + 1
            self.most_at_once[name] = max(self.most_at_once.get(name, 0), self.running[name])
        try:
            yield call
        finally:
            with self.changed:
                call.ended = datetime.now(UTC)
                self.running[name] -= 1
                self.changed.notify_all()

    def seen(self, name: str, count: int, timeout: float = 15.0) -> list[Call]:
        """Wait until `name` has finished `count` calls; return its calls."""

        def finished() -> bool:
            return sum(call.ended is not None for call in self.calls.get(name, [])) >= count

        with self.changed:
            assert self.changed.wait_for(finished, timeout), f"{name} did not run {count} times"
            return list(self.calls[name])


probe = Probe()
app = func.FunctionApp()


@app.function_name("tick")
@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    with probe.call("tick", past_due=timer.past_due):
        if len(probe.calls["tick"]) == 1:
            raise RuntimeError("first tick fails")


@app.function_name("overrun")
@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *", run_on_startup=False)
def overrun(timer: func.TimerRequest) -> None:
    with probe.call("overrun", past_due=timer.past_due):
        if len(probe.calls["overrun"]) == 1:
            threading.Event().wait(1.5)  # a run longer than the schedule's period


@app.function_name("startup")
@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
def startup(timer: func.TimerRequest) -> None:
    with probe.call("startup", past_due=timer.past_due):
        pass


@app.function_name("yearly")
@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=False)
def yearly(timer: func.TimerRequest) -> None:
    with probe.call("yearly"):
        pass


@app.function_name("echo")
@app.queue_trigger(arg_name="msg", queue_name=ECHO_QUEUE, connection="AzureWebJobsStorage")
def echo(msg: func.QueueMessage) -> None:
    logging.getLogger("tests.echo").info("echo got message %s", msg.id)
    with probe.call("echo", body=msg.get_body(), dequeue_count=msg.dequeue_count):
        pass


@app.function_name("always_fails")
@app.queue_trigger(arg_name="msg", queue_name=FAIL_QUEUE, connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    with probe.call("always_fails", body=msg.get_body(), dequeue_count=msg.dequeue_count):
        raise RuntimeError("always fails")


@app.function_name("in_step")
@app.queue_trigger(arg_name="msg", queue_name=STEP_QUEUE, connection="AzureWebJobsStorage")
def in_step(msg: func.QueueMessage) -> None:
    with probe.call("in_step"):
        probe.barrier.wait(timeout=10)  # breaks unless four run at the same time


@app.function_name("held")
@app.queue_trigger(arg_name="msg", queue_name=HOLD_QUEUE, connection="AzureWebJobsStorage")
def held(msg: func.QueueMessage) -> None:
    with probe.call("held"):
        probe.held_started.set()
        if not probe.release.wait(timeout=15):
            raise TimeoutError("the test never released the function")


@app.function_name("chain")
@app.queue_trigger(arg_name="msg", queue_name=CHAIN_QUEUE, connection="AzureWebJobsStorage")
def chain(msg: func.QueueMessage) -> None:
    with probe.call("chain"):
        make_queue(CHAIN_QUEUE, create=False).send_message(b"next")  # never drains


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def fresh_probe() -> None:
    global probe
    probe = Probe()


def make_queue(name: str, *, create: bool = True, encoded: bool = True) -> QueueClient:
    codecs = (
        {
            "message_encode_policy": BinaryBase64EncodePolicy(),
            "message_decode_policy": BinaryBase64DecodePolicy(),
        }
        if encoded
        else {}
    )
    client = QueueClient.from_connection_string(storage_connection(), name, **codecs)
    if create:
        client.create_queue()
    return client


def write_host_json(directory: Path, **queues: object) -> Path:
    path = directory / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    return path


FAST = {"maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00"}


class Running:
    """`DevHost.run(stop)` on a thread, stopped (and joined) on exit."""

    def __init__(self, devhost: DevHost) -> None:
        self.stop_event = threading.Event()
        self.summary: RunSummary | None = None
        self.thread = threading.Thread(target=self._run, args=(devhost,))

    def _run(self, devhost: DevHost) -> None:
        self.summary = devhost.run(self.stop_event)

    def stop(self, timeout: float = 15.0) -> RunSummary:
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run() did not return after stop was set"
        assert self.summary is not None
        return self.summary


@contextmanager
def running(devhost: DevHost) -> Iterator[Running]:
    run = Running(devhost)
    run.thread.start()
    try:
        yield run
    finally:
        probe.release.set()
        run.stop_event.set()
        run.thread.join(15)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.05)


def executed_lines(text: str, name: str, outcome: str) -> list[str]:
    pattern = rf"Executed 'Functions\.{name}' \({outcome}, Id=[0-9a-f-]{{36}}, Duration=\d+ms\)"
    return re.findall(pattern, text)


# --------------------------------------------------------------------------- schedules


def test_next_occurrence_every_minute():
    at = datetime(2026, 1, 31, 12, 0, 7, tzinfo=UTC)
    assert next_occurrence("0 */1 * * * *", at) == datetime(2026, 1, 31, 12, 1, tzinfo=UTC)
    on_the_minute = datetime(2026, 1, 31, 12, 1, tzinfo=UTC)
    assert next_occurrence("0 */1 * * * *", on_the_minute) == datetime(
        2026, 1, 31, 12, 2, tzinfo=UTC
    )
    before_midnight = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert next_occurrence("0 */1 * * * *", before_midnight) == datetime(2027, 1, 1, tzinfo=UTC)


def test_next_occurrence_every_fifteen_seconds():
    at = datetime(2026, 1, 31, 12, 0, 7, tzinfo=UTC)
    assert next_occurrence("*/15 * * * * *", at) == datetime(2026, 1, 31, 12, 0, 15, tzinfo=UTC)
    exactly = datetime(2026, 1, 31, 12, 0, 15, tzinfo=UTC)
    assert next_occurrence("*/15 * * * * *", exactly) == exactly + timedelta(seconds=15)
    late = datetime(2026, 1, 31, 12, 0, 59, 500_000, tzinfo=UTC)
    assert next_occurrence("*/15 * * * * *", late) == datetime(2026, 1, 31, 12, 1, tzinfo=UTC)
    naive = datetime(2026, 1, 31, 12, 0, 7)  # taken as UTC
    assert next_occurrence("*/15 * * * * *", naive) == datetime(2026, 1, 31, 12, 0, 15, tzinfo=UTC)


def test_next_occurrence_in_another_time_zone_is_answered_in_utc():
    plus_two = timezone(timedelta(hours=2))
    at = datetime(2026, 1, 31, 14, 0, 7, tzinfo=plus_two)  # 12:00:07 UTC
    assert next_occurrence("0 0 13 * * *", at) == datetime(2026, 1, 31, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    "schedule",
    ["every minute", "* * * * *", "0 * * * * * 2026", "61 * * * * *", "0 0 0 31 2 *", ""],
)
def test_invalid_schedule_is_a_clear_error(schedule):
    with pytest.raises(ScheduleError, match="NCRONTAB") as raised:
        next_occurrence(schedule, datetime(2026, 1, 31, tzinfo=UTC))
    assert repr(schedule) in str(raised.value)


def test_past_due_means_more_than_a_second_late():
    due = datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert not is_past_due(due, due + timedelta(milliseconds=20))
    assert not is_past_due(due, due + timedelta(seconds=1))
    assert is_past_due(due, due + timedelta(seconds=1, milliseconds=1))


# --------------------------------------------------------------------------- host.json


def test_queue_options_from_the_project_host_json():
    options = QueueOptions.from_host_json(ROOT / "host.json")
    assert options == QueueOptions(
        batch_size=8,
        new_batch_threshold=4,
        max_polling_interval=timedelta(seconds=2),
        visibility_timeout=timedelta(seconds=30),
        max_dequeue_count=5,
        message_encoding="base64",
    )


def test_queue_options_default_to_the_hosts_documented_values(tmp_path):
    path = tmp_path / "host.json"
    path.write_text('{"version": "2.0"}')
    assert QueueOptions.from_host_json(path) == QueueOptions(
        batch_size=16,
        new_batch_threshold=8,  # N * batchSize / 2, N = 1 (Consumption)
        max_polling_interval=timedelta(minutes=1),
        visibility_timeout=timedelta(0),
        max_dequeue_count=5,
        message_encoding="base64",
    )
    assert QueueOptions.from_host_json(path, vcpus=4).new_batch_threshold == 32


def test_queue_options_partly_given(tmp_path):
    path = write_host_json(
        tmp_path, batchSize=4, maxPollingInterval="00:00:00.200", messageEncoding="None"
    )
    options = QueueOptions.from_host_json(path)
    assert (options.batch_size, options.new_batch_threshold) == (4, 2)
    assert options.max_polling_interval == timedelta(milliseconds=200)
    assert (options.max_dequeue_count, options.message_encoding) == (5, "none")
    assert options.visibility_timeout == timedelta(0)
    day = write_host_json(tmp_path, visibilityTimeout="1.02:03:04.5")
    assert QueueOptions.from_host_json(day).visibility_timeout == timedelta(
        days=1, hours=2, minutes=3, seconds=4, milliseconds=500
    )


@pytest.mark.parametrize(
    ("queues", "named"),
    [
        ({"batchSize": 64}, "batchSize"),
        ({"batchSize": 0}, "batchSize"),
        ({"newBatchThreshold": -1}, "newBatchThreshold"),
        ({"maxDequeueCount": "5"}, "maxDequeueCount"),
        ({"maxPollingInterval": 2000}, "maxPollingInterval"),  # milliseconds: Functions 1.x
        ({"maxPollingInterval": "00:00:00.050"}, "maxPollingInterval"),
        ({"visibilityTimeout": "30s"}, "visibilityTimeout"),
        ({"visibilityTimeout": "00:61:00"}, "visibilityTimeout"),
        ({"messageEncoding": "utf-8"}, "messageEncoding"),
    ],
)
def test_queue_options_refuse_what_the_host_refuses(tmp_path, queues, named):
    with pytest.raises(HostJsonError, match=named):
        QueueOptions.from_host_json(write_host_json(tmp_path, **queues))


def test_identity_based_connection_is_out_of_scope(tmp_path, monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.setenv("AzureWebJobsStorage__queueServiceUri", "https://x.queue.core.windows.net")
    with pytest.raises(BindingError, match="identity-based.*func start"):
        DevHost(app, host_json=ROOT / "host.json", functions=["echo"])
    monkeypatch.delenv("AzureWebJobsStorage__queueServiceUri")
    with pytest.raises(BindingError, match="AzureWebJobsStorage is not set"):
        DevHost(app, host_json=ROOT / "host.json", functions=["echo"])


def test_unknown_function_is_named(app_env):
    with pytest.raises(BindingError, match="no function named nope; the app has tick"):
        DevHost(app, host_json=ROOT / "host.json", functions=["nope"])


# --------------------------------------------------------------------------- timers


def test_timers_run_on_schedule_one_run_at_a_time(app_env, caplog):
    caplog.set_level(logging.INFO)
    devhost = DevHost(app, host_json=ROOT / "host.json", functions=["tick", "overrun", "startup"])
    with running(devhost) as run:
        ticks = probe.seen("tick", 2, timeout=10)
        overruns = probe.seen("overrun", 2, timeout=10)
        summary = run.stop()

    # On schedule: a run on each whole second, the failed first run did not stop the timer.
    first, second = ticks[:2]
    assert second.started - first.started >= timedelta(seconds=0.9)
    assert first.started.second != second.started.second
    assert summary.timer_failed == 1
    assert "tick: RuntimeError: first tick fails" in summary.errors
    assert len(summary.errors) == 1
    assert executed_lines(caplog.text, "tick", "Failed")
    assert executed_lines(caplog.text, "tick", "Succeeded")
    assert "Executing 'Functions.tick' (Reason='Timer fired at " in caplog.text

    # A run longer than the period: never two at once, the occurrence it overlapped is skipped
    # rather than run late, and the next run is on time.
    assert probe.most_at_once["overrun"] == 1
    long_run, next_run = overruns[:2]
    assert next_run.started >= long_run.ended
    assert next_run.started - long_run.started >= timedelta(seconds=1.9)
    assert not any(call.past_due for call in ticks + overruns)

    # run_on_startup: once at start, not again (its schedule is once a year).
    (at_start,) = probe.calls["startup"]
    assert at_start.past_due is False
    assert summary.timer_runs == len(probe.calls["tick"]) + len(probe.calls["overrun"]) + 1


# --------------------------------------------------------------------------- queues


@pytest.mark.parametrize("encoding", ["base64", "none"])
def test_queue_messages_are_processed_in_their_encoding(
    app_env, clean_storage, tmp_path, caplog, encoding
):
    caplog.set_level(logging.INFO)
    host_json = write_host_json(tmp_path, messageEncoding=encoding, **FAST)
    client = make_queue(ECHO_QUEUE, encoded=encoding == "base64")
    bodies = [b'{"pk": "1", "rk": "secret-body-one"}', "caf\u00e9 secret-body-two".encode()]
    for body in bodies:
        client.send_message(body if encoding == "base64" else body.decode())

    with running(DevHost(app, host_json=host_json, functions=["echo"])) as run:
        calls = probe.seen("echo", 2)
        summary = run.stop()

    assert sorted(call.body for call in calls) == sorted(bodies)
    assert [call.dequeue_count for call in calls] == [1, 1]
    assert (summary.succeeded, summary.failed, summary.poisoned, summary.ok) == (2, 0, 0, True)
    assert client.get_queue_properties().approximate_message_count == 0
    assert re.search(
        r"Executing 'Functions\.echo' \(Reason='New queue message detected on "
        rf"'{ECHO_QUEUE}'\.', Id=[0-9a-f-]{{36}}\)",
        caplog.text,
    )
    assert len(executed_lines(caplog.text, "echo", "Succeeded")) == 2
    assert "echo got message" in caplog.text  # the function's own log records
    assert "secret-body" not in caplog.text


def test_failing_message_goes_to_the_poison_queue_after_max_dequeue_count(
    app_env, clean_storage, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    host_json = write_host_json(
        tmp_path, maxDequeueCount=2, visibilityTimeout="00:00:01", maxPollingInterval="00:00:00.200"
    )
    client = make_queue(FAIL_QUEUE)
    client.send_message(b"secret-body-three")
    poison = make_queue(f"{FAIL_QUEUE}-poison", create=False)

    with running(DevHost(app, host_json=host_json, functions=["always_fails"])) as run:
        wait_until(lambda: poison_messages(poison), "the poison queue")
        summary = run.stop()

    first, retry = probe.calls["always_fails"]
    assert (first.dequeue_count, retry.dequeue_count) == (1, 2)
    assert first.ended is not None
    assert retry.started - first.ended >= timedelta(seconds=0.9)  # visibilityTimeout
    assert [message.content for message in poison.receive_messages()] == [b"secret-body-three"]
    assert client.get_queue_properties().approximate_message_count == 0
    assert (summary.succeeded, summary.failed, summary.poisoned) == (0, 2, 1)
    assert summary.errors == ["always_fails: RuntimeError: always fails"] * 2
    assert not summary.ok
    assert len(executed_lines(caplog.text, "always_fails", "Failed")) == 2
    assert "secret-body" not in caplog.text


def poison_messages(poison: QueueClient) -> bool:
    try:
        return bool(poison.peek_messages())
    except Exception:  # not created yet
        return False


def test_message_not_in_the_configured_encoding_is_poisoned_unseen(
    app_env, clean_storage, tmp_path
):
    client = make_queue(ECHO_QUEUE, encoded=False)
    client.send_message("plain text, not base64!")
    devhost = DevHost(app, host_json=write_host_json(tmp_path, **FAST), functions=["echo"])

    summary = devhost.run_until_drained(timeout=30)

    assert "echo" not in probe.calls
    assert (summary.succeeded, summary.failed, summary.poisoned) == (0, 0, 1)
    assert not summary.ok
    poison = make_queue(f"{ECHO_QUEUE}-poison", create=False, encoded=False)
    assert [m.content for m in poison.receive_messages()] == ["plain text, not base64!"]


@pytest.mark.parametrize(
    ("batch_size", "new_batch_threshold"),
    [(4, 0), (2, 2)],  # (2, 2): a new batch is fetched while the first still runs
)
def test_a_batch_runs_concurrently(
    app_env, clean_storage, tmp_path, batch_size, new_batch_threshold
):
    host_json = write_host_json(
        tmp_path, batchSize=batch_size, newBatchThreshold=new_batch_threshold, **FAST
    )
    client = make_queue(STEP_QUEUE)
    for n in range(4):
        client.send_message(f"step {n}".encode())

    with running(DevHost(app, host_json=host_json, functions=["in_step"])) as run:
        probe.seen("in_step", 4)
        summary = run.stop()

    assert (summary.succeeded, summary.failed) == (4, 0), summary.errors
    assert probe.most_at_once["in_step"] == 4


def test_stop_ends_run_promptly_after_in_flight_work(app_env, clean_storage, tmp_path):
    # A long polling back-off and a timer due next year must not delay the stop.
    host_json = write_host_json(
        tmp_path, batchSize=1, maxPollingInterval="00:01:00", visibilityTimeout="00:00:00"
    )
    client = make_queue(HOLD_QUEUE)
    client.send_message(b"hold")
    with running(DevHost(app, host_json=host_json, functions=["held", "yearly"])) as run:
        assert probe.held_started.wait(15)
        run.stop_event.set()
        run.thread.join(0.5)
        assert run.thread.is_alive(), "run() returned while a function was still running"
        probe.release.set()
        stopped_at = time.monotonic()
        summary = run.stop(timeout=5)
        assert time.monotonic() - stopped_at < 2

    assert (summary.succeeded, summary.failed) == (1, 0)
    assert probe.calls["held"][0].ended is not None
    assert client.get_queue_properties().approximate_message_count == 0  # settled before return
    assert "yearly" not in probe.calls


def test_run_until_drained_times_out(app_env, clean_storage, tmp_path):
    make_queue(CHAIN_QUEUE).send_message(b"first")
    devhost = DevHost(app, host_json=write_host_json(tmp_path, **FAST), functions=["chain"])
    with pytest.raises(DrainTimeout) as raised:
        devhost.run_until_drained(timeout=0.5)
    assert isinstance(raised.value, TimeoutError)
    assert raised.value.summary.succeeded == len(probe.calls["chain"]) >= 1


# --------------------------------------------------------------------------- the real app


@pytest.fixture
def function_app(host: HostDriver):
    """The app as the `host` fixture imported it (once per session, with the session's env)."""
    import function_app

    return function_app


def test_run_once_delivers_a_new_lead(function_app, leads, email_service):
    devhost = DevHost(function_app.app, host_json=ROOT / "host.json")
    first = devhost.run_once()  # the first poll fixes the start; older rows are history
    assert (first.timer_runs, first.succeeded, first.ok) == (1, 0, True)

    leads.create_entity(sample_leads.jane("PLT"))
    summary = devhost.run_once()

    assert (summary.timer_runs, summary.succeeded, summary.failed) == (1, 1, 0), summary.errors
    (mail,) = email_service.messages
    assert mail.to == (SALES,)
    assert mail.subject.startswith("[New lead] Jane Doe")


def test_cli_once_fills_the_environment_from_local_settings(
    function_app, host, leads, email_service, tmp_path, monkeypatch
):
    host.tick("poll_leads")  # the first poll fixes the start
    leads.create_entity(sample_leads.jane("PLT"))
    monkeypatch.delenv("LEAD_ALERT_RECIPIENTS")
    settings = tmp_path / "local.settings.json"
    values = {"LEAD_ALERT_RECIPIENTS": "cli@contoso.com", "EMAIL_SENDER": "other@contoso.com"}
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))

    with mock.patch.dict(os.environ):
        assert main(["--once", "--settings", str(settings)]) == 0

    (mail,) = email_service.messages
    assert mail.to == ("cli@contoso.com",)  # filled in from local.settings.json
    assert mail.sender == SENDER  # a variable already set wins


def test_cli_once_exit_codes(app_env, clean_storage, tmp_path, capsys):
    settings = tmp_path / "local.settings.json"
    settings.write_text('{"Values": {}}')
    host_json = write_host_json(tmp_path, maxDequeueCount=1, **FAST)
    make_queue(FAIL_QUEUE).send_message(b"fails")
    common = ["--once", "--settings", str(settings), "--app", "tests.test_devhost"]
    common += ["--host-json", str(host_json)]

    with mock.patch.dict(os.environ):
        assert main([*common, "--functions", "echo"]) == 0  # an empty queue: nothing failed
        assert main([*common, "--functions", "always_fails"]) == 1
        assert main([*common, "--functions", "nope"]) == 2
    assert "devhost: no function named nope" in capsys.readouterr().err
    assert len(probe.calls["always_fails"]) == 1


def devhost_process(args: list[str], env: dict[str, str], **options) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shared.devhost", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def test_cli_setting_error_is_one_line(app_env, tmp_path):
    settings = tmp_path / "local.settings.json"
    settings.write_text('{"Values": {}}')
    env = {k: v for k, v in os.environ.items() if k != "EMAIL_SENDER"}
    process = devhost_process(["--once", "--settings", str(settings)], env)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip().splitlines() == [
        "devhost: EMAIL_SENDER is not set; see the settings table in README.md"
    ]


def test_cli_runs_until_sigint_then_exits_cleanly(app_env, clean_storage, tmp_path):
    settings = tmp_path / "local.settings.json"
    settings.write_text('{"Values": {}}')
    process = devhost_process(["--settings", str(settings)], dict(os.environ))
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("Dev host running" in line for line in output):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(output)
            output.append(line)
        process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - signalled < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while (line := lines.get(timeout=10)) is not None:
        output.append(line)
    text = "".join(output)
    assert "poll_leads (timer '0 */1 * * * *'), process_lead (queue 'lead-alerts')" in text
    assert "Dev host stopped" in text
    assert "Traceback" not in text
