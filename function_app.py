"""Marketplace Lead Alerts: the Azure Functions entry points. Wiring only; logic is in shared/."""

import logging

import azure.functions as func

from shared import poller, processor
from shared.services import services_for
from shared.settings import LEAD_QUEUE_NAME, load_settings

# Fail at start, naming the setting, rather than at the first lead.
_STARTUP_SETTINGS = load_settings()
logging.getLogger("azure").setLevel(logging.WARNING)  # SDK request logs add noise, not insight
log = logging.getLogger("function_app")

app = func.FunctionApp()


@app.function_name("poll_leads")
@app.timer_trigger(arg_name="timer", schedule=_STARTUP_SETTINGS.poll_schedule, run_on_startup=False)
def poll_leads(timer: func.TimerRequest) -> None:
    """Every LEADS_POLL_SCHEDULE tick: enqueue each new lead row once."""
    if timer.past_due:
        log.info("Poll is running late; the checkpoint makes up for the missed ticks")
    poller.poll(services_for(load_settings()))


@app.function_name("process_lead")
@app.queue_trigger(arg_name="msg", queue_name=LEAD_QUEUE_NAME, connection="AzureWebJobsStorage")
def process_lead(msg: func.QueueMessage) -> None:
    """One lead row: decide, alert at most once, record. Raising makes the queue retry."""
    processor.process(services_for(load_settings()), msg.get_body())
