from onboarding.models.accounts import Account
from onboarding.models.cases import Case, ContextEntry, Task
from onboarding.models.playbooks import Playbook, PlaybookVersion, Step, StepKind
from onboarding.models.queues import Queue
from onboarding.models.signals import Reminder, Signal
from onboarding.models.sla import BusinessCalendar, CalendarDay, SlaPolicy, SlaTimer

__all__ = [
    "Account",
    "BusinessCalendar",
    "CalendarDay",
    "Case",
    "ContextEntry",
    "Playbook",
    "PlaybookVersion",
    "Queue",
    "Reminder",
    "Signal",
    "SlaPolicy",
    "SlaTimer",
    "Step",
    "StepKind",
    "Task",
]
