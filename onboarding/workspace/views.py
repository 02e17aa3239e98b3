"""Workspace pages. Thin: a selector to read, one service to write, a message either way."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from onboarding import clock, services
from onboarding.actors import Actor
from onboarding.errors import DomainError
from onboarding.models import Case, Queue, Task
from onboarding.models.cases import SATISFIED_TASK_STATES, CaseState
from onboarding.workspace.actions import (
    ACTIONS,
    ActionSpec,
    PeopleAndQueuesForm,
    case_actions,
    task_actions,
)
from onboarding.workspace.selectors import (
    agents_for_handoff,
    case_page,
    my_work,
    queue_overview,
    queues_for,
)


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, source="admin")


def _page(request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
    base = admin.site.each_context(request)
    return TemplateResponse(request, template, {**base, "title": title, **context})


def case_url(case_id: int) -> str:
    return reverse("admin:onboarding_case_change", args=[case_id])


# --- my work and queues ------------------------------------------------------------------


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """The admin index is the person's desk: their tasks, then their queues."""
    actor, now = _actor(request), clock.now()
    context.update(
        {
            "title": "My work",
            "my_tasks": my_work(actor, now),
            "queue_rows": queue_overview(actor, now),
            "now": now,
            "is_manager": actor.is_manager,
        }
    )
    return context


def queues_view(request: HttpRequest) -> TemplateResponse:
    actor, now = _actor(request), clock.now()
    return _page(
        request,
        "workspace/queues.html",
        "Queues",
        queue_rows=queue_overview(actor, now),
        now=now,
        is_manager=actor.is_manager,
    )


def claim_next_view(request: HttpRequest, queue_id: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    actor = _actor(request)
    queue = get_object_or_404(queues_for(actor), pk=queue_id)
    back = request.POST.get("next") or reverse("workspace:queues")
    if not back.startswith("/"):
        back = reverse("workspace:queues")
    try:
        task = services.task_claim_next(queue_id=queue.pk, actor=actor)
    except DomainError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(back)
    if task is None:
        messages.info(request, f"Nothing to claim in {queue.name} right now.")
        return HttpResponseRedirect(back)
    messages.success(request, f"You claimed {task.step_key} of case #{task.case_id}.")
    return HttpResponseRedirect(case_url(task.case_id))


# --- the case page -------------------------------------------------------------------------


class BoundAction:
    """One button on the page with its form, open and bound when a POST failed."""

    def __init__(self, spec: ActionSpec, form: Form, target_id: int, seen_state: str):
        self.spec, self.form, self.target_id, self.seen_state = spec, form, target_id, seen_state
        self.open = form.is_bound

    @property
    def has_fields(self) -> bool:
        return bool(self.form.fields)


def _choices(case: Case, page_tasks: list[Task]) -> dict[str, list]:
    agents = agents_for_handoff()
    queues = [(q.pk, q.name) for q in Queue.objects.order_by("name")]
    finished = [(t.step_key, t.step_key) for t in page_tasks if t.state in SATISFIED_TASK_STATES]
    return {
        "to_queue": queues,
        "to_assignee": [("", "— anyone in the queue —"), *[(a[0], a[1]) for a in agents]],
        "step_key": finished,
        "_agents": agents,
    }


def _form(spec: ActionSpec, target_id: int, choices: dict[str, list], data: Any = None) -> Form:
    form_choices = dict(choices)
    if spec.name == "reassign":
        form_choices["to_assignee"] = [c for c in choices["to_assignee"] if c[0] != ""]
    # One prefix per action and row: a page holds a "complete" form for every task.
    kwargs: dict[str, Any] = {"prefix": f"{spec.name}-{target_id}"}
    if issubclass(spec.form, PeopleAndQueuesForm):
        kwargs["choices"] = form_choices
    return spec.form(data, **kwargs) if data is not None else spec.form(**kwargs)


def render_case_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    case: Case,
    *,
    failed: tuple[str, int, Form] | None = None,
    status: int = 200,
) -> TemplateResponse:
    actor, now = _actor(request), clock.now()
    people_only = request.GET.get("log") == "notes"
    page = case_page(case, now, people_only=people_only)
    choices = _choices(case, page.tasks)

    def bind(spec: ActionSpec, target_id: int, state: str) -> BoundAction:
        if failed and failed[0] == spec.name and failed[1] == target_id:
            return BoundAction(spec, failed[2], target_id, state)
        return BoundAction(spec, _form(spec, target_id, choices), target_id, state)

    for task in page.tasks:
        task.actions = [bind(s, task.pk, task.state) for s in task_actions(task, actor)]
        task.is_mine = actor.user is not None and task.assignee_id == actor.user.pk
    actions = [bind(s, case.pk, case.state) for s in case_actions(case, actor)]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Case #{case.pk} · {case.account.name}",
        "opts": Case._meta,
        "page": page,
        "case": case,
        "case_actions": actions,
        "account": case.account,
        "now": now,
        "is_manager": actor.is_manager,
        "people_only": people_only,
    }
    return TemplateResponse(request, "workspace/case.html", context, status=status)


def case_view(request: HttpRequest, model_admin: admin.ModelAdmin, object_id: str) -> HttpResponse:
    case = _visible_case(request, model_admin, object_id)
    if case is None:
        return _missing(request, object_id)
    return render_case_page(request, model_admin, case)


def case_act_view(
    request: HttpRequest, model_admin: admin.ModelAdmin, object_id: str
) -> HttpResponse:
    """Run one action from the case page. The service decides; stale pages are caught."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    case = _visible_case(request, model_admin, object_id)
    if case is None:
        return _missing(request, object_id)
    spec = ACTIONS.get(request.POST.get("action", ""))
    if spec is None:
        messages.error(request, "Unknown action: nothing was changed.")
        return HttpResponseRedirect(case_url(case.pk))
    target: Case | Task | None = case
    if spec.target == "task":
        task_id = _int(request.POST.get("task"))
        target = case.tasks.select_related("assignee").filter(pk=task_id).first()
        if target is None:
            messages.error(request, "That task is not part of this case: nothing was changed.")
            return HttpResponseRedirect(case_url(case.pk))
    label = target.step_key if isinstance(target, Task) else f"Case #{case.pk}"

    stale = _stale(target, request.POST.get("seen_state", ""), _actor(request))
    if stale:
        messages.warning(request, f"{stale} Nothing was changed; this is the page as it is now.")
        return HttpResponseRedirect(case_url(case.pk))

    page_tasks = list(case.tasks.all()) if spec.name == "reopen" else []
    form = _form(spec, target.pk, _choices(case, page_tasks), request.POST)
    if not form.is_valid():
        messages.error(request, f"{spec.label}: please correct the form below.")
        failed = (spec.name, target.pk, form)
        return render_case_page(request, model_admin, case, failed=failed, status=400)
    try:
        spec.run(target.pk, _actor(request), form.cleaned_data)
    except DomainError as exc:
        # Keep what the person typed: the page comes back with their form open.
        messages.error(request, f"{spec.label} refused: {exc.message}")
        case.refresh_from_db()
        failed = (spec.name, target.pk, form)
        return render_case_page(request, model_admin, case, failed=failed, status=exc.status)
    messages.success(request, spec.done.format(obj=label))
    if _visible_case(request, model_admin, str(case.pk)) is None:
        # The work left this person's queues (a hand-off): the case is no longer theirs.
        return HttpResponseRedirect(reverse("admin:index"))
    return HttpResponseRedirect(case_url(case.pk))


def _stale(target: Case | Task, seen_state: str, actor: Actor) -> str:
    """Why the page the person acted on no longer matches the row, or ''."""
    if not seen_state or seen_state == target.state:
        return ""
    if isinstance(target, Task):
        if (
            target.state == Task.State.IN_PROGRESS
            and target.assignee_id
            and (actor.user is None or target.assignee_id != actor.user.pk)
        ):
            who = target.assignee.get_full_name() or target.assignee.get_username()
            return f"{target.step_key} was already claimed by {who}."
        return (
            f"{target.step_key} changed while you had the page open: it is now "
            f"{target.get_state_display().lower()}."
        )
    state = CaseState(target.state).label.lower()
    return f"The case changed while you had the page open: it is now {state}."


def _visible_case(
    request: HttpRequest, model_admin: admin.ModelAdmin, object_id: str
) -> Case | None:
    # The admin's queryset is scoped to what this person may see: no leak by URL.
    queryset = model_admin.get_queryset(request).select_related(
        "account", "playbook", "playbook_version"
    )
    return queryset.filter(pk=_int(unquote(object_id))).first()


def _missing(request: HttpRequest, object_id: str) -> HttpResponse:
    messages.warning(request, f"Case {object_id} does not exist or is not in your queues.")
    return HttpResponseRedirect(reverse("admin:onboarding_case_changelist"))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
