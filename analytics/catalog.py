"""The event catalog: every event the product records, declared once.

Names follow `Object Action` in Title Case. Each declares a schema version, a
description for analysts and its properties (type, required, PII). The recorder
validates every event against this; nothing unknown reaches the table.

Properties common to every event (account, case, task, step key, playbook,
actor, source, segmentation, timestamps) are columns of `Event`, not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onboarding.errors import InvalidInput

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "datetime": (str, datetime),
    "object": (dict,),
    "array": (list, tuple),
}


class EventRejected(InvalidInput):
    """An event does not match the catalog (unknown name, missing or mistyped property)."""

    code = "event_rejected"


@dataclass(frozen=True)
class Prop:
    type: str
    description: str
    required: bool = True
    pii: bool = False
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"unknown property type {self.type!r}")


@dataclass(frozen=True)
class EventSpec:
    name: str
    version: int
    description: str
    properties: dict[str, Prop] = field(default_factory=dict)

    def clean(self, properties: dict[str, Any]) -> dict[str, Any]:
        """Validate `properties` and return what may be stored (PII removed)."""
        unknown = sorted(set(properties) - set(self.properties))
        if unknown:
            raise EventRejected(
                f"{self.name!r} has no properties {', '.join(unknown)}", event=self.name
            )
        stored: dict[str, Any] = {}
        for key, prop in self.properties.items():
            if key not in properties:
                if prop.required:
                    raise EventRejected(
                        f"{self.name!r} requires property {key!r}", event=self.name, property=key
                    )
                continue
            value = properties[key]
            if value is None:
                if not prop.nullable:
                    raise EventRejected(
                        f"{self.name!r} property {key!r} may not be null",
                        event=self.name,
                        property=key,
                    )
            elif not _matches(value, prop.type):
                raise EventRejected(
                    f"{self.name!r} property {key!r} must be {prop.type}, "
                    f"got {type(value).__name__}",
                    event=self.name,
                    property=key,
                )
            if prop.pii:
                continue  # declared so producers may send it; never stored in events
            stored[key] = value.isoformat() if isinstance(value, datetime) else value
        return stored


def _matches(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False  # bool is an int subclass; True is not a count
    return isinstance(value, _TYPES[type_name])


# --- shared property sets -------------------------------------------------------------

TRANSITION = {
    "transition": Prop("string", "Name of the state-machine transition."),
    "from_state": Prop("string", "State before the transition."),
    "to_state": Prop("string", "State after the transition."),
}
REASON = {"reason": Prop("string", "Why, in the actor's words.", required=False)}


def _transition(name: str, description: str, **extra: Prop) -> EventSpec:
    return EventSpec(name, 1, description, {**TRANSITION, **extra})


CATALOG: dict[str, EventSpec] = {
    spec.name: spec
    for spec in [
        # accounts
        EventSpec(
            "Account Created",
            1,
            "An account was created (through the API upsert, the admin or the seeder).",
            {
                "external_id": Prop("string", "The account's id in the CRM or product."),
                "contact_email": Prop(
                    "string", "Primary contact; accepted, never stored.", required=False, pii=True
                ),
            },
        ),
        EventSpec(
            "Account Updated",
            1,
            "Account attributes changed; lists which, not their values.",
            {"changed_fields": Prop("array", "Names of the fields that changed.")},
        ),
        # playbooks
        EventSpec(
            "Playbook Version Drafted",
            1,
            "A new editable version of a playbook was created.",
            {"based_on_version": Prop("integer", "Version it was copied from.", nullable=True)},
        ),
        _transition(
            "Playbook Version Published",
            "A playbook version was frozen; new cases start on it.",
            step_count=Prop("integer", "Number of steps in the version."),
        ),
        _transition("Playbook Version Retired", "A published version stops taking new cases."),
        # cases
        EventSpec(
            "Case Opened",
            1,
            "An onboarding case was opened for an account on a pinned playbook version.",
            {"task_count": Prop("integer", "Tasks created from the playbook version.")},
        ),
        _transition("Case Put On Hold", "All work on the case is paused.", **REASON),
        _transition("Case Resumed", "A held case is active again."),
        _transition(
            "Case Completed",
            "Every required task reached a final state.",
            duration_seconds=Prop("number", "Wall-clock seconds from opening to completion."),
        ),
        _transition("Case Cancelled", "The onboarding was abandoned.", **REASON),
        _transition(
            "Case Reopened",
            "A manager reopened a completed case.",
            reopened_step=Prop("string", "Step key put back in play."),
            **REASON,
        ),
        # steps (tasks)
        _transition(
            "Step Activated",
            "Every dependency is met: the step is scheduled, queued or awaiting its signal.",
            kind=Prop("string", "automated, human or signal."),
            queue=Prop("string", "Queue key for human steps.", required=False),
        ),
        _transition(
            "Step Started",
            "A worker leased an automated step and began an attempt.",
            attempt=Prop("integer", "1 for the first attempt."),
        ),
        _transition(
            "Step Failed",
            "An automated attempt failed and will be retried.",
            attempt=Prop("integer", "The attempt that failed."),
            error_type=Prop("string", "Exception class or error code."),
        ),
        _transition(
            "Step Lease Expired",
            "A worker took an automated step but did not report back in time (crash or "
            "timeout); the attempt counts as failed and the step is scheduled again.",
            attempt=Prop("integer", "The attempt that was lost."),
        ),
        _transition(
            "Step Completed",
            "The step is done.",
            completed_by=Prop("string", "automation, human or signal."),
            attempt=Prop("integer", "Attempts used (automated steps).", required=False),
        ),
        _transition("Step Claimed", "An agent took a queued step."),
        _transition("Step Released", "The assignee put the step back in its queue.", **REASON),
        _transition(
            "Step Handed Off",
            "The step moved to another queue or agent with a handoff note.",
            from_queue=Prop("string", "Queue key before.", nullable=True),
            to_queue=Prop("string", "Queue key after."),
            to_assignee_id=Prop("integer", "Agent the step is reserved for.", nullable=True),
        ),
        _transition(
            "Step Assigned",
            "The step was reserved for one agent of its queue, who claims it next.",
            to_assignee_id=Prop("integer", "Agent the step is reserved for now."),
            from_assignee_id=Prop("integer", "Agent it was reserved for before.", nullable=True),
            method=Prop("string", "manager, round_robin or least_loaded."),
            queue=Prop("string", "Key of the queue the step waits in.", nullable=True),
        ),
        _transition(
            "Step Escalated",
            "The step went to a (possibly other) queue flagged as escalated.",
            to_queue=Prop("string", "Queue key after.", nullable=True),
            cause=Prop("string", "attempts_exhausted, lease_expired, agent, system or sla."),
            error_type=Prop("string", "Last error, when automation gave up.", required=False),
        ),
        _transition("Step Awaiting Customer", "Work paused until the customer responds."),
        _transition("Step Resumed", "Work continues after waiting on the customer."),
        _transition("Step Skipped", "A manager or the workflow skipped the step.", **REASON),
        _transition("Step Cancelled", "The step ended because its case ended.", **REASON),
        _transition("Step Reopened", "A finished step was put back in play.", **REASON),
        # SLA timers
        EventSpec(
            "SLA Started",
            1,
            "A clock started on a step (or on a whole case: time to live).",
            {
                "policy": Prop("string", "Policy key."),
                "policy_version": Prop("integer", "Policy version the timer keeps."),
                "kind": Prop("string", "task or case."),
                "target_seconds": Prop("number", "Business seconds allowed."),
                "due_at": Prop("datetime", "When it breaches if nothing changes."),
            },
        ),
        _transition(
            "SLA Paused",
            "The clock stopped (e.g. waiting on the customer, case on hold).",
            consumed_seconds=Prop("number", "Business seconds used so far."),
        ),
        _transition(
            "SLA Resumed",
            "The clock runs again.",
            due_at=Prop("datetime", "New breach time."),
        ),
        EventSpec(
            "SLA Warning",
            1,
            "The clock passed its warning threshold.",
            {
                "policy": Prop("string", "Policy key."),
                "consumed_seconds": Prop("number", "Business seconds used so far."),
                "target_seconds": Prop("number", "Business seconds allowed."),
            },
        ),
        _transition(
            "SLA Breached",
            "The target passed before the work was done.",
            policy=Prop("string", "Policy key."),
            target_seconds=Prop("number", "Business seconds allowed."),
        ),
        _transition(
            "SLA Met",
            "The work was done within the target.",
            consumed_seconds=Prop("number", "Business seconds used."),
            target_seconds=Prop("number", "Business seconds allowed."),
        ),
        _transition(
            "SLA Cancelled",
            "The clock stopped without a verdict (step skipped, case cancelled).",
            **REASON,
        ),
        # signals and reminders
        EventSpec(
            "Signal Received",
            1,
            "A product signal arrived for an account (stored once per signal id).",
            {
                "signal": Prop("string", "Signal name, e.g. Data Source Connected."),
                "signal_id": Prop("string", "Producer's id (the de-duplication key)."),
                "completed_tasks": Prop("integer", "Waiting steps it completed."),
            },
        ),
        EventSpec(
            "Reminder Sent",
            1,
            "The customer was nudged about a step waiting on them.",
            {
                "kind": Prop("string", "Reminder kind, e.g. signal_nudge."),
                "window": Prop("integer", "1 for the first reminder, 2 for the next…"),
                "channel": Prop("string", "email, …"),
            },
        ),
        # alerts (analytics.alerts): no case; ids and numbers only, never recipients
        EventSpec(
            "Alert Fired",
            1,
            "An alert rule's condition started to hold: one event per breach, however "
            "many evaluations see it hold.",
            {
                "alert_id": Prop("integer", "The alert (one per breach)."),
                "rule_id": Prop("integer", "The rule that fired."),
                "rule_name": Prop("string", "The rule's name."),
                "metric": Prop(
                    "string",
                    "milestone_conversion, sla_compliance, "
                    "first_value_median or milestone_time_median.",
                ),
                "kind": Prop("string", "threshold or baseline."),
                "condition": Prop("string", "The condition in words."),
                "value": Prop("number", "The metric's value for the period."),
                "unit": Prop("string", "% (rates) or h (durations)."),
                "threshold": Prop("number", "Threshold rules: the limit.", nullable=True),
                "baseline": Prop("number", "Baseline rules: the baseline value.", nullable=True),
                "period_start": Prop("string", "First day of the period judged."),
                "period_end": Prop("string", "Last day of the period judged."),
                "case_ids": Prop("array", "The first cases behind it (ids)."),
                "case_count": Prop(
                    "integer", "How many cases (SLA: cases breached) are behind it."
                ),
                "link": Prop("string", "The alert's page in the admin."),
            },
        ),
        EventSpec(
            "Alert Resolved",
            1,
            "A firing alert ended: its condition cleared, or its rule was disabled.",
            {
                "alert_id": Prop("integer", "The alert."),
                "rule_id": Prop("integer", "Its rule."),
                "rule_name": Prop("string", "The rule's name."),
                "metric": Prop("string", "The rule's metric."),
                "value": Prop("number", "The value that cleared it.", nullable=True),
                "unit": Prop("string", "% (rates) or h (durations)."),
                "reason": Prop("string", "recovered or rule disabled."),
                "fired_at": Prop("datetime", "When it fired."),
                "link": Prop("string", "The alert's page in the admin."),
            },
        ),
        # context log
        EventSpec(
            "Note Added",
            1,
            "Someone added a note to the case's context log (the text stays in the log).",
            {"length": Prop("integer", "Characters in the note.")},
        ),
    ]
}


def get_spec(name: str) -> EventSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise EventRejected(f"{name!r} is not in the event catalog", event=name) from None
