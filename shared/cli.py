"""Operator commands for Marketplace Lead Alerts: `python -m shared.cli --help`.

The same settings as the function app (environment variables, filled in from
local.settings.json), so the commands work against Azurite and against a real account: a
connection string, or service URIs with your own Azure sign-in (DefaultAzureCredential).
Exit codes: 0 done / all well, 1 `status` found something to look at, 2 the command could not
run (bad settings, bad arguments, nothing to act on).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from azure.core.exceptions import ResourceNotFoundError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from shared import backfill as backfill_use_case
from shared import sample_leads, status
from shared.connections import table_service
from shared.model import RowRef
from shared.services import Services, build_services
from shared.settings import (
    POISON_QUEUE_NAME,
    SettingsError,
    StorageConnection,
    environment_with_local_settings,
    load_settings,
    parse_utc_time,
)

SEED_SETS = ("demo", "test-lead", "bulk")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class CommandError(Exception):
    """The command cannot run; the message tells the operator why and what to do."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)
    try:
        env = as_operator(environment_with_local_settings(args.settings))
        services = build_services(load_settings(env))
        return args.command(services, args, out)
    except (SettingsError, CommandError, backfill_use_case.BackfillError) as err:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {err}")
        return 2


def as_operator(env: dict[str, str]) -> dict[str, str]:
    """The app's settings without its identity: an operator signs in as themself.

    The app's settings name its managed identity (`__credential`, `__clientId`,
    `AZURE_CLIENT_ID`), which exists only inside Azure. Without them the clients use
    DefaultAzureCredential: `az login` on a laptop, the shell's identity in Cloud Shell.
    """
    identity = ("__credential", "__clientid")
    return {
        key: value
        for key, value in env.items()
        if not key.lower().endswith(identity) and key != "AZURE_CLIENT_ID"
    }


def _parser() -> argparse.ArgumentParser:
    default_settings = Path("local.settings.json")
    parser = argparse.ArgumentParser(
        prog="python -m shared.cli",
        description="Operator commands for Marketplace Lead Alerts.",
        epilog=(
            "Settings come from the environment, filled in from --settings. Exit codes: 0 done "
            "(status: all well), 1 status found something to look at, 2 the command could not "
            "run. `python -m shared.cli COMMAND --help` says more about each command."
        ),
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=default_settings if default_settings.exists() else None,
        metavar="PATH",
        help="a local.settings.json, or the output of `az functionapp config appsettings "
        "list`, to read settings from (default: ./local.settings.json if it exists); "
        "environment variables win",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, run: Callable, summary: str, details: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=f"{summary}. {details}")
        sub.set_defaults(command=run)
        return sub

    command(
        "status",
        cmd_status,
        "Show the checkpoint, the queues and the last 24 hours",
        "Exit code 1 when something needs a look (poison messages, a late checkpoint, "
        "failed mails, leads stuck in progress), so it can run from a monitor.",
    )
    seed = command(
        "seed",
        cmd_seed,
        "Write sample marketplace rows into the leads table",
        "For demos, and to try a real deployment end to end: the app alerts these rows like "
        "real leads. A non-local account needs --yes.",
    )
    seed.add_argument(
        "--set",
        choices=SEED_SETS,
        default="demo",
        dest="seed_set",
        help="demo: a morning of varied leads (default); test-lead: Partner Center's test "
        "lead, mailed to the admins only; bulk: --count plain leads",
    )
    seed.add_argument(
        "--count", type=int, default=100, metavar="N", help="rows for --set bulk (100)"
    )
    seed.add_argument("--yes", action="store_true", help="write to a non-local account")
    replay = command(
        "replay",
        cmd_replay,
        f"Move messages from {POISON_QUEUE_NAME} back to the lead queue",
        "After fixing what made them fail (see the function logs). Processing is idempotent: "
        "a lead already mailed is not mailed again. Unreadable messages are left in place.",
    )
    replay.add_argument("--dry-run", action="store_true", help="list them, move nothing")
    replay.add_argument("--limit", type=int, default=None, help="move at most this many")
    backfill = command(
        "backfill",
        cmd_backfill,
        "Index leads from before the install into the customer history, without mailing",
        "Then a returning customer's next lead arrives as an update listing those leads. "
        "Reads rows written from --since up to the app's start; safe to run again.",
    )
    backfill.add_argument(
        "--since", required=True, type=_utc_time, metavar="DATE", help="e.g. 2026-01-01"
    )
    resend = command(
        "resend",
        cmd_resend,
        "Alert one lead again, on purpose",
        "Queues a request that the function app handles like a lead: one more mail, marked "
        "[Resent], to the same recipients as the original.",
    )
    resend.add_argument(
        "row",
        type=_row_ref,
        metavar="ROW",
        help="PartitionKey/RowKey of the lead, as shown at the foot of the alert",
    )
    return parser


# --------------------------------------------------------------------------- status


def cmd_status(services: Services, args: argparse.Namespace, out: Console) -> int:
    report = status.gather(services)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    if report.leads_table_exists:
        leads = f"{report.leads_table}: {report.leads_recent} row(s) written in the last 24 h"
    else:
        leads = f"{report.leads_table}: not created yet (Partner Center creates it with a lead)"
    grid.add_row("Leads table", leads)
    grid.add_row("Checkpoint", _checkpoint_line(report))
    grid.add_row("Lead queue", _depth(report.queue_depth))
    grid.add_row("Poison queue", _depth(report.poison_depth or 0))  # made on first use
    ledger = report.ledger
    outcomes = [f"{label}: {n}" for label, n in sorted(ledger.outcomes.items())]
    for index, line in enumerate(outcomes or ["no leads handled"]):
        grid.add_row("Last 24 h" if index == 0 else "", line)
    if ledger.resent:
        grid.add_row("Resent", f"{ledger.resent} on request")
    grid.add_row("In progress", f"{ledger.pending} lead(s)")
    out.print(f"Marketplace Lead Alerts, status at {_time(report.now)}\n")
    out.print(grid)
    problems = status.attention(report)
    if not problems:
        out.print("\nAll well.")
        return 0
    out.print("\n[bold]Needs attention:[/]")
    for problem in problems:
        out.print(f"  - {problem}")
    return 1


def _checkpoint_line(report: status.StatusReport) -> str:
    checkpoint = report.checkpoint
    if checkpoint is None:
        return "none: the poller has not run yet"
    age = report.checkpoint_age
    saved = f"saved {status.duration(age)} ago" if age is not None else "saved"
    return (
        f"{saved}; rows up to {_time(checkpoint.watermark)} enqueued; "
        f"alerting on rows since {_time(checkpoint.floor)}"
    )


def _depth(depth: int | None) -> str:
    return "not created yet" if depth is None else f"{depth} message(s)"


# --------------------------------------------------------------------------- seed


def cmd_seed(services: Services, args: argparse.Namespace, out: Console) -> int:
    settings = services.settings
    if args.seed_set == "demo":
        rows = sample_leads.demo_rows()
    elif args.seed_set == "test-lead":
        rows = [sample_leads.test_lead()]
    else:
        if not 1 <= args.count <= 100_000:
            raise CommandError("--count must be between 1 and 100000")
        rows = sample_leads.bulk_rows(args.count)
    target = f"table {settings.leads_table} of {_account(settings.leads_storage)}"
    if not is_local(settings.leads_storage) and not args.yes:
        raise CommandError(
            f"This writes {len(rows)} sample lead(s) into {target}, and the app will mail "
            f"them like real leads. Add --yes to go ahead."
        )
    tables = table_service(settings.leads_storage)
    table = tables.create_table_if_not_exists(settings.leads_table)
    for row in rows:
        table.create_entity(row)
    out.print(f"Wrote {len(rows)} sample lead(s) ({args.seed_set}) into {target}.")
    out.print("The next poll (LEADS_POLL_SCHEDULE) picks them up.")
    return 0


def is_local(connection: StorageConnection) -> bool:
    """Azurite (or another emulator on this machine), where sample rows mail no one real."""
    if connection.connection_string is not None:
        text = connection.connection_string.lower()
        if "usedevelopmentstorage=true" in text:
            return True
        endpoints = [
            part.split("=", 1)[1]
            for part in connection.connection_string.split(";")
            if part.lower().startswith(("tableendpoint=", "queueendpoint="))
        ]
    else:
        endpoints = [u for u in (connection.table_service_uri, connection.queue_service_uri) if u]
    return bool(endpoints) and all(urlsplit(url).hostname in _LOCAL_HOSTS for url in endpoints)


def _account(connection: StorageConnection) -> str:
    if connection.connection_string is not None:
        for part in connection.connection_string.split(";"):
            key, _, value = part.partition("=")
            if key.lower() == "accountname":
                return f"account {value}"
        return "the development storage"
    return urlsplit(connection.table_service_uri or "").hostname or "the storage account"


# --------------------------------------------------------------------------- replay


def cmd_replay(services: Services, args: argparse.Namespace, out: Console) -> int:
    poison = services.poison
    if args.dry_run:
        messages = poison.peek()
        depth = poison.depth() or 0
        out.print(f"{depth} message(s) in {poison.name}" + (":" if messages else "."))
        for message in messages:
            if message is None:
                out.print("  - (not a lead message: would be left in place)")
            else:
                kind = " (resend request)" if message.resend_id else ""
                out.print(f"  - lead {message.ref.display}{kind}")
        if depth > len(messages):
            out.print(f"  ... and about {depth - len(messages)} more")
        return 0
    report = poison.replay(limit=args.limit)
    out.print(f"Moved {report.moved} message(s) from {poison.name} back to the lead queue.")
    if report.unreadable:
        out.print(
            f"Left {len(report.unreadable)} message(s) that are not lead requests in "
            f"{poison.name} (ids: {', '.join(report.unreadable)})."
        )
    return 0


# --------------------------------------------------------------------------- backfill


def cmd_backfill(services: Services, args: argparse.Namespace, out: Console) -> int:
    until = backfill_use_case.window_end(services, args.since)
    out.print(
        f"Indexing leads written from {_time(args.since)} up to the app's start "
        f"({_time(until)}) into the customer history; no mail is sent."
    )
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
    )
    with progress:
        reading = progress.add_task("Reading lead rows", total=None)
        rows = services.leads.written_between(args.since, until)
        plan = backfill_use_case.plan(
            rows,
            now=datetime.now(timezone.utc),
            on_row=lambda: progress.advance(reading),
        )
        progress.update(reading, total=plan.report.rows_read)
        merging = progress.add_task("Updating customer histories", total=len(plan.entries))
        report = backfill_use_case.apply(
            services, plan, on_customer=lambda: progress.advance(merging)
        )
    out.print(
        f"Read {report.rows_read} row(s): {report.indexed} indexed for {report.customers} "
        f"customer/offer pair(s), {report.already_indexed} already indexed, "
        f"{report.test_leads} test lead(s) skipped, {report.unmatched} without an email or "
        "phone to match on."
    )
    if report.contended:
        out.print(
            f"{report.contended} customer history(ies) kept changing while being updated: "
            "run the command again to finish them."
        )
        return 1
    return 0


# --------------------------------------------------------------------------- resend


def cmd_resend(services: Services, args: argparse.Namespace, out: Console) -> int:
    ref: RowRef = args.row
    if services.leads.get(ref) is None:
        raise CommandError(f"No lead {ref.display} in table {services.settings.leads_table}")
    request = str(uuid.uuid4())
    try:
        services.queue.send(ref, resend_id=request)
    except ResourceNotFoundError:
        raise CommandError(
            "The lead queue does not exist yet: start the function app first"
        ) from None
    recipients = ", ".join(services.settings.alert_recipients)
    out.print(
        f"Queued a resend of lead {ref.display} (request {request}). The function app mails "
        f"it marked [Resent] within a minute (sales alerts go to {recipients}; a test lead "
        "to the admins)."
    )
    return 0


# --------------------------------------------------------------------------- parsing


def _row_ref(text: str) -> RowRef:
    """`PK/RK` or `PK / RK` (keys cannot contain `/`, so the split is unambiguous)."""
    partition_key, sep, row_key = text.partition("/")
    if not sep or not partition_key.strip() or not row_key.strip() or "/" in row_key:
        raise argparse.ArgumentTypeError(f"expected PartitionKey/RowKey, got {text!r}")
    return RowRef(partition_key.strip(), row_key.strip())


def _utc_time(text: str) -> datetime:
    try:
        return parse_utc_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2026-01-31 or 2026-01-31T08:00:00Z, got {text!r}"
        ) from None


def _time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


if __name__ == "__main__":
    sys.exit(main())
