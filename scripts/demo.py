"""`make demo`: the whole pipeline on this machine, no Azure account needed.

Starts Azurite (storage) and the local ACS email endpoint, runs the function app's first poll
(a fresh install: nothing older is mailed), writes a morning of realistic marketplace rows,
then runs the timer and queue functions the way the Functions host would, and shows what the
sales team and the admins received. Full messages land in out/ as .eml and .html files.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
from pathlib import Path

from azure.data.tables import TableServiceClient

from shared import sample_leads
from shared.azurite import PROJECT_ROOT, Azurite
from shared.hostdriver import HostDriver
from shared.local_email import LocalEmailService
from shared.settings import LEDGER_TABLE

SENDER = "DoNotReply@leads.contoso.com"
SALES = "sales@contoso.com,sales-emea@contoso.com"
ADMINS = "marketplace-admin@contoso.com"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "out", help="mail folder")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    logging.basicConfig(level=logging.WARNING, format="  log  %(message)s")
    logging.getLogger("shared").setLevel(logging.INFO)

    with Azurite() as azurite, LocalEmailService(out_dir=args.out) as inbox:
        os.environ.update(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "LEADS_STORAGE": azurite.connection_string,
                "LEADS_TABLE_NAME": "MarketplaceLeads",
                "ACS_CONNECTION_STRING": inbox.connection_string,
                "EMAIL_SENDER": SENDER,
                "LEAD_ALERT_RECIPIENTS": SALES,
                "LEAD_ADMIN_RECIPIENTS": ADMINS,
            }
        )
        print(f"Azurite tables at {azurite.endpoints['table']}, ACS email at {inbox.endpoint}\n")
        function_app = importlib.import_module("function_app")
        host = HostDriver(function_app.app, host_json=PROJECT_ROOT / "host.json")
        tables = TableServiceClient.from_connection_string(azurite.connection_string)
        leads = tables.create_table_if_not_exists("MarketplaceLeads")

        print("1. First poll of a fresh install (sets the starting point; history is not mailed)")
        leads.create_entity(sample_leads.jane("PLT"))  # an old lead: must not be mailed
        host.tick("poll_leads")

        rows = sample_leads.demo_rows()
        print(f"\n2. The marketplace writes {len(rows)} leads")
        for row in rows:
            leads.create_entity(row)

        print("\n3. Timer tick, then the queue function for every message (as the host would)")
        host.tick("poll_leads")
        run = host.drain("process_lead")
        print(f"   processed {run.succeeded} messages, {run.failed} failed")

        _print_summary(tables, rows, inbox)
        print(f"\nFull messages (.eml and .html) are in {args.out}/")
    return 0


def _print_summary(tables: TableServiceClient, rows: list[dict], inbox: LocalEmailService) -> None:
    ledger = {
        (entity["SourcePartitionKey"], entity["SourceRowKey"]): entity
        for entity in tables.get_table_client(LEDGER_TABLE).list_entities()
    }
    mails = {mail.operation_id: mail for mail in inbox.messages}
    print("\n4. What happened to each lead\n")
    print(f"   {'lead source':<44} {'decision':<10} {'status':<9} mail")
    for row in rows:
        entry = ledger.get((row["PartitionKey"], row["RowKey"]), {})
        mail = mails.get(entry.get("OperationId", ""))
        source = row["LeadSource"][:44]
        outcome = mail.subject[:70] if mail else "-"
        decision, status = entry.get("Decision", "?"), entry.get("Status", "?")
        print(f"   {source:<44} {decision:<10} {status:<9} {outcome}")
    print("\n5. Mails received by the local ACS endpoint\n")
    for mail in inbox.messages:
        print(f"   To: {', '.join(mail.to)}")
        print(f"   Subject: {mail.subject}\n")


if __name__ == "__main__":
    sys.exit(main())
