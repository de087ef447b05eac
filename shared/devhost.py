"""Run the function app locally the way the Functions host would: `python -m shared.devhost`.

A development aid for machines where the Azure Functions Core Tools and host cannot be
installed. Where they can, `func start` is the supported way to run the app locally; this
runner imitates the host only as far as this app needs: timer and queue triggers, queue
connections given as connection strings, host.json `extensions.queues`. It knows nothing of
HTTP or other triggers, identity-based connections, functionTimeout, retry policies or
Application Insights.

Like the host it:

* reads local.settings.json `Values` into the environment (variables already set win), then
  imports the app (`function_app`) and indexes its functions;
* runs timer triggers on their NCRONTAB schedule (six fields, seconds first, UTC), and once at
  start when `run_on_startup` is set. A timer never runs twice at once: occurrences that come
  due while its previous run goes on are skipped. `past_due` is true when a run starts more
  than 1 s after its due time (the process was paused, or the machine slept). A run that
  raises is logged as failed and the schedule continues;
* polls each queue trigger's queue with host.json `extensions.queues`: `batchSize` messages a
  receive, run at once on a thread pool; a new batch when the number in flight drops to
  `newBatchThreshold`; when the queue is empty, polls back off from 100 ms to
  `maxPollingInterval`; a failed message is visible again after `visibilityTimeout`, and goes
  to `<queue>-poison` on its `maxDequeueCount`-th failure; bodies are decoded per
  `messageEncoding`. Running messages stay invisible (received for 10 minutes);
* logs every invocation as the host does, with the functions' own log records, and never a
  message body.

Ctrl-C or SIGTERM stops receiving, lets running invocations finish, and exits 0. With `--once`
it runs every timer once, then the queues until nothing is visible or running, and exits 0
when every invocation succeeded, 1 otherwise. Exit code 2: a setting, host.json or binding is
wrong (one line on stderr says which).

Library use: `DevHost(app, host_json=...)` with `run(stop)`, `run_once()` and
`run_until_drained(timeout=...)`, each returning a `RunSummary`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from shared.azurite import PROJECT_ROOT
from shared.hostdriver import (
    Attempt,
    BindingError,
    HostJsonError,
    QueueOptions,
    QueueRun,
    TriggerQueue,
    indexed_functions,
)
from shared.schedule import ScheduleError, next_occurrence
from shared.settings import SettingsError, environment_with_local_settings

__all__ = [
    "DevHost",
    "DrainTimeout",
    "QueueOptions",
    "RunSummary",
    "ScheduleError",
    "is_past_due",
    "main",
    "next_occurrence",
]

log = logging.getLogger("devhost")

#: A timer run that starts later than this after its due time gets `past_due=True`.
PAST_DUE_AFTER = timedelta(seconds=1)
#: The shortest wait between polls of an empty queue; doubles up to maxPollingInterval.
MIN_POLLING_INTERVAL = 0.1
#: How long a received message stays invisible while its function runs (as the host: 10 min).
RECEIVE_VISIBILITY_TIMEOUT = 600
_MAX_TIMER_WAIT = 30.0  # re-read the wall clock at least this often (sleep, clock changes)
_STOP_CHECK = 0.25  # how often waits on in-flight work look at the stop event


def is_past_due(due: datetime, started: datetime) -> bool:
    """Whether a timer run that was due at `due` and starts at `started` is past due."""
    return started - due > PAST_DUE_AFTER


@dataclass
class RunSummary(QueueRun):
    """What a run did: timer runs, queue messages, and why invocations failed.

    `succeeded`, `failed` (attempts that raised) and `poisoned` count queue messages; `errors`
    holds "<function>: <ExceptionType>: <message>" for each failure, never a message body.
    """

    timer_runs: int = 0
    timer_failed: int = 0

    @property
    def ok(self) -> bool:
        """Every invocation succeeded and nothing went to a poison queue."""
        return not self.errors

    def __str__(self) -> str:
        return (
            f"{self.timer_runs} timer run(s) ({self.timer_failed} failed), "
            f"{self.succeeded} message(s) succeeded, {self.failed} failed attempt(s), "
            f"{self.poisoned} poisoned"
        )


class DrainTimeout(TimeoutError):
    """The queues were not drained in time; `summary` says what was done until then."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


class _Tally:
    """A RunSummary that many worker threads add to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._summary = RunSummary()

    def message(self, function_name: str, attempt: Attempt) -> None:
        if attempt.error is not None:
            attempt = replace(attempt, error=f"{function_name}: {attempt.error}")
        with self._lock:
            self._summary.record(attempt)

    def timer(self, function_name: str, error: str | None) -> None:
        with self._lock:
            self._summary.timer_runs += 1
            if error is not None:
                self._summary.timer_failed += 1
                self._summary.errors.append(f"{function_name}: {error}")

    def error(self, text: str) -> None:
        with self._lock:
            self._summary.errors.append(text)

    def snapshot(self) -> RunSummary:
        with self._lock:
            return replace(self._summary, errors=list(self._summary.errors))


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _invoke(name: str, reason: str, call: Callable[[], None], details: str = "") -> None:
    """One invocation, logged as the host logs it; what the function raises propagates."""
    invocation_id = uuid.uuid4()
    log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", name, reason, invocation_id)
    if details:
        log.info("Trigger Details: %s", details)
    started = time.perf_counter()
    try:
        call()
    except Exception as err:
        duration = round((time.perf_counter() - started) * 1000)
        log.error(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", name, invocation_id, duration
        )
        log.error(
            "Exception while executing function: Functions.%s. %s",
            name,
            _describe(err),
            exc_info=err,
        )
        raise
    duration = round((time.perf_counter() - started) * 1000)
    log.info(
        "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", name, invocation_id, duration
    )


class _Timer:
    """One timer-triggered function and its schedule."""

    def __init__(self, function: Any) -> None:
        trigger = function.get_trigger()
        self.name: str = function.get_function_name()
        self.schedule: str = trigger.schedule
        self.run_on_startup = bool(trigger.run_on_startup)
        self._call = function.get_user_function()
        self._running = threading.Lock()  # never two runs of one timer at once
        next_occurrence(self.schedule, _utcnow())  # a bad schedule fails at start

    def fire(self, tally: _Tally, reason: str, *, past_due: bool = False) -> None:
        with self._running:
            try:
                _invoke(self.name, reason, lambda: self._call(TimerRequest(past_due=past_due)))
            except Exception as err:
                tally.timer(self.name, _describe(err))
            else:
                tally.timer(self.name, None)

    def serve(self, stop: threading.Event, tally: _Tally) -> None:
        """Run on schedule until `stop` is set; a run in progress is finished first."""
        if self.run_on_startup and not stop.is_set():
            self.fire(tally, "Timer fired at startup (runOnStartup)")
        due = next_occurrence(self.schedule, _utcnow())
        while True:
            remaining = (due - _utcnow()).total_seconds()
            if remaining > 0:
                if stop.wait(min(remaining, _MAX_TIMER_WAIT)):
                    return
                continue
            if stop.is_set():
                return
            started = _utcnow()
            self.fire(
                tally,
                f"Timer fired at {started.isoformat()}",
                past_due=is_past_due(due, started),
            )
            # Occurrences that came due during the run are skipped, never run late in a burst.
            due = next_occurrence(self.schedule, max(due, _utcnow()))


class _Listener:
    """Polls one trigger queue and runs its function on a pool, as the host's queue listener."""

    def __init__(self, function: Any, queue: TriggerQueue, tally: _Tally) -> None:
        self.name: str = function.get_function_name()
        self._call = function.get_user_function()
        self._queue = queue
        self._options = queue.options
        self._tally = tally
        self._changed = threading.Condition()
        self._in_flight = 0
        self._completed = 0

    def listen(self, stop: threading.Event, *, until_drained: bool = False) -> bool:
        """Poll until `stop` is set, or with `until_drained` until nothing is visible or running.

        Returns whether the queue was drained. In-flight invocations finish before it returns.
        """
        options = self._options
        pool = ThreadPoolExecutor(
            max_workers=options.batch_size + options.new_batch_threshold,
            thread_name_prefix=f"devhost-{self.name}",
        )
        delay = MIN_POLLING_INTERVAL
        try:
            while self._wait_for_room(stop):
                with self._changed:
                    idle, completed = self._in_flight == 0, self._completed
                batch = self._receive()
                if batch:
                    for message in batch:
                        with self._changed:
                            self._in_flight += 1
                        pool.submit(self._handle, message)
                    delay = MIN_POLLING_INTERVAL
                elif batch is not None and until_drained:
                    if idle:  # nothing was running before the receive found nothing
                        return True
                    self._wait_for_completion(stop, completed)
                else:
                    stop.wait(delay)
                    delay = min(delay * 2, options.max_polling_interval.total_seconds())
        finally:
            pool.shutdown(wait=True)
        return False

    def _receive(self) -> list[Any] | None:
        try:
            return self._queue.receive(
                self._options.batch_size, visibility_timeout=RECEIVE_VISIBILITY_TIMEOUT
            )
        except AzureError as err:
            log.warning("Polling queue '%s' failed, will retry: %s", self._queue.name, err)
            return None

    def _wait_for_room(self, stop: threading.Event) -> bool:
        """Wait until the number in flight is at or below newBatchThreshold; False on stop."""
        with self._changed:
            while self._in_flight > self._options.new_batch_threshold and not stop.is_set():
                self._changed.wait(_STOP_CHECK)
        return not stop.is_set()

    def _wait_for_completion(self, stop: threading.Event, completed: int) -> None:
        with self._changed:
            while self._completed == completed and not stop.is_set():
                self._changed.wait(_STOP_CHECK)

    def _handle(self, message: Any) -> None:
        try:
            self._tally.message(self.name, self._queue.handle(message, self._run))
        except Exception as err:  # storage failed while settling the message
            log.error("Settling message %s of '%s' failed: %s", message.id, self._queue.name, err)
            self._tally.error(f"{self.name}: settling message {message.id}: {_describe(err)}")
        finally:
            with self._changed:
                self._in_flight -= 1
                self._completed += 1
                self._changed.notify_all()

    def _run(self, message: QueueMessage) -> None:
        details = (
            f"MessageId: {message.id}, DequeueCount: {message.dequeue_count}, "
            f"InsertedOn: {message.insertion_time}"
        )
        reason = f"New queue message detected on '{self._queue.name}'."
        _invoke(self.name, reason, lambda: self._call(message), details)


class DevHost:
    """The app's timer and queue functions, run as the Functions host would run them.

    `functions` names the functions to run (default: all). Bindings, schedules and host.json
    are checked here, so a wrong setting fails before anything runs.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        host_json: Path,
        functions: Iterable[str] | None = None,
    ) -> None:
        indexed = indexed_functions(app)
        names = list(indexed) if functions is None else list(dict.fromkeys(functions))
        unknown = [name for name in names if name not in indexed]
        if unknown:
            raise BindingError(
                f"no function named {', '.join(unknown)}; the app has {', '.join(indexed)}"
            )
        self.options = QueueOptions.from_host_json(host_json)
        self._timers: list[_Timer] = []
        self._queues: list[tuple[Any, TriggerQueue]] = []
        for name in names:
            function = indexed[name]
            kind = function.get_trigger().type
            if kind == "timerTrigger":
                self._timers.append(_Timer(function))
            elif kind == "queueTrigger":
                queue = TriggerQueue(
                    function, self.options, retry_delay=self.options.visibility_timeout
                )
                self._queues.append((function, queue))
            else:
                log.warning("Skipping %s: devhost runs timer and queue triggers only", name)

    def describe(self) -> str:
        timers = [f"{t.name} (timer '{t.schedule}')" for t in self._timers]
        queues = [f"{f.get_function_name()} (queue '{q.name}')" for f, q in self._queues]
        return ", ".join(timers + queues) or "no functions"

    def run(self, stop: threading.Event) -> RunSummary:
        """Run until `stop` is set; then stop receiving, let running invocations finish."""
        tally = _Tally()
        threads = [
            threading.Thread(target=t.serve, args=(stop, tally), name=f"devhost-{t.name}")
            for t in self._timers
        ]
        threads += [
            threading.Thread(
                target=_Listener(function, queue, tally).listen,
                args=(stop,),
                name=f"devhost-{function.get_function_name()}",
            )
            for function, queue in self._queues
        ]
        for thread in threads:
            thread.start()
        log.info("Dev host running: %s", self.describe())
        stop.wait()
        log.info("Stopping: no new invocations; waiting for running ones to finish")
        for thread in threads:
            thread.join()
        summary = tally.snapshot()
        log.info("Dev host stopped: %s", summary)
        return summary

    def run_once(self, *, timeout: float = 300.0) -> RunSummary:
        """Run every timer once now, then the queues until drained (see `run_until_drained`)."""
        tally = _Tally()
        for timer in self._timers:
            timer.fire(tally, "Run once (devhost --once)")
        self._drain(tally, timeout)
        return tally.snapshot()

    def run_until_drained(self, *, timeout: float) -> RunSummary:
        """Run the queue functions until no message is visible and none is running.

        Raises `DrainTimeout` (a TimeoutError) after `timeout` seconds, once the invocations
        already running have finished. A failed message that waits out a visibilityTimeout is
        not visible, so it does not hold the drain up.
        """
        tally = _Tally()
        self._drain(tally, timeout)
        return tally.snapshot()

    def _drain(self, tally: _Tally, timeout: float) -> None:
        expired = threading.Event()
        deadline = threading.Timer(timeout, expired.set)
        deadline.daemon = True
        deadline.start()
        try:
            while self._queues:
                listeners = [_Listener(function, queue, tally) for function, queue in self._queues]
                with ThreadPoolExecutor(max_workers=len(listeners)) as pool:
                    drained = list(
                        pool.map(lambda ln: ln.listen(expired, until_drained=True), listeners)
                    )
                # One queue's function may have written to another that had already drained.
                if all(drained) and not any(q.has_visible_messages() for _, q in self._queues):
                    return
                if expired.is_set():
                    raise DrainTimeout(
                        f"the queues were not drained within {timeout:g} s", tally.snapshot()
                    )
        finally:
            deadline.cancel()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.devhost",
        description=(
            "Run the function app's timer and queue triggers locally, the way the Functions "
            "host would, until Ctrl-C or SIGTERM (running invocations finish first). A "
            "development aid for machines without the Azure Functions Core Tools: where they "
            "are installed, `func start` is the supported way to run the app."
        ),
        epilog=(
            "Exit codes: 0 done (with --once: every invocation succeeded); 1 --once saw a "
            "failure; 2 a setting, host.json or binding is wrong."
        ),
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run every timer once now, then the queues until none has a visible or running "
        "message, and exit",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="PATH",
        help="local.settings.json whose Values fill in the environment (variables already set "
        "win); default: ./local.settings.json if it exists",
    )
    parser.add_argument(
        "--host-json",
        type=Path,
        default=PROJECT_ROOT / "host.json",
        metavar="PATH",
        help="host.json to honour (default: %(default)s)",
    )
    parser.add_argument(
        "--app",
        default="function_app",
        metavar="MODULE",
        help="module whose `app` is the FunctionApp (default: %(default)s)",
    )
    parser.add_argument(
        "--functions",
        metavar="NAME,...",
        help="run only these functions (comma-separated; default: all)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --once: give up draining the queues after this long (default: %(default)g)",
    )
    return parser


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[handler])  # no-op if already configured
    logging.getLogger("azure").setLevel(logging.WARNING)  # SDK request logs would flood


def _load(args: argparse.Namespace) -> DevHost:
    """Settings into the environment, then the app and its bindings; errors are one line."""
    settings = args.settings
    if settings is None and Path("local.settings.json").is_file():
        settings = Path("local.settings.json")
    if settings is not None and not settings.is_file():
        raise SettingsError(f"{settings} not found")
    os.environ.update(environment_with_local_settings(settings))
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    try:
        module = importlib.import_module(args.app)
    except ModuleNotFoundError as err:
        raise BindingError(f"cannot import the app module {args.app!r}: {err}") from None
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        raise BindingError(f"module {args.app!r} has no FunctionApp named `app`")
    names = None
    if args.functions:
        names = [name.strip() for name in args.functions.split(",") if name.strip()]
    return DevHost(app, host_json=args.host_json, functions=names)


def run_until_signalled(host: DevHost) -> int:
    """Run until Ctrl-C or SIGTERM (a second Ctrl-C abandons running functions); exit code."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for running functions
            os.write(2, b"devhost: stopping at once, running functions are abandoned\n")
            os._exit(130)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        log.info("Press Ctrl-C to stop (running functions finish first)")
        host.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging()
    try:
        host = _load(args)
    except (SettingsError, HostJsonError, BindingError, ScheduleError, OSError) as err:
        print(f"devhost: {err}", file=sys.stderr)
        return 2
    if not args.once:
        return run_until_signalled(host)
    try:
        summary = host.run_once(timeout=args.timeout)
    except DrainTimeout as err:
        log.error("%s; so far: %s", err, err.summary)
        return 1
    log.info("Done: %s", summary)
    for error in summary.errors:
        log.info("  failed: %s", error)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
