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

Standard library only, so it can run anywhere the app's tests run.  For ``func start``,
run it on its own: ``python -m shared.local_email --port 10025`` (the key defaults to the one
in ``local.settings.sample.json``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
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
    """What the handler writes back: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


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
        payload = json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
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
        """Forget messages, attempts and operations (file numbering keeps counting)."""
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


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C, for running the app under ``func start`` without Azure."""
    parser = argparse.ArgumentParser(description="Local ACS Email endpoint (for development).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--access-key", default=DEV_ACCESS_KEY, help="base64 access key")
    parser.add_argument(
        "--out", type=pathlib.Path, default=None, help="write each mail as .eml/.html here"
    )
    args = parser.parse_args(argv)
    service = LocalEmailService(
        access_key=args.access_key, host=args.host, port=args.port, out_dir=args.out
    )
    with service:
        print(f"ACS email endpoint: {service.endpoint}", flush=True)
        print(f"ACS_CONNECTION_STRING={service.connection_string}", flush=True)
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())  # `kill` stops cleanly too
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
        print(f"{len(service.messages)} message(s) received", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
