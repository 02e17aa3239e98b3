"""Playbook services: drafts are editable, published versions are frozen.

Editing a published playbook means drafting a new version (a copy), changing it and
publishing it; running cases keep the version they started on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from graphlib import CycleError, TopologicalSorter

from django.db import IntegrityError

from analytics.recording import record_playbook_event
from onboarding import clock
from onboarding.actors import Actor
from onboarding.errors import Conflict, Forbidden, InvalidInput
from onboarding.models import Playbook, PlaybookVersion, Queue, SlaPolicy, Step, StepKind
from onboarding.services._write import apply_transition, atomic_write, lock_version


def _require_editor(actor: Actor) -> None:
    if not (actor.is_manager or actor.is_system):
        raise Forbidden(f"{actor} may not edit playbooks.")


def playbook_create(*, key: str, name: str, actor: Actor, description: str = "") -> Playbook:
    """A new playbook with an empty draft version 1."""
    _require_editor(actor)
    try:
        with atomic_write():
            playbook = Playbook.objects.create(key=key, name=name, description=description)
            version = PlaybookVersion.objects.create(
                playbook=playbook, number=1, created_at=clock.now()
            )
            record_playbook_event(
                "Playbook Version Drafted", actor=actor, version=version, based_on_version=None
            )
    except IntegrityError as exc:
        raise Conflict(f"A playbook with key {key!r} already exists.", field="key") from exc
    return playbook


def playbook_draft_new_version(
    *, playbook: Playbook, actor: Actor, changelog: str = ""
) -> PlaybookVersion:
    """Copy the latest version (steps and dependencies) into a new editable draft."""
    _require_editor(actor)
    try:
        with atomic_write():
            base = playbook.versions.order_by("-number").first()
            if base is not None and base.state == PlaybookVersion.State.DRAFT:
                raise Conflict(
                    f"{playbook.key} already has a draft (v{base.number}).", version=base.pk
                )
            draft = PlaybookVersion.objects.create(
                playbook=playbook,
                number=(base.number + 1) if base else 1,
                changelog=changelog,
                case_sla_policy=base.case_sla_policy if base else None,
                created_at=clock.now(),
            )
            if base is not None:
                _copy_steps(base, draft)
            record_playbook_event(
                "Playbook Version Drafted",
                actor=actor,
                version=draft,
                based_on_version=base.number if base else None,
            )
    except IntegrityError as exc:
        raise Conflict(f"{playbook.key} already has a draft.") from exc
    return draft


def _copy_steps(base: PlaybookVersion, draft: PlaybookVersion) -> None:
    # Copies whole rows (every field, expected durations included), then the edges.
    old_steps = list(base.steps.all())
    by_old_id: dict[int, Step] = {}
    for old in old_steps:
        old_id = old.pk
        old.pk = None
        old.id = None
        old.version = draft
        old._state.adding = True
        old.save()
        by_old_id[old_id] = old
    edges = Step.depends_on.through.objects.filter(from_step__version=base)
    Step.depends_on.through.objects.bulk_create(
        Step.depends_on.through(
            from_step_id=by_old_id[e.from_step_id].pk, to_step_id=by_old_id[e.to_step_id].pk
        )
        for e in edges
    )


def playbook_version_add_step(
    *,
    version: PlaybookVersion,
    actor: Actor,
    key: str,
    name: str,
    kind: str,
    depends_on: Sequence[str] | None = None,
    queue: Queue | None = None,
    handler: str = "",
    signal_name: str = "",
    is_milestone: bool = False,
    is_first_value: bool = False,
    required: bool = True,
    max_attempts: int = 3,
    retry_backoff_seconds: int = 30,
    retry_backoff_max_seconds: int = 3600,
    lease_seconds: int = 300,
    sla_policy: SlaPolicy | None = None,
    reminder_interval: timedelta | None = None,
    max_reminders: int = 3,
    expected_within: timedelta | None = None,
    description: str = "",
) -> Step:
    """Add a step to a draft. `depends_on` are step keys; default: the previous step."""
    _require_editor(actor)
    if kind not in StepKind.values:
        raise InvalidInput(f"Unknown step kind {kind!r}.", field="kind")
    with atomic_write():
        version = lock_version(version.pk)
        if version.is_frozen:
            raise Conflict(f"{version} is {version.state}; draft a new version to edit it.")
        existing = list(version.steps.order_by("position", "id"))
        if depends_on is None:
            depends_on = [existing[-1].key] if existing else []
        by_key = {step.key: step for step in existing}
        missing = [k for k in depends_on if k not in by_key]
        if missing:
            raise InvalidInput(f"Unknown dependencies: {', '.join(missing)}.", field="depends_on")
        step = Step(
            version=version,
            key=key,
            name=name,
            description=description,
            kind=kind,
            position=len(existing),
            queue=queue,
            handler=handler,
            signal_name=signal_name,
            is_milestone=is_milestone or is_first_value,
            is_first_value=is_first_value,
            required=required,
            max_attempts=max_attempts,
            retry_backoff_seconds=retry_backoff_seconds,
            retry_backoff_max_seconds=retry_backoff_max_seconds,
            lease_seconds=lease_seconds,
            sla_policy=sla_policy,
            reminder_interval=reminder_interval,
            max_reminders=max_reminders,
            expected_within=expected_within,
        )
        try:
            step.full_clean(exclude=["version", "depends_on"])
        except Exception as exc:  # ValidationError: report it as bad input
            raise InvalidInput(f"Invalid step: {exc}", field="step") from exc
        problems = _kind_problems(step)
        if problems:
            raise InvalidInput(problems, field="kind")
        step.save()
        step.depends_on.set([by_key[k] for k in depends_on])
    return step


def _kind_problems(step: Step) -> str:
    if step.kind == StepKind.HUMAN and step.queue_id is None:
        return f"Human step {step.key!r} needs a queue."
    if step.kind == StepKind.AUTOMATED and not step.handler:
        return f"Automated step {step.key!r} needs a handler."
    if step.kind == StepKind.SIGNAL and not step.signal_name:
        return f"Signal step {step.key!r} needs a signal name."
    return ""


def validate_version(version: PlaybookVersion) -> list[Step]:
    """The checks a draft must pass to be published; returns its steps in DAG order."""
    steps = list(version.steps.all())
    if not steps:
        raise InvalidInput(f"{version} has no steps.", field="steps")
    first_value = [s.key for s in steps if s.is_first_value]
    if len(first_value) > 1:
        raise InvalidInput(
            f"Only one first-value milestone allowed; found {', '.join(first_value)}.",
            field="steps",
        )
    ids = {s.pk for s in steps}
    graph: dict[int, set[int]] = {s.pk: set() for s in steps}
    edges = Step.depends_on.through.objects.filter(from_step__version=version)
    for from_id, to_id in edges.values_list("from_step_id", "to_step_id"):
        if to_id not in ids:
            raise InvalidInput("A step depends on a step of another version.", field="steps")
        graph[from_id].add(to_id)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise InvalidInput("Step dependencies form a cycle.", field="steps") from exc
    by_id = {s.pk: s for s in steps}
    return [by_id[i] for i in order]


def playbook_version_publish(*, version: PlaybookVersion, actor: Actor) -> PlaybookVersion:
    with atomic_write():
        version = lock_version(version.pk)
        steps = validate_version(version) if version.state == version.State.DRAFT else []
        apply_transition(
            version,
            "publish",
            actor=actor,
            changes={"published_at": clock.now()},
            properties={"step_count": len(steps)},
        )
    return version


def playbook_version_retire(*, version: PlaybookVersion, actor: Actor) -> PlaybookVersion:
    with atomic_write():
        version = lock_version(version.pk)
        apply_transition(version, "retire", actor=actor)
    return version
