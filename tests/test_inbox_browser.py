"""The local inbox in a real browser: Debian's headless Chromium loads the pages a developer
(standing in for a sales rep) reads, after real alerts went through the whole pipeline.

Why: that hostile lead data stays text, and that the mail's HTML cannot run anything, is
proven by the DOM a browser builds from the bytes, not by string checks on the HTML; the
screenshots (``out/inbox.png``, ``out/inbox-alert.png``) show the layout works.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from azure.data.tables import TableClient

from shared import sample_leads
from shared.hostdriver import HostDriver
from shared.local_email import LocalEmailService, ReceivedEmail
from shared.normalize import person_name

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"
WINDOW = (1000, 1400)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Dom(HTMLParser):
    """The elements of a serialized DOM, and its text outside <script> and <style>."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self._text: list[str] = []
        self._hidden = 0
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._text.append(data)

    @property
    def text(self) -> str:
        return squash(" ".join(self._text))

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def assert_nothing_injected(self) -> None:
        assert self.tags("script") == []
        assert [attrs for _, attrs in self.elements if "onerror" in attrs] == []
        links = [attrs.get("href") or "" for attrs in self.tags("a")]
        assert [href for href in links if "evil.example" in href] == []


def squash(text: str) -> str:
    return " ".join(text.split())


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its stdout."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "chromium is not installed: run `make test` (it installs it) "
            "or `apt-get install chromium`"
        )
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, timeout=60, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"{' '.join(command)} exited with {result.returncode}; stderr:\n{result.stderr}"
    )
    return result.stdout


def dump_dom(tmp_path: Path, url: str) -> Dom:
    return Dom(chromium(tmp_path, "--dump-dom", url))


def screenshot(tmp_path: Path, url: str, path: Path) -> tuple[int, int]:
    """Save a screenshot of ``url``; returns the PNG's (width, height) from its IHDR."""
    path.unlink(missing_ok=True)
    width, height = WINDOW
    chromium(tmp_path, f"--screenshot={path}", f"--window-size={width},{height}", url)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert (length, chunk) == (13, b"IHDR")
    return struct.unpack(">II", data[16:24])


def send_through_pipeline(host: HostDriver, leads: TableClient, *rows: dict[str, str]) -> None:
    host.tick("poll_leads")  # the first run fixes the starting point: later rows are new
    for row in rows:
        leads.create_entity(row)
    host.tick("poll_leads")
    run = host.drain("process_lead")
    assert run.failed == 0, run.errors


def url_of(service: LocalEmailService, mail: ReceivedEmail, view: str = "") -> str:
    number = service.messages.index(mail) + 1
    return f"{service.endpoint}/messages/{number}{view}"


def test_inbox_in_chromium_shows_hostile_lead_as_text(
    host: HostDriver, leads: TableClient, email_service: LocalEmailService, tmp_path: Path
) -> None:
    hostile_row = sample_leads.hostile_lead()
    send_through_pipeline(host, leads, hostile_row, sample_leads.jane("PLT"))
    mails = email_service.messages
    assert len(mails) == 2
    [hostile] = [mail for mail in mails if "mallory@fabrikam.com" in mail.plain_text]
    [jane] = [mail for mail in mails if "jane.doe@contoso.com" in mail.plain_text]
    # The alert shows the first name as normalized (title case); its markup must stay text.
    first_name = person_name(json.loads(hostile_row["CustomerInfo"])["FirstName"])
    assert first_name.lower() == "<script>alert('x')</script>"

    inbox = dump_dom(tmp_path, email_service.inbox_url)
    body = dump_dom(tmp_path, url_of(email_service, hostile, "/html"))
    message = dump_dom(tmp_path, url_of(email_service, hostile))

    assert squash(hostile.subject) in inbox.text
    assert squash(jane.subject) in inbox.text
    links = [a.get("href") for a in inbox.tags("a") if (a.get("href") or "").count("/") == 2]
    assert links == ["/messages/2", "/messages/1"]  # newest first
    inbox.assert_nothing_injected()

    assert f"{first_name} Smith" in body.text
    assert 'ACME <a href="https://evil.example">click here</a>' in body.text
    assert "<img src=x onerror=alert(1)>" in body.text
    assert body.tags("img") == []
    body.assert_nothing_injected()

    assert squash(hostile.subject) in message.text
    assert f"{first_name} Smith" in message.text  # the plain-text body, in its <pre>
    [frame] = message.tags("iframe")
    assert frame["src"] == url_of(email_service, hostile, "/html").removeprefix(
        email_service.endpoint
    )
    assert frame["sandbox"] == ""  # sandboxed, nothing allowed back
    message.assert_nothing_injected()


def test_inbox_screenshots(
    host: HostDriver, leads: TableClient, email_service: LocalEmailService, tmp_path: Path
) -> None:
    send_through_pipeline(host, leads, sample_leads.hostile_lead(), sample_leads.jane("PLT"))
    [jane] = [m for m in email_service.messages if "jane.doe@contoso.com" in m.plain_text]
    OUT.mkdir(exist_ok=True)

    alert_size = screenshot(tmp_path, url_of(email_service, jane), OUT / "inbox-alert.png")
    inbox_size = screenshot(tmp_path, email_service.inbox_url, OUT / "inbox.png")

    assert alert_size == WINDOW
    assert inbox_size == WINDOW
