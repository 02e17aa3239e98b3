"""What a person may do now on a case page, and doing it.

The buttons offered are computed from the state machines for this user
(`has_transition_perm`: source state, conditions and `permission=`); on POST the
service re-checks everything under its row locks, so a crafted or stale form is
refused there, never trusted here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import Model
from django_fsm import has_transition_perm
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextareaWidget

from onboarding import services
from onboarding.actors import Actor
from onboarding.models import Case, Task

_TEXTAREA = UnfoldAdminTextareaWidget(attrs={"rows": 3})
_SELECT = UnfoldAdminSelectWidget


class NoFields(forms.Form):
    pass


class CompleteForm(forms.Form):
    note = forms.CharField(
        label="Outcome note",
        required=False,
        max_length=5000,
        widget=_TEXTAREA,
        help_text="What was done, for whoever reads this case next.",
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=2000, widget=_TEXTAREA)


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", required=False, max_length=2000, widget=_TEXTAREA)


class NoteForm(forms.Form):
    body = forms.CharField(label="Note", max_length=5000, widget=_TEXTAREA)


class MemberSelect(UnfoldAdminSelectWidget):
    """A choice of agents whose options carry the queues each works (`data-queues`), so
    the page offers only the members of the queue chosen next to it (workspace.js)."""

    memberships: dict[int, frozenset[int]] = {}

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        queues = self.memberships.get(value) if isinstance(value, int) else None
        if queues is not None:
            option["attrs"]["data-queues"] = " ".join(str(q) for q in sorted(queues))
        return option


class PeopleAndQueuesForm(forms.Form):
    """Forms whose choices come from the page (queues, agents) rather than the class.

    `choices["_agents"]`, when given, is `(id, name, queue ids)` per agent.
    """

    def __init__(self, *args: Any, choices: dict[str, list] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for name, options in (choices or {}).items():
            if name in self.fields:
                self.fields[name].choices = options
        self.memberships = {a[0]: a[2] for a in (choices or {}).get("_agents", [])}
        for field in self.fields.values():
            if isinstance(field.widget, MemberSelect):
                field.widget.memberships = self.memberships


class HandOffForm(PeopleAndQueuesForm):
    to_queue = forms.TypedChoiceField(label="To queue", coerce=int, widget=_SELECT)
    to_assignee = forms.TypedChoiceField(
        label="To agent (optional)",
        coerce=int,
        required=False,
        empty_value=None,
        widget=MemberSelect,
        help_text="Reserve it for one member of that queue.",
    )

    def clean(self) -> dict[str, Any]:
        # The service refuses it too (under its locks); saying it here keeps the form open
        # on the field with what was typed.
        data = super().clean()
        queue, agent = data.get("to_queue"), data.get("to_assignee")
        if queue and agent and self.memberships and queue not in self.memberships.get(agent, ()):
            self.add_error("to_assignee", "This agent does not work the queue chosen.")
        return data

    note = forms.CharField(
        label="Handoff note",
        max_length=5000,
        widget=_TEXTAREA,
        help_text="Required: what the next person needs to know.",
    )


class ReassignForm(PeopleAndQueuesForm):
    to_assignee = forms.TypedChoiceField(label="Assign to", coerce=int, widget=_SELECT)
    note = forms.CharField(label="Note", required=False, max_length=5000, widget=_TEXTAREA)


class ReopenForm(PeopleAndQueuesForm):
    step_key = forms.ChoiceField(label="Step to reopen", widget=_SELECT)
    reason = forms.CharField(label="Reason", max_length=2000, widget=_TEXTAREA)


Run = Callable[[int, Actor, dict[str, Any]], Any]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    label: str
    target: str  # "task" or "case"
    transition: str | None  # None: allowed to whoever sees the case (notes)
    form: type[forms.Form]
    run: Run
    done: str  # success message; {obj} is the step key or the case number
    icon: str = ""
    variant: str = "default"  # Unfold button variants: primary, default, danger

    def allowed(self, obj: Model, actor: Actor) -> bool:
        if self.transition is None:
            return True
        method = getattr(obj, self.transition, None)
        return method is not None and has_transition_perm(method, actor)


def _task(service: str, **fields: str) -> Run:
    """Call `services.<service>` with the form's fields renamed to its keyword arguments
    (looked up at call time, so the services module stays the one place to patch)."""

    def run(task_id: int, actor: Actor, data: dict[str, Any]) -> Any:
        kwargs = {arg: data[f] for arg, f in fields.items()}
        return getattr(services, service)(task_id=task_id, actor=actor, **kwargs)

    return run


def _case(service: str, **fields: str) -> Run:
    def run(case_id: int, actor: Actor, data: dict[str, Any]) -> Any:
        kwargs = {arg: data[f] for arg, f in fields.items()}
        return getattr(services, service)(case_id=case_id, actor=actor, **kwargs)

    return run


TASK_ACTIONS = (
    ActionSpec(
        "claim", "Claim", "task", "claim", NoFields, _task("task_claim"),
        "You claimed {obj}.", icon="front_hand", variant="primary",
    ),
    ActionSpec(
        "complete", "Complete", "task", "complete", CompleteForm,
        _task("task_complete", note="note"),
        "{obj} is done.", icon="task_alt", variant="primary",
    ),
    ActionSpec(
        "hand_off", "Hand off", "task", "hand_off", HandOffForm,
        _task(
            "task_hand_off",
            note="note", to_queue_id="to_queue", to_assignee_id="to_assignee",
        ),
        "{obj} was handed off.", icon="swap_horiz",
    ),
    ActionSpec(
        "wait_on_customer", "Wait on customer", "task", "wait_on_customer", ReasonForm,
        _task("task_wait_on_customer", reason="reason"),
        "{obj} is waiting on the customer; its SLA clock is paused.", icon="hourglass_top",
    ),
    ActionSpec(
        "resume", "Resume", "task", "resume", NoFields, _task("task_resume"),
        "{obj} is back in progress.", icon="play_arrow",
    ),
    ActionSpec(
        "escalate", "Escalate", "task", "escalate", ReasonForm,
        _task("task_escalate", reason="reason"),
        "{obj} was escalated.", icon="priority_high",
    ),
    ActionSpec(
        "release", "Release", "task", "release", OptionalReasonForm,
        _task("task_release", reason="reason"),
        "{obj} went back to its queue.", icon="undo",
    ),
    ActionSpec(
        "reassign", "Reassign", "task", "assign", ReassignForm,
        _task("task_assign", to_assignee_id="to_assignee", note="note"),
        "{obj} was reassigned.", icon="person_search",
    ),
    ActionSpec(
        "skip", "Skip", "task", "skip", ReasonForm,
        _task("task_skip", reason="reason"),
        "{obj} was skipped.", icon="skip_next", variant="danger",
    ),
)  # fmt: skip

CASE_ACTIONS = (
    ActionSpec(
        "add_note", "Add note", "case", None, NoteForm,
        _case("case_add_note", body="body"),
        "Note added to {obj}.", icon="edit_note", variant="primary",
    ),
    ActionSpec(
        "put_on_hold", "Put on hold", "case", "put_on_hold", ReasonForm,
        _case("case_put_on_hold", reason="reason"),
        "{obj} is on hold; its SLA clocks are paused.", icon="pause_circle",
    ),
    ActionSpec(
        "resume_case", "Resume case", "case", "resume", NoFields,
        _case("case_resume"),
        "{obj} is active again.", icon="play_circle",
    ),
    ActionSpec(
        "reopen", "Reopen", "case", "reopen", ReopenForm,
        _case("case_reopen", step_key="step_key", reason="reason"),
        "{obj} is reopened.", icon="replay",
    ),
    ActionSpec(
        "cancel", "Cancel case", "case", "cancel", ReasonForm,
        _case("case_cancel", reason="reason"),
        "{obj} is cancelled.", icon="cancel", variant="danger",
    ),
)  # fmt: skip

ACTIONS = {spec.name: spec for spec in (*TASK_ACTIONS, *CASE_ACTIONS)}


def task_actions(task: Task, actor: Actor) -> list[ActionSpec]:
    return [spec for spec in TASK_ACTIONS if spec.allowed(task, actor)]


def case_actions(case: Case, actor: Actor) -> list[ActionSpec]:
    return [spec for spec in CASE_ACTIONS if spec.allowed(case, actor)]
