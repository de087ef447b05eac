"""Invoke the app's functions the way the Functions host does, without the host.

The host and Core Tools cannot be installed everywhere, so tests and the local demo drive
`function_app.app` through this: it reads the functions' trigger bindings once (as the host
indexes the app), calls the timer function with a `TimerRequest`, and feeds the queue function
`QueueMessage`s received from the real queue, honouring the binding's queue and connection
names, base64 encoding, dequeue counts and the poison queue after `maxDequeueCount`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

log = logging.getLogger(__name__)
_INDEXED: dict[int, dict[str, object]] = {}


def indexed_functions(app: func.FunctionApp) -> dict[str, object]:
    """`app.get_functions()` may run once per process; index once and reuse."""
    key = id(app)
    if key not in _INDEXED:
        _INDEXED[key] = {fn.get_function_name(): fn for fn in app.get_functions()}
    return _INDEXED[key]


def max_dequeue_count(host_json: Path) -> int:
    """host.json `extensions.queues.maxDequeueCount` (the host's default is 5)."""
    config = json.loads(host_json.read_text())
    return int(config.get("extensions", {}).get("queues", {}).get("maxDequeueCount", 5))


@dataclass
class QueueRun:
    """What one pass over a queue did."""

    succeeded: int = 0
    failed: int = 0
    poisoned: int = 0
    errors: list[str] = field(default_factory=list)


class HostDriver:
    def __init__(self, app: func.FunctionApp, *, host_json: Path, retry_delay_seconds: int = 0):
        self._functions = indexed_functions(app)
        self._max_dequeue = max_dequeue_count(host_json)
        self._retry_delay = retry_delay_seconds

    def _function(self, name: str):
        return self._functions[name]

    def tick(self, name: str, *, past_due: bool = False) -> None:
        """One timer tick: exceptions propagate, as the host would log a failed run."""
        function = self._function(name)
        assert function.get_trigger().type == "timerTrigger"
        function.get_user_function()(TimerRequest(past_due=past_due))

    def queue_client(self, name: str, *, poison: bool = False) -> QueueClient:
        """The queue a queue-triggered function listens to, from its binding."""
        trigger = self._function(name).get_trigger()
        assert trigger.type == "queueTrigger"
        queue_name = trigger.queue_name + ("-poison" if poison else "")
        return QueueClient.from_connection_string(
            os.environ[trigger.connection],
            queue_name,
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )

    def run_queue_once(self, name: str, *, max_messages: int = 32) -> QueueRun:
        """Receive the messages visible now, invoke the function for each, settle each."""
        queue = self.queue_client(name)
        user_function = self._function(name).get_user_function()
        run = QueueRun()
        # Receive the whole batch first: settling a failure makes it visible again at once.
        batch = list(
            queue.receive_messages(
                messages_per_page=max_messages, max_messages=max_messages, visibility_timeout=60
            )
        )
        for message in batch:
            body: bytes = message.content
            queue_message = QueueMessage(
                id=message.id,
                body=body,
                dequeue_count=message.dequeue_count,
                expiration_time=message.expires_on,
                insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on,
                pop_receipt=message.pop_receipt,
            )
            try:
                user_function(queue_message)
            except Exception as err:  # the host catches everything a function raises
                run.failed += 1
                run.errors.append(f"{type(err).__name__}: {err}")
                if message.dequeue_count >= self._max_dequeue:
                    self._to_poison(name, body)
                    queue.delete_message(message)
                    run.poisoned += 1
                else:
                    queue.update_message(message, visibility_timeout=self._retry_delay)
                continue
            queue.delete_message(message)
            run.succeeded += 1
        return run

    def drain(self, name: str, *, max_passes: int = 1000) -> QueueRun:
        """Run the queue until it is empty (failures retried, then poisoned, as the host does)."""
        total = QueueRun()
        for _ in range(max_passes):
            run = self.run_queue_once(name)
            if run.succeeded + run.failed == 0:
                return total
            total.succeeded += run.succeeded
            total.failed += run.failed
            total.poisoned += run.poisoned
            total.errors += run.errors
        raise RuntimeError(f"queue of {name} did not drain in {max_passes} passes")

    def _to_poison(self, name: str, body: bytes) -> None:
        poison = self.queue_client(name, poison=True)
        with contextlib.suppress(ResourceExistsError):
            poison.create_queue()
        poison.send_message(body)
