"""Celery tasks: thin, re-runnable edges that take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from onboarding import automation, sweeper


@shared_task(name="onboarding.run_automated_step", acks_late=True, ignore_result=True)
def run_automated_step(task_id: int) -> str:
    return automation.run_step(task_id)


@shared_task(name="onboarding.sweep", acks_late=True, ignore_result=True)
def sweep() -> dict[str, int]:
    return sweeper.sweep().as_dict()
