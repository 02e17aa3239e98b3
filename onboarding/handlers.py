"""Demo automation handlers. Real deployments register their own with
`@automated_step("key")`; these show the contract and make the demo move.

Latency and failure rate come from settings (`DEMO_AUTOMATION_LATENCY_MS`,
`DEMO_AUTOMATION_FAILURE_PERCENT`) so the demo shows retries and escalations.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request

from django.conf import settings
from django.core.mail import EmailMessage

from onboarding.automation import automated_step
from onboarding.models import Task


class UpstreamError(Exception):
    """The system the step talks to failed; worth retrying."""


def _simulate_upstream(what: str) -> None:
    time.sleep(settings.DEMO_AUTOMATION_LATENCY_MS / 1000 * random.uniform(0.5, 1.5))
    if random.uniform(0, 100) < settings.DEMO_AUTOMATION_FAILURE_PERCENT:
        raise UpstreamError(f"{what} answered 503 Service Unavailable")


@automated_step("provision_workspace")
def provision_workspace(task: Task, *, idempotency_key: str) -> str:
    _simulate_upstream("workspace provisioner")
    account = task.case.account
    return f"Workspace ws-{account.external_id} ready (request {idempotency_key})."


@automated_step("send_welcome_email")
def send_welcome_email(task: Task, *, idempotency_key: str) -> str:
    account = task.case.account
    recipient = (
        account.properties.get("contact_email") or f"owner+{account.external_id}@example.com"
    )
    message = EmailMessage(
        subject=f"Welcome to your onboarding, {account.name}",
        body="Your workspace is ready. Your onboarding specialist will be in touch.",
        to=[recipient],
        headers={"Idempotency-Key": idempotency_key},  # lets the mail relay drop repeats
    )
    message.send()
    return "Welcome email sent."  # no address here: the context log is not a PII store


@automated_step("send_activation_nudge")
def send_activation_nudge(task: Task, *, idempotency_key: str) -> str:
    _simulate_upstream("messaging service")
    return "Activation nudge queued in the messaging service."


@automated_step("create_crm_record")
def create_crm_record(task: Task, *, idempotency_key: str) -> str:
    account = task.case.account
    if not settings.CRM_WEBHOOK_URL:
        _simulate_upstream("CRM")
        return f"CRM record crm-{account.external_id} created (simulated)."
    body = json.dumps({"external_id": account.external_id, "name": account.name}).encode()
    request = urllib.request.Request(
        settings.CRM_WEBHOOK_URL,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return f"CRM answered {response.status}."
    except OSError as exc:
        raise UpstreamError(f"CRM request failed: {exc}") from exc
