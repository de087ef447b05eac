"""`make bench`: end-to-end throughput of the pipeline on Azurite with the local ACS endpoint.

Seeds N distinct customers' leads, then times one poll plus processing every queued message
with W concurrent workers (the host runs up to batchSize + newBatchThreshold at once), and
counts the storage and ACS requests made. Also times a cold `import function_app`.
A script that prints numbers, not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from azure.data.tables import TableServiceClient
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from shared import poller, processor, sample_leads
from shared.azurite import PROJECT_ROOT, Azurite
from shared.local_email import LocalEmailService
from shared.services import build_services
from shared.settings import LEAD_QUEUE_NAME, load_settings


class RequestCounter:
    """Counts HTTP requests per service, from a raw_response_hook on every SDK client."""

    def __init__(self, acs_endpoint: str) -> None:
        self._acs = acs_endpoint
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __call__(self, response) -> None:
        url = response.http_request.url
        kind = "acs" if url.startswith(self._acs) else "storage"
        with self._lock:
            self.counts[kind] += 1


def cold_import_seconds(env: dict[str, str], runs: int = 3) -> list[float]:
    code = (
        "import time; t = time.perf_counter(); import function_app; print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=12)
    args = parser.parse_args(argv)

    with Azurite() as azurite, LocalEmailService() as inbox:
        env = {
            "AzureWebJobsStorage": azurite.connection_string,
            "ACS_CONNECTION_STRING": inbox.connection_string,
            "EMAIL_SENDER": "DoNotReply@leads.contoso.com",
            "LEAD_ALERT_RECIPIENTS": "sales@contoso.com",
        }
        os.environ.update(env)
        counter = RequestCounter(inbox.endpoint)
        services = build_services(load_settings(), raw_response_hook=counter)
        leads = TableServiceClient.from_connection_string(azurite.connection_string)
        table = leads.create_table_if_not_exists("MarketplaceLeads")
        poller.poll(services)  # first run: sets the starting point

        rows = sample_leads.bulk_rows(args.rows)
        for start in range(0, len(rows), 100):  # one partition, transactions of 100
            table.submit_transaction([("create", row) for row in rows[start : start + 100]])
        counter.counts.clear()

        queue = QueueClient.from_connection_string(
            azurite.connection_string,
            LEAD_QUEUE_NAME,
            message_decode_policy=BinaryBase64DecodePolicy(),
            raw_response_hook=counter,
        )
        started = time.perf_counter()
        report = poller.poll(services)
        polled = time.perf_counter()
        latencies: list[float] = []

        def handle(message) -> None:
            processor.process(services, message.content)
            queue.delete_message(message)
            latencies.append(time.perf_counter() - started)

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            while True:
                batch = list(queue.receive_messages(messages_per_page=32, max_messages=32))
                if not batch:
                    break
                list(pool.map(handle, batch))
        finished = time.perf_counter()

        total = finished - started
        print(f"rows seeded                      {args.rows}")
        print(f"rows enqueued by one poll        {report.enqueued} in {polled - started:.2f} s")
        print(f"alerts received by ACS endpoint  {len(inbox.messages)}")
        print(f"workers                          {args.workers}")
        print(f"end to end                       {total:.2f} s")
        print(f"leads per second                 {args.rows / total:.1f}")
        print(f"storage requests per lead        {counter.counts['storage'] / args.rows:.2f}")
        print(f"ACS requests per lead            {counter.counts['acs'] / args.rows:.2f}")
        print(
            f"time to recorded alert p50/p95   {statistics.median(latencies):.2f} s / "
            f"{statistics.quantiles(latencies, n=20)[-1]:.2f} s"
        )
        imports = cold_import_seconds(env)
        print(
            f"cold import of function_app      {statistics.median(imports) * 1000:.0f} ms "
            f"(median of {len(imports)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
