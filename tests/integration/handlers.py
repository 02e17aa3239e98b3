"""Automation handlers for the worker tests, loaded by the worker subprocess through
AUTOMATION_HANDLER_MODULES. Behaviour comes from the account's properties so each
test scripts its own step: fail the first N attempts, or hang on an attempt."""

from __future__ import annotations

import time

from onboarding.automation import automated_step
from onboarding.models import Task


@automated_step("scripted")
def scripted(task: Task, *, idempotency_key: str) -> str:
    script = task.case.account.properties
    if task.attempts in script.get("hang_on_attempts", []):
        time.sleep(600)  # the test kills the worker meanwhile
    if task.attempts <= script.get("fail_first", 0):
        raise RuntimeError(f"scripted failure on attempt {task.attempts}")
    return f"scripted success ({idempotency_key})"
