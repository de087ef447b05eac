"""`make demo` as a newcomer runs it: a subprocess with its own Azurite and inbox."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import ROOT


def demo(*args: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEAD")}
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.demo", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_demo_prints_the_summary_and_stops_what_it_started(tmp_path: Path):
    process = demo("--out", str(tmp_path))
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output

    summary = output[output.index("4. What happened to each lead") :]
    assert re.search(r"Partner Center's test lead .* test lead: to the admins", summary)
    assert re.search(r"Ana Silva .* do not contact: recorded, no mail", summary)
    assert "repeat: recorded, no mail" in summary and "update: alert" in summary
    assert "<Script>Alert('X')</Script>" in summary  # hostile text shown as text
    assert "12 message(s) succeeded, 0 failed attempt(s), 0 poisoned" in output
    inbox = re.search(r"The inbox page was served at (http://127\.0\.0\.1:\d+/)", output)
    azurite = re.search(r"Azurite: (http://127\.0\.0\.1:\d+)", output).group(1)
    assert "make demo KEEP=1" in output
    assert refused(inbox.group(1)) and refused(azurite)
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 10


def test_demo_keep_serves_the_inbox_until_ctrl_c(tmp_path: Path):
    process = demo("--out", str(tmp_path), "--keep")
    lines = []
    assert process.stdout is not None
    for line in process.stdout:  # until the demo says it keeps running
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    output = "".join(lines)
    inbox = re.search(r"Inbox: (http://127\.0\.0\.1:\d+/)", output).group(1)
    azurite = re.search(r"Azurite: (http://127\.0\.0\.1:\d+)", output).group(1)
    with urllib.request.urlopen(inbox, timeout=5) as response:
        page = response.read().decode()
    assert page.count('href="/messages/') == 10

    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "Dev host stopped" in rest
    assert refused(inbox) and refused(azurite)
