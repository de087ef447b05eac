"""`make demo`: the whole pipeline on this machine, no Azure account needed.

Starts Azurite (storage) and the local ACS email endpoint with its inbox page, lets the app's
first poll fix its starting point (a fresh install: the older row is not mailed), seeds a
morning of realistic marketplace rows with the operator CLI, runs the function app with the
local runner (`shared.devhost`) until the queue is drained, and prints what happened to each
lead. `--keep` (`make demo KEEP=1`) then keeps everything running, the timer on its schedule,
until Ctrl-C: open the inbox, seed more rows, try the operator commands.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from azure.data.tables import TableServiceClient
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared import cli, sample_leads
from shared.azurite import PROJECT_ROOT, Azurite
from shared.devhost import DevHost, run_until_signalled
from shared.local_email import DEFAULT_PORT, DEV_ACCESS_KEY, LocalEmailService
from shared.model import DecisionKind
from shared.normalize import normalize_contact
from shared.parsing import parse_lead
from shared.settings import LEDGER_TABLE
from shared.store import escape_key

SENDER = "DoNotReply@leads.contoso.com"
SALES = "sales@contoso.com,sales-emea@contoso.com"
ADMINS = "marketplace-admin@contoso.com"
LEADS_TABLE = "MarketplaceLeads"
#: How each ledger decision reads in the summary.
DECISIONS = {
    DecisionKind.NEW: "new lead: alert",
    DecisionKind.UPDATE: "update: alert",
    DecisionKind.TEST: "test lead: to the admins",
    DecisionKind.DUPLICATE: "repeat: recorded, no mail",
    DecisionKind.DO_NOT_CONTACT: "do not contact: recorded, no mail",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "out" / "demo")
    parser.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    parser.add_argument("--verbose", action="store_true", help="show the host's invocation log")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    _logging(verbose=args.verbose)
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

    with Azurite() as azurite, _inbox(args.out / "mail") as inbox:
        values = _app_settings(azurite.connection_string, inbox.connection_string)
        os.environ.update(values)
        settings_file = args.out / "local.settings.json"
        settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}, indent=2))
        out.print(f"Azurite: {azurite.endpoints['table']} (tables), {azurite.endpoints['queue']}")
        out.print(f"ACS email endpoint and inbox: {inbox.inbox_url}\n")

        function_app = importlib.import_module("function_app")
        host = DevHost(function_app.app, host_json=PROJECT_ROOT / "host.json")
        tables = TableServiceClient.from_connection_string(azurite.connection_string)
        leads = tables.create_table_if_not_exists(LEADS_TABLE)

        out.print("[bold]1.[/] A fresh install: the first poll fixes the starting point")
        leads.create_entity(sample_leads.jane("PLT"))  # an older lead: history, not mailed
        host.run_once()

        out.print("\n[bold]2.[/] The marketplace writes leads: python -m shared.cli seed")
        before = {(e["PartitionKey"], e["RowKey"]) for e in leads.list_entities()}
        cli.main(["--settings", str(settings_file), "seed"])
        rows = [e for e in leads.list_entities() if (e["PartitionKey"], e["RowKey"]) not in before]
        rows.sort(key=lambda entity: entity["RowKey"])

        out.print("\n[bold]3.[/] The local runner runs the functions until the queue is drained")
        summary = host.run_once()
        out.print(f"   {summary}")

        out.print("\n[bold]4.[/] What happened to each lead\n")
        out.print(_summary_table(tables, rows))
        out.print(f"\nMail files (.eml, .html): {args.out / 'mail'}")
        if not args.keep:
            out.print(
                f"The inbox page was served at {inbox.inbox_url} while the demo ran: "
                "`make demo KEEP=1` keeps it open (and everything else running) until Ctrl-C."
            )
            return 0 if summary.ok else 1
        out.print(f"[bold]Inbox:[/] {inbox.inbox_url}  (each alert as a sales rep sees it)")

        _explore_hints(out, settings_file)
        logging.getLogger("devhost").setLevel(logging.INFO)
        logging.getLogger("shared").setLevel(logging.INFO)
        return run_until_signalled(host)


def _app_settings(storage: str, acs: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": storage,
        "LEADS_STORAGE": storage,
        "LEADS_TABLE_NAME": LEADS_TABLE,
        "LEADS_POLL_SCHEDULE": "*/15 * * * * *",  # every 15 s: quick to see in the demo
        "ACS_CONNECTION_STRING": acs,
        "EMAIL_SENDER": SENDER,
        "LEAD_ALERT_RECIPIENTS": SALES,
        "LEAD_ADMIN_RECIPIENTS": ADMINS,
    }


@contextlib.contextmanager
def _inbox(mail_dir: Path) -> Iterator[LocalEmailService]:
    """The inbox on its usual port (as in local.settings.sample.json) when free, else any."""
    try:
        service = LocalEmailService(port=DEFAULT_PORT, access_key=DEV_ACCESS_KEY, out_dir=mail_dir)
        service.start()
    except OSError:
        service = LocalEmailService(out_dir=mail_dir)
        service.start()
    try:
        yield service
    finally:
        service.stop()


def _summary_table(tables: TableServiceClient, rows: list) -> Table:
    ledger = tables.get_table_client(LEDGER_TABLE)
    table = Table(show_edge=False, pad_edge=False, box=box.SIMPLE_HEAD)
    for column in ("lead", "action", "decision", "mailed to"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        lead = parse_lead(row, now=row.metadata["timestamp"])
        customer = normalize_contact(lead.contact)
        who = customer.full_name or customer.email or "(no contact details)"
        if customer.company:
            who = f"{who} ({customer.company})"
        entry = ledger.get_entity(escape_key(row["PartitionKey"]), escape_key(row["RowKey"]))
        kind = DecisionKind(entry["Decision"])
        if kind is DecisionKind.TEST:
            who = "Partner Center's test lead"
        decision = DECISIONS.get(kind, kind.value)
        if entry.get("Status") == "failed":
            decision += " (ACS reported it failed)"
        recipients = (entry.get("Recipients") or "-").replace(",", ", ")
        # Text(), not markup: lead fields are written by strangers.
        table.add_row(Text(_cut(who, 40)), Text(_cut(lead.action_label, 28)), decision, recipients)
    return table


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _explore_hints(out: Console, settings_file: Path) -> None:
    cli_command = f".venv/bin/python -m shared.cli --settings {settings_file}"
    out.print(
        "\n[bold]Still running[/] (the timer polls every 15 s). In another terminal try:\n"
        f"  {cli_command} seed                   # more leads\n"
        f"  {cli_command} status\n"
        f"  {cli_command} resend 'PK/RK'         # the row named at the foot of an alert\n"
        "In the inbox page, set a 429 or 503 fault, seed again and watch the retries.\n"
        "Ctrl-C stops everything this demo started.\n"
    )


def _logging(*, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="  %(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("root").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
