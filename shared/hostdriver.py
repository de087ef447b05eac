"""Invoke the app's functions the way the Functions host does, without the host.

The host and Core Tools cannot be installed everywhere, so tests and the local demo drive
`function_app.app` through this: it reads the functions' trigger bindings once (as the host
indexes the app), calls the timer function with a `TimerRequest`, and feeds the queue function
`QueueMessage`s received from the real queue, honouring the binding's queue and connection
names, host.json's message encoding, dequeue counts and the poison queue after
`maxDequeueCount`.

`HostDriver` is the synchronous driver the tests step through; `shared.devhost` is the
long-running local runner. Both use the host semantics defined once here: host.json's queue
options (`QueueOptions`) and the life of one queue message (`TriggerQueue`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

log = logging.getLogger(__name__)
_INDEXED: dict[int, dict[str, object]] = {}

#: The poison queue of queue NAME is NAME-poison, as the host names it.
POISON_SUFFIX = "-poison"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")


def indexed_functions(app: func.FunctionApp) -> dict[str, object]:
    """`app.get_functions()` may run once per process; index once and reuse."""
    key = id(app)
    if key not in _INDEXED:
        _INDEXED[key] = {fn.get_function_name(): fn for fn in app.get_functions()}
    return _INDEXED[key]


class HostJsonError(ValueError):
    """host.json holds a value the host would refuse; the message names the key."""


class BindingError(ValueError):
    """A trigger binding cannot be served here (e.g. its connection setting is missing)."""


def parse_timespan(key: str, value: object) -> timedelta:
    """A host.json TimeSpan such as "00:00:30", "00:00:00.200" or "1.00:00:00" (one day)."""
    match = _TIMESPAN.match(value) if isinstance(value, str) else None
    if match is None:
        raise HostJsonError(
            f'host.json {key} must be a TimeSpan string "[d.]hh:mm:ss[.fffffff]", '
            f'e.g. "00:00:30"; got {value!r}'
        )
    days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        raise HostJsonError(f"host.json {key} has an hour, minute or second out of range: {value}")
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds or 0),
        microseconds=round(float(f"0.{fraction or 0}") * 1_000_000),
    )


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the host's documented defaults for absent keys.

    Defaults (Azure Functions "Azure Queue storage trigger and bindings", host.json settings,
    storage extension 5.x): batchSize 16 (1 to 32), newBatchThreshold N*batchSize/2 where N is
    the number of vCPUs on App Service and Premium plans and 1 on Consumption plans,
    maxPollingInterval 00:01:00 (not below 100 ms), visibilityTimeout 00:00:00,
    maxDequeueCount 5, messageEncoding base64 (or none).
    """

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: timedelta = timedelta(minutes=1)
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, path: Path, *, vcpus: int = 1) -> QueueOptions:
        """Read host.json. `vcpus` is N in the default newBatchThreshold (1: Consumption)."""
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise HostJsonError(f"{path} is not valid JSON: {err}") from None
        extensions = config.get("extensions", {}) if isinstance(config, dict) else None
        queues = extensions.get("queues", {}) if isinstance(extensions, dict) else None
        if not isinstance(queues, dict):
            raise HostJsonError(f"{path}: extensions.queues must be a JSON object")
        return cls.from_settings(queues, vcpus=vcpus)

    @classmethod
    def from_settings(cls, queues: Mapping[str, Any], *, vcpus: int = 1) -> QueueOptions:
        """The `extensions.queues` object of a host.json."""
        batch_size = _whole(queues, "batchSize", 16, low=1, high=32)
        options = cls(
            batch_size=batch_size,
            new_batch_threshold=_whole(
                queues, "newBatchThreshold", vcpus * batch_size // 2, low=0, high=None
            ),
            max_polling_interval=parse_timespan(
                "extensions.queues.maxPollingInterval", queues.get("maxPollingInterval", "00:01:00")
            ),
            visibility_timeout=parse_timespan(
                "extensions.queues.visibilityTimeout", queues.get("visibilityTimeout", "00:00:00")
            ),
            max_dequeue_count=_whole(queues, "maxDequeueCount", 5, low=1, high=None),
            message_encoding=str(queues.get("messageEncoding", "base64")).lower(),
        )
        if options.max_polling_interval < timedelta(milliseconds=100):
            raise HostJsonError("host.json extensions.queues.maxPollingInterval must be >= 100 ms")
        if options.message_encoding not in ("base64", "none"):
            raise HostJsonError(
                "host.json extensions.queues.messageEncoding must be base64 or none, "
                f"got {queues.get('messageEncoding')!r}"
            )
        return options


def _whole(queues: Mapping[str, Any], key: str, default: int, *, low: int, high: int | None) -> int:
    value = queues.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise HostJsonError(f"host.json extensions.queues.{key} must be a whole number >= {low}")
    if high is not None and value > high:
        raise HostJsonError(f"host.json extensions.queues.{key} must be at most {high}")
    return value


def connection_string(connection: str, environ: Mapping[str, str] | None = None) -> str:
    """The storage connection string a binding's `connection` names (an app setting).

    Identity-based connections (`NAME__queueServiceUri`, `NAME__serviceUri`, ...) need the
    Functions host; this runner supports connection strings only.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(connection, "").strip()
    if value:
        return value
    if any(key.startswith(f"{connection}__") for key in environ):
        raise BindingError(
            f"{connection} is configured as an identity-based connection ({connection}__*); "
            f"running queue triggers here needs a connection string in {connection} "
            "(e.g. UseDevelopmentStorage=true for Azurite). Use `func start` for identities."
        )
    raise BindingError(f"{connection} is not set: the queue trigger needs its connection string")


class Settled(Enum):
    """What became of a received message."""

    SUCCEEDED = "succeeded"  # the function returned: deleted
    RETRY = "retry"  # the function raised: visible again after the retry delay
    POISONED = "poisoned"  # raised on its last allowed dequeue, or undecodable: moved to poison


@dataclass(frozen=True)
class Attempt:
    """One received message handled: how it was settled and, if it failed, why."""

    settled: Settled
    error: str | None = None  # "<Type>: <message>"; never the message body
    invoked: bool = True  # False: undecodable, the function never saw it


class UndecodableMessage(ValueError):
    """A message that is not in the configured messageEncoding; the function never sees it."""


@dataclass
class QueueRun:
    """What one pass over a queue did."""

    succeeded: int = 0
    failed: int = 0
    poisoned: int = 0
    errors: list[str] = field(default_factory=list)

    def record(self, attempt: Attempt) -> None:
        if attempt.settled is Settled.SUCCEEDED:
            self.succeeded += 1
        elif attempt.invoked:
            self.failed += 1
        if attempt.settled is Settled.POISONED:
            self.poisoned += 1
        if attempt.error is not None:
            self.errors.append(attempt.error)


class TriggerQueue:
    """The queue of one queue-triggered function, handled as the host handles it.

    Messages are received as stored (text) and decoded here per `messageEncoding`, so a
    message in another encoding is moved to the poison queue instead of breaking the batch.
    A failed message is made visible again after `retry_delay`, and moved to
    `<queue>-poison` (created if needed) once it has been dequeued `maxDequeueCount` times.
    """

    def __init__(
        self,
        function: Any,
        options: QueueOptions,
        *,
        retry_delay: timedelta,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        trigger = function.get_trigger()
        if trigger.type != "queueTrigger":
            raise BindingError(f"{function.get_function_name()} is not queue-triggered")
        self.name: str = trigger.queue_name
        self.function_name: str = function.get_function_name()
        self.options = options
        self._retry_delay = math.ceil(retry_delay.total_seconds())
        conn = connection_string(trigger.connection, environ)
        self._queue = QueueClient.from_connection_string(conn, self.name)
        self._poison = QueueClient.from_connection_string(conn, self.name + POISON_SUFFIX)

    def receive(self, max_messages: int, *, visibility_timeout: int) -> list[Any]:
        """Up to `max_messages` visible messages, invisible to others while handled."""
        try:
            return list(
                self._queue.receive_messages(
                    messages_per_page=max_messages,
                    max_messages=max_messages,
                    visibility_timeout=visibility_timeout,
                )
            )
        except ResourceNotFoundError:  # nothing has created the queue yet: nothing to do
            return []

    def has_visible_messages(self) -> bool:
        try:
            return bool(self._queue.peek_messages(max_messages=1))
        except ResourceNotFoundError:
            return False

    def handle(self, message: Any, invoke: Callable[[QueueMessage], None]) -> Attempt:
        """Decode, invoke (anything it raises counts as a failure), settle."""
        try:
            body = self.decode(message.content)
        except UndecodableMessage as err:
            self._to_poison(message)
            return Attempt(Settled.POISONED, f"{type(err).__name__}: {err}", invoked=False)
        try:
            invoke(queue_message(message, body))
        except Exception as err:  # the host catches everything a function raises
            return Attempt(self._settle_failure(message), f"{type(err).__name__}: {err}")
        self._queue.delete_message(message)
        return Attempt(Settled.SUCCEEDED)

    def decode(self, content: str | None) -> bytes:
        text = content or ""
        if self.options.message_encoding == "none":
            return text.encode("utf-8")
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise UndecodableMessage(
                f"a message on {self.name} is not base64 (host.json messageEncoding)"
            ) from None

    def _settle_failure(self, message: Any) -> Settled:
        if message.dequeue_count >= self.options.max_dequeue_count:
            self._to_poison(message)
            return Settled.POISONED
        self._queue.update_message(message, visibility_timeout=self._retry_delay)
        return Settled.RETRY

    def _to_poison(self, message: Any) -> None:
        """Copy the message as stored (same encoding) to the poison queue, then delete it."""
        with contextlib.suppress(ResourceExistsError):
            self._poison.create_queue()
        self._poison.send_message(message.content)
        self._queue.delete_message(message)
        log.warning(
            "Message %s of %s moved to %s after %d dequeue(s)",
            message.id,
            self.name,
            self.name + POISON_SUFFIX,
            message.dequeue_count,
        )


def queue_message(message: Any, body: bytes) -> QueueMessage:
    """The `func.QueueMessage` the Python worker hands a queue-triggered function."""
    return QueueMessage(
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


class HostDriver:
    def __init__(self, app: func.FunctionApp, *, host_json: Path, retry_delay_seconds: int = 0):
        self._functions = indexed_functions(app)
        self._options = QueueOptions.from_host_json(host_json)
        self._retry_delay = timedelta(seconds=retry_delay_seconds)

    def _function(self, name: str):
        return self._functions[name]

    def tick(self, name: str, *, past_due: bool = False) -> None:
        """One timer tick: exceptions propagate, as the host would log a failed run."""
        function = self._function(name)
        assert function.get_trigger().type == "timerTrigger"
        function.get_user_function()(TimerRequest(past_due=past_due))

    def queue_client(self, name: str, *, poison: bool = False) -> QueueClient:
        """The queue a queue-triggered function listens to, from its binding (bytes in/out)."""
        trigger = self._function(name).get_trigger()
        assert trigger.type == "queueTrigger"
        queue_name = trigger.queue_name + (POISON_SUFFIX if poison else "")
        return QueueClient.from_connection_string(
            connection_string(trigger.connection),
            queue_name,
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )

    def run_queue_once(self, name: str, *, max_messages: int = 32) -> QueueRun:
        """Receive the messages visible now, invoke the function for each, settle each."""
        function = self._function(name)
        queue = TriggerQueue(function, self._options, retry_delay=self._retry_delay)
        user_function = function.get_user_function()
        run = QueueRun()
        # Receive the whole batch first: settling a failure makes it visible again at once.
        for message in queue.receive(max_messages, visibility_timeout=60):
            run.record(queue.handle(message, user_function))
        return run

    def drain(self, name: str, *, max_passes: int = 1000) -> QueueRun:
        """Run the queue until it is empty (failures retried, then poisoned, as the host does)."""
        total = QueueRun()
        for _ in range(max_passes):
            run = self.run_queue_once(name)
            if run.succeeded + run.failed + run.poisoned == 0:
                return total
            total.succeeded += run.succeeded
            total.failed += run.failed
            total.poisoned += run.poisoned
            total.errors += run.errors
        raise RuntimeError(f"queue of {name} did not drain in {max_passes} passes")
