"""The function app as the host sees it: bindings, host.json, start-up validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from shared.hostdriver import indexed_functions
from shared.local_email import DEFAULT_PORT, DEV_ACCESS_KEY
from shared.settings import DEFAULT_POLL_SCHEDULE, LEAD_QUEUE_NAME, load_settings
from tests.conftest import ROOT


def _bindings(host) -> dict[str, list[dict]]:
    import function_app

    return {
        name: [json.loads(raw) for raw in function.get_raw_bindings()]
        for name, function in indexed_functions(function_app.app).items()
    }


def test_two_functions_with_the_declared_triggers(host):
    bindings = _bindings(host)
    assert set(bindings) == {"poll_leads", "process_lead"}
    (timer,) = bindings["poll_leads"]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == DEFAULT_POLL_SCHEDULE
    (queue,) = bindings["process_lead"]
    assert queue["type"] == "queueTrigger"
    assert (queue["queueName"], queue["connection"]) == (LEAD_QUEUE_NAME, "AzureWebJobsStorage")


def test_host_json_retries_then_poisons_and_reads_base64():
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert queues["maxDequeueCount"] == 5
    assert queues["messageEncoding"] == "base64"
    assert queues["visibilityTimeout"] == "00:00:30"


def _import_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import json, function_app\n"
        "from shared.hostdriver import indexed_functions\n"
        "fns = indexed_functions(function_app.app)\n"
        "print(json.loads(fns['poll_leads'].get_raw_bindings()[0])['schedule'])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_schedule_comes_from_the_setting(app_env):
    result = _import_app({**os.environ, "LEADS_POLL_SCHEDULE": "*/30 * * * * *"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "*/30 * * * * *"


def test_missing_setting_stops_the_app_at_start_naming_it(app_env):
    env = {k: v for k, v in os.environ.items() if k != "EMAIL_SENDER"}
    result = _import_app(env)
    assert result.returncode != 0
    assert "SettingsError" in result.stderr and "EMAIL_SENDER" in result.stderr


def test_malformed_schedule_stops_the_app_at_start(app_env):
    result = _import_app({**os.environ, "LEADS_POLL_SCHEDULE": "every minute"})
    assert result.returncode != 0 and "LEADS_POLL_SCHEDULE" in result.stderr


def test_local_settings_sample_works_with_azurite_and_the_local_email_endpoint():
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    settings = load_settings(values)
    assert settings.app_storage.connection_string == "UseDevelopmentStorage=true"
    assert settings.leads_storage == settings.app_storage
    assert settings.acs.endpoint == f"http://127.0.0.1:{DEFAULT_PORT}"
    assert settings.acs.access_key == DEV_ACCESS_KEY
