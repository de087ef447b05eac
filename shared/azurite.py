"""Start and stop a private Azurite (the storage emulator) for tests, the demo and benchmarks.

Azurite comes from npm (pinned in package.json). It binds 127.0.0.1 on ports the OS picks and
keeps everything in memory, so runs never collide with each other or leave files behind.
"""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

#: Azurite's well-known development account (public, documented, not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at (\S+)")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class AzuriteError(RuntimeError):
    pass


class Azurite:
    """One Azurite process; use as a context manager."""

    def __init__(self, *, binary: Path | None = None, start_timeout: float = 30.0) -> None:
        self._binary = binary or PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None
        self.endpoints: dict[str, str] = {}
        self._output: list[str] = []

    def start(self) -> Azurite:
        if not self._binary.exists():
            raise AzuriteError(f"{self._binary} not found; run `npm ci` (make does it for you)")
        args = [str(self._binary), "--inMemoryPersistence", "--skipApiVersionCheck"]
        args += ["--disableTelemetry", "--loose"]
        for service in ("blob", "queue", "table"):
            args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", "0"]
        self._process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(ready,), daemon=True).start()
        if not ready.wait(self._start_timeout):
            self.stop()
            raise AzuriteError("Azurite did not start:\n" + "".join(self._output[-20:]))
        return self

    def _read_output(self, ready: threading.Event) -> None:
        """Collect the listening addresses, then keep draining so Azurite never blocks."""
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line)
            match = _LISTENING.search(line)
            if match:
                self.endpoints[match.group(1).lower()] = match.group(2).rstrip("/")
                if len(self.endpoints) == 3:
                    ready.set()

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoints['blob']}/{ACCOUNT_NAME};"
            f"QueueEndpoint={self.endpoints['queue']}/{ACCOUNT_NAME};"
            f"TableEndpoint={self.endpoints['table']}/{ACCOUNT_NAME};"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
