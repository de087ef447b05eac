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
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import Message
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from azure.communication.email import EmailClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.rest import HttpRequest

from shared.local_email import (
    DEV_ACCESS_KEY,
    LocalEmailService,
    ReceivedEmail,
    _parser,
    _service_from_args,
    main,
)

ROOT = Path(__file__).resolve().parent.parent
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


# --------------------------------------------------------------------------- inbox pages


class _Page(HTMLParser):
    """What a browser would make of a page: its text (not <style>), elements and links."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text_parts: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self._in_style = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_style = tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    @property
    def message_links(self) -> list[str]:
        return [
            href
            for attrs in self.tags("a")
            if (href := attrs.get("href")) and re.fullmatch(r"/messages/\d+", href)
        ]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the test wants to see the 303 itself


def http_get(url: str) -> tuple[int, Message, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def page(service: LocalEmailService, path: str = "/") -> _Page:
    status, headers, body = http_get(service.endpoint + path)
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    return _Page(body.decode("utf-8"))


def post_form(
    service: LocalEmailService,
    fields: dict[str, str] | list[tuple[str, str]] | bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, Message, bytes]:
    body = fields if isinstance(fields, bytes) else urlencode(fields).encode("ascii")
    request = urllib.request.Request(
        f"{service.endpoint}/faults",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


HOSTILE_SUBJECT = "Lead <script>alert(1)</script> & <b>bold</b>"
HOSTILE_HTML = (
    '<h1 style="color:#b91c1c">Hi</h1>'
    '<p>Ümlaut, emoji \U0001f600, <a href="mailto:x@y.example">mail</a></p>'
)


def hostile_message() -> dict[str, Any]:
    message = make_message(
        subject=HOSTILE_SUBJECT, html=HOSTILE_HTML, plainText="<i>plain</i>\n2nd"
    )
    message["recipients"] = {
        "to": [{"address": "rep@shop.example", "displayName": "<img src=x onerror=alert(2)>"}],
        "cc": [{"address": "<b>cc</b>@shop.example"}],
    }
    return message


def test_inbox_url_and_empty_inbox(service: LocalEmailService) -> None:
    assert service.inbox_url == f"{service.endpoint}/"
    status, headers, body = http_get(service.inbox_url)

    assert status == 200
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    inbox = _Page(body.decode())
    assert "No messages yet." in inbox.text
    assert "No faults" in inbox.text
    assert service.endpoint in inbox.text
    assert inbox.message_links == []


def test_inbox_lists_messages_newest_first_escaped(
    service: LocalEmailService, client: EmailClient
) -> None:
    send(client, make_message(), "op-first")
    send(client, hostile_message(), "op-hostile")

    _, _, body = http_get(service.inbox_url)
    markup = body.decode()
    inbox = _Page(markup)

    assert inbox.message_links == ["/messages/2", "/messages/1"]
    assert inbox.text.index(HOSTILE_SUBJECT) < inbox.text.index("New lead: Blue bicycle")
    assert "rep@shop.example" in inbox.text
    assert "Cc: <b>cc</b>@shop.example" in inbox.text
    [hostile] = [m for m in service.messages if m.operation_id == "op-hostile"]
    assert hostile.received_at.strftime("%Y-%m-%d %H:%M:%S") in inbox.text
    # The markup stayed text: no element came from a message.
    assert "<script>" not in markup and "<b>cc</b>" not in markup
    assert inbox.tags("script") == [] and inbox.tags("b") == []
    assert all("onerror" not in attrs for _, attrs in inbox.elements)


def test_message_page_shows_headers_iframe_and_text(
    service: LocalEmailService, client: EmailClient
) -> None:
    send(client, make_message(), "op-plain")
    send(client, hostile_message(), "op-hostile")

    message = page(service, "/messages/2")

    for expected in [
        "From alerts@leads.example",
        "To <img src=x onerror=alert(2)> <rep@shop.example>",
        "Cc <b>cc</b>@shop.example",
        "Reply-To Buyer <buyer@mail.example>",
        f"Subject {HOSTILE_SUBJECT}",
        "<i>plain</i> 2nd",
    ]:
        assert expected in message.text
    date = service.messages[1].received_at.strftime("%a, %d %b %Y %H:%M:%S UTC")
    assert f"Date {date}" in message.text
    [frame] = message.tags("iframe")
    assert frame["src"] == "/messages/2/html"
    assert "sandbox" in frame and frame["sandbox"] in ("", None)  # no allow-* at all
    hrefs = [attrs.get("href") for attrs in message.tags("a")]
    assert "/messages/2.eml" in hrefs and "/" in hrefs
    assert [tag for tag, _ in message.elements if tag in ("script", "img", "b", "i")] == []
    assert len(message.tags("pre")) == 1


def test_message_html_is_served_byte_exact_with_a_strict_csp(
    service: LocalEmailService, client: EmailClient
) -> None:
    send(client, hostile_message(), "op-html")

    status, headers, body = http_get(f"{service.endpoint}/messages/1/html")

    assert status == 200
    assert body == HOSTILE_HTML.encode("utf-8")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    )
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_eml_download_parses(service: LocalEmailService, client: EmailClient) -> None:
    send(client, make_message(subject="Grüße: new lead"), "op-eml")

    status, headers, body = http_get(f"{service.endpoint}/messages/1.eml")

    assert status == 200
    assert headers["Content-Type"] == "message/rfc822"
    assert headers["Content-Disposition"] == 'attachment; filename="message-1.eml"'
    parsed = email.message_from_bytes(body, policy=policy.default)
    assert parsed["Subject"] == "Grüße: new lead"
    assert parsed["To"] == "Shop Owner <owner@shop.example>"
    assert parsed["X-Operation-Id"] == "op-eml"
    assert parsed.get_body(("html",)).get_content().strip() == make_message()["content"]["html"]


@pytest.mark.parametrize(
    "path", ["/messages/2", "/messages/0", "/messages/abc", "/messages/2/html", "/messages/9.eml"]
)
def test_unknown_message_is_404(service: LocalEmailService, client: EmailClient, path: str) -> None:
    send(client, make_message(), "op-only")

    status, headers, body = http_get(service.endpoint + path)

    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "There is no message at" in _Page(body.decode()).text


def test_message_without_html_part_has_no_frame(
    service: LocalEmailService, client: EmailClient
) -> None:
    send(client, make_message(html=None), "op-text")

    message = page(service, "/messages/1")
    status, _, _ = http_get(f"{service.endpoint}/messages/1/html")

    assert message.tags("iframe") == []
    assert "This message has no HTML part." in message.text
    assert status == 404


def test_pages_need_no_signature_and_leave_faults_for_the_api(
    service: LocalEmailService, client: EmailClient
) -> None:
    service.fail_next(503)

    assert "The next ACS request answers 503 Service Unavailable." in page(service).text
    with pytest.raises(HttpResponseError) as excinfo:
        client.begin_send(make_message(), operation_id="op-503")
    status, _, payload = raw_request(service, "GET", "/emails/operations/op-503")

    assert excinfo.value.status_code == 503  # the page views did not use up the fault
    assert (status, payload["error"]["code"]) == (401, "Denied")  # the API still wants HMAC
    assert http_get(f"{service.endpoint}/faults")[0] == 405


def test_fault_form_makes_the_next_sdk_send_fail_then_succeed(
    service: LocalEmailService, client: EmailClient
) -> None:
    status, headers, _ = post_form(
        service, {"action": "next", "status": "429", "count": "1", "retry_after": "2"}
    )
    assert (status, headers["Location"]) == (303, "/")
    assert (
        "The next ACS request answers 429 Too Many Requests (Retry-After: 2 s)."
        in page(service).text
    )

    with pytest.raises(HttpResponseError) as excinfo:
        client.begin_send(make_message(), operation_id="op-throttled")
    assert excinfo.value.status_code == 429
    assert excinfo.value.response is not None
    assert excinfo.value.response.headers["Retry-After"] == "2"
    send(client, make_message(), "op-throttled")

    assert service.send_attempts == [("op-throttled", 429), ("op-throttled", 202)]
    assert [m.operation_id for m in service.messages] == ["op-throttled"]
    assert "No faults" in page(service).text


def test_outage_and_clear_forms(service: LocalEmailService, client: EmailClient) -> None:
    own_origin = {"Origin": service.endpoint, "Referer": service.inbox_url}
    assert post_form(service, {"action": "outage", "status": "503"}, own_origin)[0] == 303
    assert "Outage: every ACS request answers 503 Service Unavailable" in page(service).text
    for _ in range(2):
        with pytest.raises(HttpResponseError) as excinfo:
            client.begin_send(make_message(), operation_id="op-down")
        assert excinfo.value.status_code == 503

    assert post_form(service, {"action": "clear"}, own_origin)[0] == 303
    send(client, make_message(), "op-up")

    assert [m.operation_id for m in service.messages] == ["op-up"]


@pytest.mark.parametrize(
    ("fields", "content_type"),
    [
        pytest.param({"action": "next", "status": "200", "count": "1"}, None, id="status-200"),
        pytest.param({"action": "next", "status": "404", "count": "1"}, None, id="status-404"),
        pytest.param({"action": "next", "status": "abc", "count": "1"}, None, id="status-abc"),
        pytest.param({"action": "next", "status": "429", "count": "0"}, None, id="count-0"),
        pytest.param({"action": "next", "status": "429", "count": "101"}, None, id="count-101"),
        pytest.param({"action": "next", "status": "429", "count": "+5"}, None, id="count-plus"),
        pytest.param({"action": "next", "status": "429", "count": "٣"}, None, id="count-arabic"),
        pytest.param({"action": "next", "status": "429"}, None, id="count-missing"),
        pytest.param(
            {"action": "next", "status": "429", "count": "1", "retry_after": "-1"},
            None,
            id="retry-after-negative",
        ),
        pytest.param({"action": "outage", "status": "503", "count": "1"}, None, id="extra-field"),
        pytest.param({"action": "explode"}, None, id="unknown-action"),
        pytest.param({"status": "503"}, None, id="no-action"),
        pytest.param([("action", "clear"), ("action", "next")], None, id="repeated-field"),
        pytest.param(b"action=next&status=429&count=%FF", None, id="not-utf8"),
        pytest.param(b"action=outage&status=503", "application/json", id="content-type"),
        pytest.param(b"", None, id="empty"),
    ],
)
def test_bad_fault_form_is_400_and_changes_nothing(
    service: LocalEmailService, fields: Any, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else None

    status, response_headers, body = post_form(service, fields, headers)

    assert status == 400
    assert response_headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body.strip()
    assert "No faults" in page(service).text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},
        {"Referer": "http://evil.example/inbox"},
        {"Origin": "http://127.0.0.1:{port}", "Referer": "https://evil.example/"},
    ],
    ids=["other-site", "opaque", "other-port", "referer", "own-origin-foreign-referer"],
)
def test_foreign_origin_is_refused(service: LocalEmailService, headers: dict[str, str]) -> None:
    port = str(urlsplit(service.endpoint).port)
    headers = {name: value.replace("{port}", port) for name, value in headers.items()}

    status, _, body = post_form(service, {"action": "outage", "status": "503"}, headers)

    assert status == 403
    assert body.startswith(b"Refused")
    assert "No faults" in page(service).text


@pytest.mark.parametrize("path", ["/", "/messages/1", "/messages/1/html", "/faults"])
def test_pages_refuse_a_foreign_host_name(service: LocalEmailService, path: str) -> None:
    """DNS rebinding: a site whose name resolves to 127.0.0.1 sends its own Host header."""
    port = urlsplit(service.endpoint).port
    request = urllib.request.Request(
        f"{service.endpoint}{path}", headers={"Host": f"evil.example:{port}"}
    )
    try:
        urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as error:
        with error:
            assert (error.code, error.read()[:7]) == (403, b"Refused")
    else:
        pytest.fail("a foreign Host header was served")
    assert page(service).text  # its own name still works


def test_own_origin_by_name_is_accepted(service: LocalEmailService) -> None:
    port = urlsplit(service.endpoint).port
    headers = {"Origin": f"http://localhost:{port}", "Referer": f"http://localhost:{port}/"}

    status, _, _ = post_form(service, {"action": "next", "status": "500", "count": "2"}, headers)

    assert status == 303
    assert "The next 2 ACS requests answer 500 Internal Server Error." in page(service).text


# --------------------------------------------------------------------------- CLI


def test_cli_parser_accepts_fail_next_and_the_service_starts_failing() -> None:
    args = _parser().parse_args(["--port", "0", "--fail-next", "429x3", "--retry-after", "5"])
    assert (args.fail_next, args.retry_after, args.outage) == ((429, 3), 5, None)
    assert _parser().parse_args(["--fail-next", "503"]).fail_next == (503, 1)
    assert _parser().parse_args(["--outage", "503"]).outage == 503

    with _service_from_args(args) as svc, make_client(svc) as email_client:
        codes = []
        for _ in range(3):
            with pytest.raises(HttpResponseError) as excinfo:
                email_client.begin_send(make_message(), operation_id="op-cli")
            codes.append(excinfo.value.status_code)
        send(email_client, make_message(), "op-cli")

    assert codes == [429, 429, 429]
    assert svc.send_attempts == [("op-cli", 429)] * 3 + [("op-cli", 202)]


@pytest.mark.parametrize(
    "argv",
    [
        ["--fail-next", "429x0"],
        ["--fail-next", "429x101"],
        ["--fail-next", "200"],
        ["--fail-next", "x3"],
        ["--outage", "abc"],
        ["--retry-after", "-1", "--outage", "503"],
        ["--fail-next", "429", "--outage", "503"],
        ["--retry-after", "5"],
    ],
)
def test_cli_rejects_bad_fault_flags(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)

    assert excinfo.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_help_lists_the_fault_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])

    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m shared.local_email")
    for flag in ["--fail-next STATUS[xCOUNT]", "--outage STATUS", "--retry-after SECONDS"]:
        assert flag in out


def test_cli_prints_the_inbox_url_and_serves_it() -> None:
    command = [sys.executable, "-m", "shared.local_email", "--port", "0", "--outage", "503"]
    lines: queue.Queue[str | None] = queue.Queue()  # stdout and stderr; None at the end
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        output = process.stdout
        assert output is not None

        def read_lines() -> None:
            for line in output:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        printed: list[str] = []
        try:
            while not printed or not printed[-1].startswith("Fault:"):
                line = lines.get(timeout=30)
                assert line is not None, f"the CLI exited early: {''.join(printed)}"
                printed.append(line)
            endpoint = printed[0].removeprefix("ACS email endpoint: ").strip()
            status, _, body = http_get(f"{endpoint}/")
        finally:
            process.terminate()  # SIGTERM: the CLI stops cleanly
            process.wait(timeout=30)
            reader.join(timeout=30)
    rest = list(iter(lines.get_nowait, None))

    assert printed == [
        f"ACS email endpoint: {endpoint}\n",
        f"ACS_CONNECTION_STRING=endpoint={endpoint}/;accesskey={DEV_ACCESS_KEY}\n",
        f"Inbox: {endpoint}/\n",
        "Fault: Outage: every ACS request answers 503 Service Unavailable until cleared.\n",
    ]
    assert endpoint.startswith("http://127.0.0.1:")
    assert status == 200 and b"Outage: every ACS request answers 503" in body
    assert (process.returncode, rest) == (0, ["0 message(s) received\n"])
