"""Sending mail through Azure Communication Services, with bounded waits and stable ids.

Every mail about a lead has a deterministic operation id. When a retry cannot know whether an
earlier attempt reached ACS (a crash between send and record), it first asks ACS for that
operation: if ACS knows it, the mail went out and is not sent again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from azure.communication.email import EmailClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest

from shared.connections import acs_credential
from shared.settings import AcsConnection

log = logging.getLogger(__name__)

API_VERSION = "2025-09-01"
#: Longest Retry-After the client sleeps through inside one invocation; beyond it the error
#: surfaces and the queue retries the lead later, instead of a function hanging for minutes.
MAX_RETRY_AFTER_SECONDS = 10.0
#: Wait assumed when ACS throttles without saying how long.
DEFAULT_THROTTLE_SECONDS = 60.0


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    to: tuple[str, ...]
    subject: str
    plain_text: str
    html: str

    def to_acs(self) -> dict:
        return {
            "senderAddress": self.sender,
            "recipients": {"to": [{"address": address} for address in self.to]},
            "content": {"subject": self.subject, "plainText": self.plain_text, "html": self.html},
        }


@dataclass(frozen=True)
class SendResult:
    operation_id: str
    status: str  # ACS status: Succeeded, Running, NotStarted, Failed, Canceled
    error: str | None = None
    resent: bool = True  # False when ACS already had this operation

    @property
    def failed(self) -> bool:
        return self.status in ("Failed", "Canceled")


class BoundedRetryPolicy(RetryPolicy):
    """azure-core's retry, but a long Retry-After (ACS throttling) is not slept through."""

    def is_retry(self, settings, response) -> bool:  # type: ignore[override]
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
            return False
        return super().is_retry(settings, response)


def build_email_client(
    acs: AcsConnection, credential: TokenCredential | None = None, **client_options: Any
) -> EmailClient:
    """From endpoint plus key or identity; built directly (not from a connection string,
    which forces https) so an http:// local endpoint works too."""
    return EmailClient(
        acs.endpoint,
        credential or acs_credential(acs),
        retry_policy=BoundedRetryPolicy(retry_total=3, retry_backoff_factor=0.5, timeout=60),
        connection_timeout=10,
        read_timeout=30,
        **client_options,
    )


class Mailer:
    def __init__(
        self, client: EmailClient, *, polling_interval: float = 0.5, max_wait: float = 30.0
    ) -> None:
        self._client = client
        self._polling_interval = polling_interval
        self._max_wait = max_wait

    def send(self, mail: OutgoingEmail, operation_id: str, *, maybe_sent: bool) -> SendResult:
        """Send once per operation id. `maybe_sent`: an earlier attempt may have reached ACS."""
        if maybe_sent:
            known = self.status(operation_id)
            if known is not None:
                log.info(
                    "ACS already has operation %s (%s); not sending again",
                    operation_id,
                    known.status,
                )
                return known
        try:
            poller = self._client.begin_send(
                mail.to_acs(), operation_id=operation_id, polling_interval=self._polling_interval
            )
            poller.wait(timeout=self._max_wait)
        except HttpResponseError as err:
            _raise_if_throttled(err)
            raise
        if not poller.done():
            # ACS accepted the mail (202); delivery is still running. That is a send.
            return SendResult(operation_id, "Running")
        result = poller.result() or {}
        return SendResult(operation_id, result.get("status", "Succeeded"), _error_text(result))

    def status(self, operation_id: str) -> SendResult | None:
        """What ACS knows of an operation, or None if it never received it."""
        request = HttpRequest(
            "GET", f"/emails/operations/{operation_id}", params={"api-version": API_VERSION}
        )
        response = self._client.send_request(request)
        if response.status_code == 404:
            return None
        try:
            response.raise_for_status()
        except HttpResponseError as err:
            _raise_if_throttled(err)
            raise
        body = response.json()
        return SendResult(
            operation_id, body.get("status", "Unknown"), _error_text(body), resent=False
        )


class Throttled(Exception):
    """ACS answered 429 with a wait too long to sit through inside a function."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"ACS is throttling; retry after {retry_after:.0f} s")
        self.retry_after = retry_after


def _raise_if_throttled(err: HttpResponseError) -> None:
    """Turn a 429 into `Throttled` with ACS's wait; any other error is left to the caller."""
    if err.status_code != 429:
        return
    header = err.response.headers.get("Retry-After") if err.response is not None else None
    seconds = RetryPolicy().parse_retry_after(header) if header else DEFAULT_THROTTLE_SECONDS
    raise Throttled(seconds) from err


def _error_text(result: dict) -> str | None:
    error = result.get("error")
    if not error:
        return None
    return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
