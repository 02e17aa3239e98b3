"""Celery tasks for webhooks: thin and re-runnable (ids in, re-fetch, one call)."""

from __future__ import annotations

from celery import shared_task

from api import webhooks


@shared_task(name="api.webhooks_relay", acks_late=True, ignore_result=True)
def webhooks_relay() -> dict[str, int]:
    return webhooks.relay().as_dict()


@shared_task(name="api.webhook_deliver", acks_late=True, ignore_result=True)
def webhook_deliver(delivery_pk: int) -> str:
    # A redelivered message finds the attempt claimed or done and returns.
    return webhooks.deliver(delivery_pk)
