"""Tests for shared.local_email, driven by the real ACS EmailClient.

Why: the emulator is only useful if the real SDK (signing, LRO polling, retries) accepts it,
and if it rejects what real ACS would reject, so every test goes through the SDK or through a
raw, independently signed HTTP request.
"""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import http.client
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email import policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.communication.email import EmailClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.rest import HttpRequest

from shared.local_email import LocalEmailService, ReceivedEmail

API_VERSION = "2025-09-01"
FAST_POLL = 0.01


def make_message(**content: Any) -> dict[str, Any]:
    """A message shaped like the app's alerts; keyword args override ``content`` fields."""
    return {
        "senderAddress": "alerts@leads.example",
        "recipients": {
            "to": [{"address": "owner@shop.example", "displayName": "Shop Owner"}],
            "cc": [{"address": "sales@shop.example"}],
            "bcc": [{"address": "audit@shop.example"}],
        },
        "replyTo": [{"address": "buyer@mail.example", "displayName": "Buyer"}],
        "headers": {"X-Lead-Id": "lead-42"},
        "content": {
            "subject": "New lead: Blue bicycle",
            "plainText": "A buyer is interested in Blue bicycle.",
            "html": "<p>A buyer is interested in <b>Blue bicycle</b>.</p>",
            **content,
        },
    }


def make_client(service: LocalEmailService, key: str | None = None, **kwargs: Any) -> EmailClient:
    """Endpoint + key client (from_connection_string would force https)."""
    kwargs.setdefault("retry_total", 0)
    kwargs.setdefault("retry_backoff_factor", 0.001)
    return EmailClient(service.endpoint, AzureKeyCredential(key or service.access_key), **kwargs)


def send(client: EmailClient, message: dict[str, Any], operation_id: str | None = None) -> Any:
    """begin_send + result with a deadline, so an emulator that never finishes fails, not hangs."""
    poller = client.begin_send(message, operation_id=operation_id, polling_interval=FAST_POLL)
    result = poller.result(timeout=5)
    assert poller.done(), "the LRO did not reach a terminal state"
    return result


def sign(
    key: str, method: str, target: str, host: str, body: bytes, *, date: datetime | None = None
) -> dict[str, str]:
    """Independent implementation of the ACS HMAC scheme, for hand-made requests."""
    signed_at = format_datetime(date or datetime.now(timezone.utc), usegmt=True)
    content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    to_sign = f"{method}\n{target}\n{signed_at};{host};{content_hash}"
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return {
        "x-ms-date": signed_at,
        "x-ms-content-sha256": content_hash,
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        f"&Signature={base64.b64encode(digest).decode()}",
    }


def raw_request(
    service: LocalEmailService,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send one request with http.client; returns (status, headers, parsed JSON body)."""
    netloc = urlsplit(service.endpoint).netloc
    conn = http.client.HTTPConnection(netloc, timeout=5)
    try:
        conn.request(method, target, body=body, headers={"Host": netloc, **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
        return response.status, dict(response.getheaders()), json.loads(payload or b"{}")
    finally:
        conn.close()


@pytest.fixture
def service() -> Iterator[LocalEmailService]:
    with LocalEmailService() as svc:
        yield svc


@pytest.fixture
def client(service: LocalEmailService) -> Iterator[EmailClient]:
    with make_client(service) as email_client:
        yield email_client


def test_send_records_every_field_and_completes(
    service: LocalEmailService, client: EmailClient
) -> None:
    before = datetime.now(timezone.utc)
    result = send(client, make_message(), "op-1")

    assert result == {"id": "op-1", "status": "Succeeded", "error": None}
    [received] = service.messages
    assert isinstance(received, ReceivedEmail)
    assert received.operation_id == "op-1"
    assert received.sender == "alerts@leads.example"
    assert received.to == ("owner@shop.example",)
    assert received.cc == ("sales@shop.example",)
    assert received.bcc == ("audit@shop.example",)
    assert received.reply_to == ("buyer@mail.example",)
    assert received.subject == "New lead: Blue bicycle"
    assert received.plain_text == "A buyer is interested in Blue bicycle."
    assert received.html == "<p>A buyer is interested in <b>Blue bicycle</b>.</p>"
    assert received.headers == {"X-Lead-Id": "lead-42"}
    assert received.raw == make_message()
    assert received.received_at.tzinfo == timezone.utc
    assert before <= received.received_at <= datetime.now(timezone.utc)
    assert service.send_attempts == [("op-1", 202)]
    assert service.operation_status("op-1") == "Succeeded"
    assert service.operation_status("op-unknown") is None


def test_completes_without_waiting_for_the_default_polling_interval(
    service: LocalEmailService, client: EmailClient
) -> None:
    # No polling_interval: the SDK default is 30 s, so this only finishes within the timeout
    # because the first status poll (sent without delay) already says Succeeded.
    poller = client.begin_send(make_message())

    result = poller.result(timeout=5)

    assert poller.done()
    assert result is not None and result["status"] == "Succeeded"
    [received] = service.messages
    assert result["id"] == received.operation_id
    assert uuid.UUID(received.operation_id)  # generated when the client sends none


def test_repeated_operation_id_is_recorded_every_time(
    service: LocalEmailService, client: EmailClient
) -> None:
    for _ in range(2):
        send(client, make_message(), "same")

    assert [m.operation_id for m in service.messages] == ["same", "same"]
    assert service.send_attempts == [("same", 202), ("same", 202)]


def test_wrong_key_is_rejected_and_nothing_recorded(service: LocalEmailService) -> None:
    wrong_key = base64.b64encode(b"x" * 32).decode()
    with (
        make_client(service, wrong_key) as bad_client,
        pytest.raises(ClientAuthenticationError) as excinfo,
    ):
        bad_client.begin_send(make_message(), operation_id="op-bad", polling_interval=FAST_POLL)

    assert excinfo.value.status_code == 401
    assert excinfo.value.error is not None and excinfo.value.error.code == "Denied"
    assert service.messages == []
    assert service.send_attempts == [("op-bad", 401)]


def test_hand_signed_request_is_accepted(service: LocalEmailService) -> None:
    # Control for the tampering tests below: the same helper, used honestly, passes.
    target = f"/emails:send?api-version={API_VERSION}"
    body = json.dumps(make_message()).encode()
    host = urlsplit(service.endpoint).netloc
    headers = {**sign(service.access_key, "POST", target, host, body), "Operation-Id": "op-raw"}

    status, response_headers, payload = raw_request(service, "POST", target, body, headers)

    assert status == 202
    assert payload == {"id": "op-raw", "status": "Running", "error": None}
    assert response_headers["Operation-Location"] == (
        f"{service.endpoint}/emails/operations/op-raw?api-version={API_VERSION}"
    )
    assert response_headers["operation-id"] == "op-raw"
    assert [m.operation_id for m in service.messages] == ["op-raw"]


@pytest.mark.parametrize("declare_real_hash", [False, True])
def test_tampered_body_is_rejected(service: LocalEmailService, declare_real_hash: bool) -> None:
    target = f"/emails:send?api-version={API_VERSION}"
    host = urlsplit(service.endpoint).netloc
    signed_body = json.dumps(make_message()).encode()
    sent_body = json.dumps(make_message(subject="Tampered")).encode()
    headers = sign(service.access_key, "POST", target, host, signed_body)
    if declare_real_hash:  # hash matches what is sent, so only the signature can catch it
        headers["x-ms-content-sha256"] = base64.b64encode(
            hashlib.sha256(sent_body).digest()
        ).decode()

    status, _, payload = raw_request(service, "POST", target, sent_body, headers)

    assert status == 401
    assert payload["error"]["code"] == "Denied"
    assert service.messages == []
    assert [code for _, code in service.send_attempts] == [401]


@pytest.mark.parametrize("skew", [timedelta(minutes=-16), timedelta(minutes=16)])
def test_stale_or_future_date_is_rejected(service: LocalEmailService, skew: timedelta) -> None:
    target = f"/emails:send?api-version={API_VERSION}"
    body = json.dumps(make_message()).encode()
    host = urlsplit(service.endpoint).netloc
    headers = sign(
        service.access_key, "POST", target, host, body, date=datetime.now(timezone.utc) + skew
    )

    status, _, payload = raw_request(service, "POST", target, body, headers)

    assert status == 401
    assert payload["error"]["code"] == "Denied"
    assert service.messages == []


def test_missing_authorization_is_rejected(service: LocalEmailService) -> None:
    body = json.dumps(make_message()).encode()

    status, _, payload = raw_request(
        service, "POST", f"/emails:send?api-version={API_VERSION}", body
    )

    assert status == 401
    assert payload["error"]["code"] == "Denied"
    assert service.messages == []


def test_sdk_retries_through_injected_503s(service: LocalEmailService) -> None:
    service.fail_next(503, count=2)
    with make_client(service, retry_total=3) as retrying_client:
        result = send(retrying_client, make_message(), "op-retry")

    assert result["status"] == "Succeeded"
    assert service.send_attempts == [("op-retry", 503), ("op-retry", 503), ("op-retry", 202)]
    assert [m.operation_id for m in service.messages] == ["op-retry"]


def test_fail_next_also_hits_status_polls(service: LocalEmailService, client: EmailClient) -> None:
    send(client, make_message(), "op-poll")
    request = HttpRequest("GET", "/emails/operations/op-poll", params={"api-version": API_VERSION})
    service.fail_next(429, retry_after=7)

    throttled = client.send_request(request)
    recovered = client.send_request(request)

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert recovered.status_code == 200
    assert recovered.json() == {"id": "op-poll", "status": "Succeeded", "error": None}


def test_outage_fails_sends_until_cleared(service: LocalEmailService) -> None:
    service.set_outage(503)
    with make_client(service, retry_total=2) as retrying_client:
        with pytest.raises(HttpResponseError) as excinfo:
            retrying_client.begin_send(
                make_message(), operation_id="op-down", polling_interval=FAST_POLL
            )
        assert excinfo.value.status_code == 503
        assert service.send_attempts == [("op-down", 503)] * 3
        assert service.messages == []

        service.clear_outage()
        send(retrying_client, make_message(), "op-up")

    assert [m.operation_id for m in service.messages] == ["op-up"]


def test_unknown_operation_is_404(client: EmailClient) -> None:
    response = client.send_request(
        HttpRequest("GET", "/emails/operations/no-such-op", params={"api-version": API_VERSION})
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_unknown_path_is_404(service: LocalEmailService) -> None:
    status, _, payload = raw_request(service, "GET", "/emails")

    assert status == 404
    assert payload["error"]["code"] == "NotFound"


def test_writes_eml_and_html_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    with LocalEmailService(out_dir=out_dir) as svc, make_client(svc) as email_client:
        send(email_client, make_message(subject="Grüße: new lead"), "op-a")
        send(email_client, make_message(html=None), "op-b")

    assert sorted(p.name for p in out_dir.iterdir()) == [
        "0001-op-a.eml",
        "0001-op-a.html",
        "0002-op-b.eml",
    ]
    html = make_message()["content"]["html"]
    assert (out_dir / "0001-op-a.html").read_text(encoding="utf-8") == html
    parsed = email.message_from_bytes(
        (out_dir / "0001-op-a.eml").read_bytes(), policy=policy.default
    )
    assert parsed["Subject"] == "Grüße: new lead"
    assert parsed["From"] == "alerts@leads.example"
    assert parsed["To"] == "Shop Owner <owner@shop.example>"
    assert parsed["Cc"] == "sales@shop.example"
    assert parsed["Reply-To"] == "Buyer <buyer@mail.example>"
    assert parsed["Message-ID"] and parsed["Date"]
    assert parsed["X-Lead-Id"] == "lead-42"
    assert parsed.get_content_type() == "multipart/alternative"
    assert (
        parsed.get_body(("plain",)).get_content().strip() == make_message()["content"]["plainText"]
    )
    assert parsed.get_body(("html",)).get_content().strip() == html
    plain_only = email.message_from_bytes(
        (out_dir / "0002-op-b.eml").read_bytes(), policy=policy.default
    )
    assert plain_only.get_content_type() == "text/plain"


@pytest.mark.parametrize("subject", ["New lead\r\nBcc: victim@example.com", "line\nbreak", "cr\r"])
def test_subject_with_line_break_is_400(
    service: LocalEmailService, client: EmailClient, subject: str
) -> None:
    with pytest.raises(HttpResponseError) as excinfo:
        client.begin_send(make_message(subject=subject), operation_id="op-crlf")

    assert excinfo.value.status_code == 400
    assert excinfo.value.error is not None and excinfo.value.error.code == "BadRequest"
    assert service.messages == []
    assert service.send_attempts == [("op-crlf", 400)]


def _without(path: str) -> dict[str, Any]:
    message = make_message()
    *parents, leaf = path.split(".")
    node = message
    for parent in parents:
        node = node[parent]
    del node[leaf]
    return message


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(_without("senderAddress"), id="no-sender"),
        pytest.param(_without("recipients.to"), id="no-to"),
        pytest.param({**make_message(), "recipients": {"to": []}}, id="empty-to"),
        pytest.param({**make_message(), "recipients": {"to": [{"name": "x"}]}}, id="to-no-address"),
        pytest.param(_without("content.subject"), id="no-subject"),
        pytest.param(
            {**make_message(), "content": {"subject": "Only a subject"}}, id="no-body-parts"
        ),
    ],
)
def test_invalid_messages_are_400(
    service: LocalEmailService, client: EmailClient, message: dict[str, Any]
) -> None:
    with pytest.raises(HttpResponseError) as excinfo:
        client.begin_send(message, operation_id="op-invalid")

    assert excinfo.value.status_code == 400
    assert excinfo.value.error is not None and excinfo.value.error.code == "BadRequest"
    assert service.messages == []


def test_clear_forgets_messages_and_attempts(
    service: LocalEmailService, client: EmailClient
) -> None:
    send(client, make_message(), "op-old")

    service.clear()

    assert service.messages == []
    assert service.send_attempts == []
    assert service.operation_status("op-old") is None


def test_connection_details_and_clean_stop() -> None:
    svc = LocalEmailService().start()
    endpoint = svc.endpoint
    host, port = urlsplit(endpoint).hostname, urlsplit(endpoint).port

    assert host == "127.0.0.1" and port
    assert svc.connection_string == f"endpoint={endpoint}/;accesskey={svc.access_key}"
    assert len(base64.b64decode(svc.access_key)) == 32
    svc.stop()
    svc.stop()  # idempotent

    with pytest.raises(ConnectionRefusedError):
        raw_request(svc, "GET", "/emails")


def test_given_access_key_is_used() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    with LocalEmailService(access_key=key) as svc, make_client(svc, key) as email_client:
        send(email_client, make_message())

        assert svc.access_key == key
        assert len(svc.messages) == 1
    with pytest.raises(ValueError):
        LocalEmailService(access_key="not base64!")
