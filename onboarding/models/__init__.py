from onboarding.models.accounts import Account
from onboarding.models.cases import Case, ContextEntry, Task
from onboarding.models.playbooks import Playbook, PlaybookVersion, Step, StepKind
from onboarding.models.queues import Queue

__all__ = [
    "Account",
    "Case",
    "ContextEntry",
    "Playbook",
    "PlaybookVersion",
    "Queue",
    "Step",
    "StepKind",
    "Task",
]
