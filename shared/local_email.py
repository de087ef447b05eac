"""A local HTTP endpoint that speaks the Azure Communication Services (ACS) Email REST API.

Why: tests and the local demo must drive the real ``azure.communication.email.EmailClient``
(HMAC request signing, long-running-operation polling, retry policy) without an Azure
resource and without delivering real mail.  The emulator is deliberately stricter than
needed: it verifies every signature, validates message bodies the way ACS does, rejects
CR/LF in the subject and never de-duplicates by ``Operation-Id``, so a test can prove the
app under test never posts the same alert twice.

Build the client from the endpoint and key (``EmailClient.from_connection_string`` forces
``https://`` and cannot reach this plain-HTTP server)::

    with LocalEmailService() as service:
        client = EmailClient(service.endpoint, AzureKeyCredential(service.access_key))
        client.begin_send(message, polling_interval=0.01).result()
        assert service.messages[0].subject == "..."

The API side uses the standard library only; the inbox pages use Jinja2 (an app dependency).
For ``func start``, run it on its own: ``python -m shared.local_email --port 10025`` (the key
defaults to the one in ``local.settings.sample.json``).

The same server also answers a browser, on paths that are not ACS API paths and need no
signature: ``GET /`` lists the received mail newest first with the current fault state and
forms to inject faults (``POST /faults``); ``GET /messages/<n>`` shows message ``n`` (1-based,
in arrival order since start or the last clear()) as a recipient would see it, its HTML body
in a sandboxed frame from ``/messages/<n>/html``; ``/messages/<n>.eml`` downloads it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import json
import pathlib
import re
import secrets
import signal
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy as email_policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jinja2

__all__ = ["DEFAULT_PORT", "DEV_ACCESS_KEY", "LocalEmailService", "ReceivedEmail", "main"]

SEND_PATH = "/emails:send"
OPERATIONS_PREFIX = "/emails/operations/"
#: Port of `python -m shared.local_email`, as in local.settings.sample.json.
DEFAULT_PORT = 10025
DEV_ACCESS_KEY = base64.b64encode(b"local-email-key-for-development-only").decode("ascii")
"""The CLI's default key: the one in ``local.settings.sample.json``. Never a real secret."""
MAX_CLOCK_SKEW = timedelta(minutes=15)
"""ACS rejects requests whose ``x-ms-date`` is further than this from the server clock."""

_REQUIRED_SIGNED_HEADERS = frozenset({"x-ms-date", "host", "x-ms-content-sha256"})
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' (RFC 5322 field-name)
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_SEQUENCE_PREFIX = re.compile(r"^(\d+)-")

# -- inbox pages: paths that are not ACS API paths, for a browser; no signature
INBOX_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""CSP of the inbox and message pages: no script, no outside resource, only our own frames."""
MESSAGE_HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)
"""CSP of ``/messages/<n>/html``, the mail's HTML as sent: it may style itself, nothing more."""
FAULT_STATUSES = (429, 503, 500)
"""Statuses the inbox's fault forms offer (the API and the CLI take any 4xx/5xx)."""
MAX_FAULT_COUNT = 100
MAX_RETRY_AFTER = 3600
_INBOX_TEMPLATES = pathlib.Path(__file__).with_name("templates") / "inbox"
_MESSAGE_PATH = re.compile(r"^/messages/([0-9]{1,9})(/html|\.eml)?$")
_DIGITS = re.compile(r"^[0-9]{1,9}$")  # ASCII only: int() also takes " 5", "+5", "1_0", "٥"
_FAIL_NEXT_ARG = re.compile(r"^([0-9]{3})(?:[xX]([0-9]{1,9}))?$")
_MAX_FORM_BYTES = 4096
_FORM_FIELDS = {
    "next": {"action", "status", "count", "retry_after"},
    "outage": {"action", "status", "retry_after"},
    "clear": {"action"},
}
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
# Headers the .eml writer sets itself; custom headers must not clobber MIME structure.
_RESERVED_EML_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version"}
)


@dataclass(frozen=True)
class ReceivedEmail:
    """One accepted ``POST /emails:send``, flattened so tests can assert on it directly."""

    operation_id: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    plain_text: str
    html: str
    reply_to: tuple[str, ...]
    headers: dict[str, str]
    received_at: datetime
    raw: dict[str, Any]


@dataclass(frozen=True)
class _Fault:
    """An injected failure: lets tests exercise the app's (and the SDK's) error handling."""

    status: int
    retry_after: int | None


@dataclass(frozen=True)
class _Reply:
    """What the handler writes back: status, a JSON object (API) or bytes (pages), headers."""

    status: int
    body: dict[str, Any] | bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode("utf-8")


class _ApiError(Exception):
    """Raised inside request handling; becomes an ACS-style ``{"error": {...}}`` reply."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = headers or {}

    def reply(self) -> _Reply:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        return _Reply(self.status, {"error": error}, dict(self.headers))


def _error_code(status: int) -> str:
    """ACS-style error code for an HTTP status ("ServiceUnavailable", "Denied", ...)."""
    if status == HTTPStatus.UNAUTHORIZED:
        return "Denied"
    try:
        return HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        return f"Http{status}"


def _content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def _bad_request(message: str, target: str) -> _ApiError:
    return _ApiError(400, "BadRequest", message, target=target)


def _has_crlf(value: str) -> bool:
    return "\r" in value or "\n" in value


def _check_addresses(value: Any, target: str, *, required: bool) -> None:
    """Validate a list of ``{"address": ..., "displayName": ...}`` like ACS does."""
    if value is None:
        if required:
            raise _bad_request(f"'{target}' is required and must contain at least one.", target)
        return
    if not isinstance(value, list) or (required and not value):
        raise _bad_request(f"'{target}' must be a non-empty list of addresses.", target)
    for index, item in enumerate(value):
        where = f"{target}[{index}]"
        if not isinstance(item, dict):
            raise _bad_request(f"'{where}' must be an object with an 'address'.", where)
        address = item.get("address")
        if not isinstance(address, str) or "@" not in address or _has_crlf(address):
            raise _bad_request(f"'{where}.address' is not a valid email address.", where)
        display_name = item.get("displayName")
        if display_name is not None and (
            not isinstance(display_name, str) or _has_crlf(display_name)
        ):
            raise _bad_request(f"'{where}.displayName' must be a single-line string.", where)


def _validate_message(raw: Any) -> None:
    """Reject bodies ACS would reject (400), plus CR/LF in the subject or custom headers."""
    if not isinstance(raw, dict):
        raise _bad_request("The request body must be a JSON object.", "body")
    sender = raw.get("senderAddress")
    if not isinstance(sender, str) or "@" not in sender or _has_crlf(sender):
        raise _bad_request("'senderAddress' is required and must be an address.", "senderAddress")
    recipients = raw.get("recipients")
    if not isinstance(recipients, dict):
        raise _bad_request("'recipients' is required.", "recipients")
    _check_addresses(recipients.get("to"), "recipients.to", required=True)
    _check_addresses(recipients.get("cc"), "recipients.cc", required=False)
    _check_addresses(recipients.get("bcc"), "recipients.bcc", required=False)
    _check_addresses(raw.get("replyTo"), "replyTo", required=False)
    content = raw.get("content")
    if not isinstance(content, dict):
        raise _bad_request("'content' is required.", "content")
    subject = content.get("subject")
    if not isinstance(subject, str) or not subject:
        raise _bad_request("'content.subject' is required.", "content.subject")
    if _has_crlf(subject):
        raise _bad_request("'content.subject' must not contain CR or LF.", "content.subject")
    bodies = [content.get("plainText"), content.get("html")]
    if any(part is not None and not isinstance(part, str) for part in bodies):
        raise _bad_request("'content.plainText' and 'content.html' must be strings.", "content")
    if not any(bodies):
        raise _bad_request("One of 'content.plainText' or 'content.html' is required.", "content")
    headers = raw.get("headers")
    if headers is None:
        return
    if not isinstance(headers, dict):
        raise _bad_request("'headers' must be an object of strings.", "headers")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or not isinstance(value, str) or _has_crlf(value):
            raise _bad_request(f"Custom header {name!r} is not a valid header.", "headers")


def _addresses(items: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(item["address"] for item in items or ())


def _mailbox(item: dict[str, Any]) -> Address | str:
    """An address for a header; falls back to plain text for addresses ``email`` won't parse."""
    name = item.get("displayName") or ""
    try:
        return Address(display_name=name, addr_spec=item["address"])
    except (ValueError, IndexError, HeaderParseError):
        return formataddr((name, item["address"]))


def _mailboxes(items: list[dict[str, Any]] | None) -> list[Address | str]:
    return [_mailbox(item) for item in items or ()]


def _set_address_header(msg: EmailMessage, name: str, items: list[dict[str, Any]] | None) -> None:
    mailboxes = _mailboxes(items)
    if not mailboxes:
        return
    if all(isinstance(box, Address) for box in mailboxes):
        msg[name] = mailboxes
    else:
        msg[name] = ", ".join(str(box) for box in mailboxes)


def _build_eml(email: ReceivedEmail) -> EmailMessage:
    """A multipart/alternative message a mail client can open, for the local demo."""
    raw = email.raw
    recipients = raw["recipients"]
    msg = EmailMessage()
    msg["From"] = _mailbox({"address": email.sender})
    _set_address_header(msg, "To", recipients.get("to"))
    _set_address_header(msg, "Cc", recipients.get("cc"))
    _set_address_header(msg, "Reply-To", raw.get("replyTo"))
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(email.received_at)
    msg["Message-ID"] = make_msgid(domain="local-email-service.invalid")
    msg["X-Operation-Id"] = email.operation_id
    for name, value in email.headers.items():
        lowered = name.lower()
        if lowered in _RESERVED_EML_HEADERS or lowered.startswith("content-") or name in msg:
            continue
        msg[name] = value
    if email.plain_text:
        msg.set_content(email.plain_text)
        if email.html:
            msg.add_alternative(email.html, subtype="html")
    else:
        msg.set_content(email.html, subtype="html")
    return msg


# -- inbox pages -----------------------------------------------------------------------------


class _FormError(ValueError):
    """Bad input to ``POST /faults``; the message is answered as a plain-text 400."""


@functools.cache
def _page_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_INBOX_TEMPLATES),
        autoescape=True,  # every template, whatever its name: message fields are hostile
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _utf8(text: str) -> bytes:
    # A JSON body can carry lone surrogates ("\ud800"), which strict UTF-8 cannot encode.
    return text.encode("utf-8", "replace")


def _page(status: int, template: str, **context: Any) -> _Reply:
    html = _page_templates().get_template(template).render(**context)
    headers = {
        "Content-Security-Policy": INBOX_PAGE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    return _Reply(status, _utf8(html), headers, _HTML)


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> _Reply:
    extra = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", **(headers or {})}
    return _Reply(status, _utf8(message + "\n"), extra, _TEXT)


def _method_not_allowed(allowed: str) -> _Reply:
    return _text(405, f"Method not allowed here; use {allowed}.", {"Allow": allowed})


def _status_label(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _fault_label(fault: _Fault) -> str:
    label = _status_label(fault.status)
    if fault.retry_after is not None:
        label += f" (Retry-After: {fault.retry_after} s)"
    return label


def _describe_faults(outage: _Fault | None, queued: list[_Fault]) -> list[str]:
    """The fault state in words, one line each; empty when every request is served normally."""
    lines = []
    if outage is not None:
        lines.append(f"Outage: every ACS request answers {_fault_label(outage)} until cleared.")
    runs: list[tuple[_Fault, int]] = []
    for fault in queued:
        if runs and runs[-1][0] == fault:
            runs[-1] = (fault, runs[-1][1] + 1)
        else:
            runs.append((fault, 1))
    for index, (fault, count) in enumerate(runs):
        if index:
            who = f"Then {count} more answer" if count > 1 else "Then 1 more answers"
        elif count > 1:
            who = f"The next {count} ACS requests answer"
        else:
            who = "The next ACS request answers"
        queued_note = (
            " (behind the outage; clearing drops it too)"
            if outage is not None and not index
            else ""
        )
        lines.append(f"{who} {_fault_label(fault)}{queued_note}.")
    return lines


def _shown_addresses(items: list[dict[str, Any]] | None) -> list[str]:
    """``Name <address>`` as a mail client shows it (the page escapes it)."""
    shown = []
    for item in items or ():
        name = item.get("displayName")
        shown.append(f"{name} <{item['address']}>" if name else item["address"])
    return shown


def _form_number(form: dict[str, str], name: str, low: int, high: int) -> int:
    text = form.get(name, "").strip()
    if not _DIGITS.match(text) or not low <= int(text) <= high:
        shown = f"{text[:20]!r}" if text else "missing"
        raise _FormError(f"{name} must be a whole number from {low} to {high} ({shown}).")
    return int(text)


def _parse_fault_form(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded body, each given once."""
    content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _FormError("Send the form as application/x-www-form-urlencoded.")
    if len(body) > _MAX_FORM_BYTES:
        raise _FormError("The form is too large.")
    try:
        fields = parse_qs(
            body.decode("ascii"),
            keep_blank_values=True,
            max_num_fields=len(_FORM_FIELDS["next"]),
            encoding="utf-8",
            errors="strict",
        )
    except ValueError:  # not ASCII, bad percent-encoding, too many fields
        raise _FormError("The form is not valid URL-encoded data.") from None
    form = {}
    for name, values in fields.items():
        if len(values) != 1:
            raise _FormError(f"The field {name[:20]!r} is given more than once.")
        form[name] = values[0]
    return form


class _Server(ThreadingHTTPServer):
    """Threaded server that joins in-flight handlers on close, so stop() leaves nothing behind."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], service: LocalEmailService) -> None:
        super().__init__(address, _Handler)
        self.service = service


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the service decide, writes a JSON reply."""

    server: _Server
    server_version = "LocalEmailService/1.0"
    timeout = 10  # a stalled client must not block stop() forever

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log; test output stays readable."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            reply = _ApiError(400, "BadRequest", "Malformed request body framing.").reply()
        else:
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                reply = self.server.service._handle(self.command, self.path, headers, body)
            except Exception as exc:
                message = f"Emulator error: {type(exc).__name__}: {exc}"
                reply = _ApiError(500, "InternalServerError", message).reply()
        payload = reply.payload()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class LocalEmailService:
    """Context manager; start() binds 127.0.0.1 on a free port (port=0) unless one is given."""

    def __init__(
        self,
        *,
        access_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        out_dir: pathlib.Path | None = None,
    ) -> None:
        if access_key is None:
            access_key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        try:
            self._secret = base64.b64decode(access_key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("access_key must be base64, like an ACS access key") from exc
        self._access_key = access_key
        self._host = host
        self._port = port
        self._out_dir = pathlib.Path(out_dir) if out_dir is not None else None
        self._lock = threading.Lock()
        self._messages: list[ReceivedEmail] = []
        self._attempts: list[tuple[str, int]] = []
        self._operations: dict[str, str] = {}
        self._faults: deque[_Fault] = deque()
        self._outage: _Fault | None = None
        self._file_sequence = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            raise RuntimeError("LocalEmailService is already running")
        if self._out_dir is not None:
            self._out_dir.mkdir(parents=True, exist_ok=True)
            self._file_sequence = self._highest_existing_sequence()
        server = _Server((self._host, self._port), self)
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to this long
            name=f"LocalEmailService:{self._port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the server thread (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connection details ----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """Base URL for ``EmailClient(endpoint, AzureKeyCredential(access_key))``."""
        if not self._port:
            raise RuntimeError("start() the service first: the port is chosen when binding")
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self._port}"

    @property
    def inbox_url(self) -> str:
        """The inbox page, for a browser: ``endpoint`` + ``/``."""
        return f"{self.endpoint}/"

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def connection_string(self) -> str:
        """ACS-format connection string, for app settings that expect one."""
        return f"endpoint={self.endpoint}/;accesskey={self._access_key}"

    # -- inspection ------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedEmail]:
        """Snapshot of accepted messages, in arrival order."""
        with self._lock:
            return list(self._messages)

    @property
    def send_attempts(self) -> list[tuple[str, int]]:
        """(operation id, status answered) for every POST /emails:send, rejected ones too."""
        with self._lock:
            return list(self._attempts)

    def operation_status(self, operation_id: str) -> str | None:
        with self._lock:
            return self._operations.get(operation_id)

    def clear(self) -> None:
        """Forget messages, attempts and operations (file numbering keeps counting; the
        inbox's ``/messages/<n>`` numbering starts again at 1)."""
        with self._lock:
            self._messages.clear()
            self._attempts.clear()
            self._operations.clear()

    # -- fault injection -------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, *, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests (POST or GET) with ``status``."""
        fault = self._make_fault(status, retry_after)
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._faults.extend([fault] * count)

    def set_outage(self, status: int = 503, *, retry_after: int | None = None) -> None:
        """Fail every API request with ``status`` until clear_outage()."""
        fault = self._make_fault(status, retry_after)
        with self._lock:
            self._outage = fault

    def clear_outage(self) -> None:
        """End the outage and forget failures still queued by fail_next()."""
        with self._lock:
            self._outage = None
            self._faults.clear()

    @staticmethod
    def _make_fault(status: int, retry_after: int | None) -> _Fault:
        if not 400 <= status <= 599:
            raise ValueError("an injected failure needs a 4xx or 5xx status")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        return _Fault(status, retry_after)

    def _fault_lines(self) -> list[str]:
        """The fault state in words (see _describe_faults)."""
        with self._lock:
            return _describe_faults(self._outage, list(self._faults))

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if self._outage is not None:
                return self._outage
            return self._faults.popleft() if self._faults else None

    # -- request handling (called from handler threads) ------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Route one request; ``headers`` has lower-cased names."""
        path = urlsplit(target).path
        is_send = path == SEND_PATH
        is_operation = path.startswith(OPERATIONS_PREFIX)
        if not (is_send and method == "POST") and not (is_operation and method == "GET"):
            if not (is_send or is_operation):
                page = self._inbox_route(method, path, headers, body)
                if page is not None:
                    return page
            return _ApiError(404, "NotFound", f"No route for {method} {path}.").reply()
        if is_send:
            operation_id = headers.get("operation-id") or str(uuid.uuid4())
            reply = self._send(operation_id, target, headers, body)
            with self._lock:
                self._attempts.append((operation_id, reply.status))
            return reply
        return self._get_operation(target, headers, body)

    def _common_checks(self, method: str, target: str, headers: dict[str, str], body: bytes) -> str:
        """Injected faults, then signature, then api-version; returns the api-version."""
        fault = self._take_fault()
        if fault is not None:
            extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            raise _ApiError(
                fault.status,
                _error_code(fault.status),
                "Injected failure (LocalEmailService).",
                headers=extra,
            )
        self._verify_signature(method, target, headers, body)
        api_version = parse_qs(urlsplit(target).query).get("api-version", [""])[0]
        if not api_version:
            raise _ApiError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter is required.",
                target="api-version",
            )
        return api_version

    def _send(self, operation_id: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        try:
            api_version = self._common_checks("POST", target, headers, body)
            try:
                raw = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise _bad_request("The request body is not valid JSON.", "body") from None
            _validate_message(raw)
        except _ApiError as error:
            return error.reply()
        self._accept(operation_id, raw)
        base = f"http://{headers['host']}" if headers.get("host") else self.endpoint
        location = (
            f"{base}{OPERATIONS_PREFIX}{quote(operation_id, safe='')}"
            f"?api-version={quote(api_version, safe='')}"
        )
        # No Retry-After: azure-core treats "0" as absent anyway, and the first status poll
        # (sent without delay) already reports Succeeded, so the SDK never sleeps.
        return _Reply(
            202,
            {"id": operation_id, "status": "Running", "error": None},
            {"Operation-Location": location, "operation-id": operation_id},
        )

    def _get_operation(self, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        try:
            self._common_checks("GET", target, headers, body)
        except _ApiError as error:
            return error.reply()
        operation_id = unquote(urlsplit(target).path[len(OPERATIONS_PREFIX) :])
        status = self.operation_status(operation_id) if operation_id else None
        if status is None:
            message = f"Operation {operation_id!r} was not found."
            return _ApiError(404, "NotFound", message, target="operationId").reply()
        return _Reply(200, {"id": operation_id, "status": status, "error": None})

    def _verify_signature(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> None:
        """Recompute the HMAC-SHA256 signature the SDK's HMACCredentialsPolicy produces."""
        scheme, _, params = headers.get("authorization", "").partition(" ")
        if scheme != "HMAC-SHA256":
            raise _ApiError(401, "Denied", "Missing or unsupported Authorization header.")
        fields = dict(part.partition("=")[::2] for part in params.split("&"))
        signed_names = [name.strip().lower() for name in fields.get("SignedHeaders", "").split(";")]
        signature = fields.get("Signature", "")
        if not set(signed_names) >= _REQUIRED_SIGNED_HEADERS or not signature:
            raise _ApiError(
                401, "Denied", "SignedHeaders must cover x-ms-date;host;x-ms-content-sha256."
            )
        values = [headers.get(name) for name in signed_names]
        if any(value is None for value in values):
            raise _ApiError(401, "Denied", "A signed header is missing from the request.")
        if headers["x-ms-content-sha256"] != _content_hash(body):
            raise _ApiError(401, "Denied", "x-ms-content-sha256 does not match the body.")
        try:
            signed_at = parsedate_to_datetime(headers["x-ms-date"])
        except (TypeError, ValueError):
            raise _ApiError(401, "Denied", "x-ms-date is not a valid HTTP date.") from None
        if signed_at.tzinfo is None:
            signed_at = signed_at.replace(tzinfo=timezone.utc)
        if abs(datetime.now(timezone.utc) - signed_at) > MAX_CLOCK_SKEW:
            raise _ApiError(401, "Denied", "x-ms-date is more than 15 minutes off.")
        string_to_sign = f"{method}\n{target}\n{';'.join(str(value) for value in values)}"
        expected = base64.b64encode(
            hmac.new(self._secret, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        ).decode("ascii")
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8")):
            raise _ApiError(401, "Denied", "The request signature does not match.")

    def _accept(self, operation_id: str, raw: dict[str, Any]) -> None:
        recipients = raw["recipients"]
        content = raw["content"]
        email = ReceivedEmail(
            operation_id=operation_id,
            sender=raw["senderAddress"],
            to=_addresses(recipients.get("to")),
            cc=_addresses(recipients.get("cc")),
            bcc=_addresses(recipients.get("bcc")),
            subject=content["subject"],
            plain_text=content.get("plainText") or "",
            html=content.get("html") or "",
            reply_to=_addresses(raw.get("replyTo")),
            headers=dict(raw.get("headers") or {}),
            received_at=datetime.now(timezone.utc),
            raw=raw,
        )
        with self._lock:
            # Deliberately no de-duplication by operation id: every POST counts.
            self._messages.append(email)
            self._operations[operation_id] = "Succeeded"
            if self._out_dir is not None:
                self._file_sequence += 1
                self._write_files(self._file_sequence, email)

    # -- inbox pages (called from handler threads) ----------------------------------------

    def _inbox_route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> _Reply | None:
        """The browser's pages; None for a path that is not one (an API-style 404 follows)."""
        is_page = path in ("/", "/faults") or path.startswith("/messages/")
        if is_page and headers.get("host", "").strip().lower() not in self._own_hosts():
            # A page of another site whose name now resolves to 127.0.0.1 (DNS rebinding)
            # would send its own name: it must not read the mail or change the faults.
            return _text(403, "Refused: the Host header does not name this server.")
        if path == "/faults":
            return (
                self._post_faults(headers, body)
                if method == "POST"
                else _method_not_allowed("POST")
            )
        if path != "/" and not path.startswith("/messages/"):
            return None
        if method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        if path == "/":
            return self._inbox_page()
        match = _MESSAGE_PATH.match(path)
        number = int(match.group(1)) if match else 0
        with self._lock:
            found = self._messages[number - 1] if 0 < number <= len(self._messages) else None
        if match is None or found is None:
            return _page(404, "not_found.html", endpoint=self.endpoint, path=path)
        view = match.group(2)
        if view == "/html":
            return self._message_html(number, found)
        if view == ".eml":
            eml = _build_eml(found).as_bytes(policy=email_policy.SMTP)
            disposition = f'attachment; filename="message-{number}.eml"'
            return _Reply(200, eml, {"Content-Disposition": disposition}, "message/rfc822")
        return _page(
            200,
            "message.html",
            endpoint=self.endpoint,
            number=number,
            message=found,
            sender=found.sender,
            to=_shown_addresses(found.raw["recipients"].get("to")),
            cc=_shown_addresses(found.raw["recipients"].get("cc")),
            reply_to=_shown_addresses(found.raw.get("replyTo")),
            date=found.received_at.strftime("%a, %d %b %Y %H:%M:%S UTC"),
        )

    def _inbox_page(self) -> _Reply:
        with self._lock:  # one snapshot: the list and the fault state agree
            messages = list(self._messages)
            faults = _describe_faults(self._outage, list(self._faults))
        rows = [
            {
                "number": number,
                "received": email.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                "to": ", ".join(email.to),
                "cc": ", ".join(email.cc),
                "subject": email.subject,
            }
            for number, email in reversed(list(enumerate(messages, start=1)))
        ]
        return _page(
            200,
            "inbox.html",
            endpoint=self.endpoint,
            rows=rows,
            faults=faults,
            statuses=[(status, _status_label(status)) for status in FAULT_STATUSES],
            max_count=MAX_FAULT_COUNT,
            max_retry_after=MAX_RETRY_AFTER,
        )

    @staticmethod
    def _message_html(number: int, email: ReceivedEmail) -> _Reply:
        if not email.html:
            return _text(404, f"Message {number} has no HTML part.")
        headers = {
            "Content-Security-Policy": MESSAGE_HTML_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        return _Reply(200, _utf8(email.html), headers, _HTML)

    def _own_hosts(self) -> set[str]:
        hosts = {"127.0.0.1", "localhost"}
        if self._host not in ("", "0.0.0.0"):
            hosts.add(self._host.lower())
        return {f"{host}:{self._port}" for host in hosts}

    def _own_origins(self) -> set[str]:
        return {f"http://{host}" for host in self._own_hosts()}

    def _foreign_origin(self, headers: dict[str, str]) -> str | None:
        """Why a POST comes from another site (a small CSRF guard), or None if it does not."""
        own = self._own_origins()
        origin = headers.get("origin")
        if origin is not None and origin.strip().lower() not in own:
            return f"Refused: Origin {origin[:100]!r} is not this server ({self.endpoint})."
        referer = headers.get("referer")
        if referer is not None:
            parts = urlsplit(referer.strip())
            if f"{parts.scheme}://{parts.netloc}".lower() not in own:
                return f"Refused: Referer {referer[:100]!r} is not this server ({self.endpoint})."
        return None

    def _post_faults(self, headers: dict[str, str], body: bytes) -> _Reply:
        refusal = self._foreign_origin(headers)
        if refusal is not None:
            return _text(403, refusal)
        try:
            form = _parse_fault_form(headers, body)
            action = form.get("action", "")
            if action not in _FORM_FIELDS:
                raise _FormError("action must be next, outage or clear.")
            unexpected = sorted(set(form) - _FORM_FIELDS[action])
            if unexpected:
                names = ", ".join(repr(name[:20]) for name in unexpected[:4])
                raise _FormError(f"Unexpected field(s) for action {action}: {names}.")
            if action == "clear":
                self.clear_outage()
            else:
                status_text = form.get("status", "").strip()
                if status_text not in {str(code) for code in FAULT_STATUSES}:
                    choices = ", ".join(str(code) for code in FAULT_STATUSES)
                    shown = f"{status_text[:20]!r}" if status_text else "missing"
                    raise _FormError(f"status must be one of {choices} ({shown}).")
                status = int(status_text)
                retry_after = None
                if form.get("retry_after", "").strip():
                    retry_after = _form_number(form, "retry_after", 0, MAX_RETRY_AFTER)
                if action == "next":
                    count = _form_number(form, "count", 1, MAX_FAULT_COUNT)
                    self.fail_next(status, count, retry_after=retry_after)
                else:
                    self.set_outage(status, retry_after=retry_after)
        except _FormError as error:
            return _text(400, str(error))
        return _Reply(303, b"", {"Location": "/", "Cache-Control": "no-store"}, _TEXT)

    # -- .eml / .html output ---------------------------------------------------------------

    def _highest_existing_sequence(self) -> int:
        """Continue numbering after files from earlier runs instead of overwriting them."""
        assert self._out_dir is not None
        numbers = [
            int(match.group(1))
            for path in self._out_dir.iterdir()
            if (match := _SEQUENCE_PREFIX.match(path.name))
        ]
        return max(numbers, default=0)

    def _write_files(self, sequence: int, email: ReceivedEmail) -> None:
        assert self._out_dir is not None
        stem = f"{sequence:04d}-{_UNSAFE_FILE_CHARS.sub('_', email.operation_id)}"
        eml = _build_eml(email).as_bytes(policy=email_policy.SMTP)
        (self._out_dir / f"{stem}.eml").write_bytes(eml)
        if email.html:
            (self._out_dir / f"{stem}.html").write_text(email.html, encoding="utf-8")


_CLI_DESCRIPTION = """\
A local endpoint that speaks the Azure Communication Services (ACS) email API, for
development: point ACS_CONNECTION_STRING at it and the app's mail lands here instead
of being delivered. Open the inbox URL it prints in a browser to read the mail and to
make the next requests fail (throttling, outages) while you watch the app recover."""

_CLI_EPILOG = """\
examples:
  python -m shared.local_email                        # serve on 127.0.0.1:10025
  python -m shared.local_email --out out/             # also keep every mail as .eml/.html
  python -m shared.local_email --fail-next 429x3 --retry-after 5
  python -m shared.local_email --outage 503           # until "Clear faults" in the inbox

A fault answers the next ACS request, a send (POST /emails:send) or a status poll
(GET /emails/operations/<id>), instead of serving it."""


def _status_arg(text: str) -> int:
    if not _DIGITS.match(text) or not 400 <= int(text) <= 599:
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP error status (400-599)")
    return int(text)


def _fail_next_arg(text: str) -> tuple[int, int]:
    """``STATUS`` or ``STATUSxCOUNT`` (``429x3``) -> (status, count)."""
    match = _FAIL_NEXT_ARG.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not STATUS or STATUSxCOUNT, e.g. 429x3")
    status = _status_arg(match.group(1))
    count = int(match.group(2) or 1)
    if not 1 <= count <= MAX_FAULT_COUNT:
        raise argparse.ArgumentTypeError(f"COUNT must be from 1 to {MAX_FAULT_COUNT}")
    return status, count


def _seconds_arg(text: str) -> int:
    if not _DIGITS.match(text) or int(text) > MAX_RETRY_AFTER:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (0-{MAX_RETRY_AFTER})"
        )
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.local_email",
        description=_CLI_DESCRIPTION,
        epilog=_CLI_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--access-key",
        default=DEV_ACCESS_KEY,
        metavar="KEY",
        help="base64 key requests must be signed with "
        "(default: the development key in local.settings.sample.json)",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        metavar="DIR",
        help="also write each mail to DIR as .eml and .html files",
    )
    faults = parser.add_argument_group(
        "start in a failure mode", "(change or clear it later on the inbox page)"
    )
    mode = faults.add_mutually_exclusive_group()
    mode.add_argument(
        "--fail-next",
        type=_fail_next_arg,
        metavar="STATUS[xCOUNT]",
        help="answer the next COUNT ACS requests (default 1) with STATUS, e.g. 429x3",
    )
    mode.add_argument(
        "--outage",
        type=_status_arg,
        metavar="STATUS",
        help="answer every ACS request with STATUS until cleared, e.g. 503",
    )
    faults.add_argument(
        "--retry-after",
        type=_seconds_arg,
        metavar="SECONDS",
        help="send Retry-After: SECONDS with those failures",
    )
    return parser


def _service_from_args(args: argparse.Namespace) -> LocalEmailService:
    """The service the CLI runs, with the failure mode of the flags already set."""
    service = LocalEmailService(
        access_key=args.access_key, host=args.host, port=args.port, out_dir=args.out
    )
    if args.fail_next is not None:
        status, count = args.fail_next
        service.fail_next(status, count, retry_after=args.retry_after)
    elif args.outage is not None:
        service.set_outage(args.outage, retry_after=args.retry_after)
    return service


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C, for running the app under ``func start`` without Azure."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.retry_after is not None and args.fail_next is None and args.outage is None:
        parser.error("--retry-after needs --fail-next or --outage")
    try:
        service = _service_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    with service:
        print(f"ACS email endpoint: {service.endpoint}", flush=True)
        print(f"ACS_CONNECTION_STRING={service.connection_string}", flush=True)
        print(f"Inbox: {service.inbox_url}", flush=True)
        for line in service._fault_lines():
            print(f"Fault: {line}", flush=True)
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())  # `kill` stops cleanly too
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
        print(f"{len(service.messages)} message(s) received", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
