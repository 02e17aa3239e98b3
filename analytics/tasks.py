"""Scheduled analytics work, run by beat (see `CELERY_BEAT_SCHEDULE`).

Thin edges: each task calls one function that holds the logic and is tested directly.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="analytics.evaluate_alerts", acks_late=True, ignore_result=True)
def evaluate_alerts() -> dict[str, int]:
    from analytics.alerts import evaluate_all

    return evaluate_all()


@shared_task(name="analytics.purge_events", acks_late=True, ignore_result=True)
def purge_events() -> dict[str, int]:
    from analytics.retention import purge_expired_events

    return purge_expired_events()
