"""The write path. Every state change in the product is one of these functions."""

from onboarding.services.accounts import account_upsert
from onboarding.services.assignment import auto_assign, task_assign
from onboarding.services.cases import (
    case_cancel,
    case_open,
    case_put_on_hold,
    case_reopen,
    case_resume,
)
from onboarding.services.notes import case_add_note
from onboarding.services.playbooks import (
    playbook_create,
    playbook_draft_new_version,
    playbook_version_add_step,
    playbook_version_publish,
    playbook_version_retire,
)
from onboarding.services.tasks import (
    task_claim,
    task_claim_next,
    task_complete,
    task_complete_by_signal,
    task_escalate,
    task_expire_lease,
    task_fail,
    task_hand_off,
    task_release,
    task_resume,
    task_skip,
    task_start,
    task_succeed,
    task_wait_on_customer,
)

__all__ = [
    "account_upsert",
    "auto_assign",
    "case_add_note",
    "case_cancel",
    "case_open",
    "case_put_on_hold",
    "case_reopen",
    "case_resume",
    "playbook_create",
    "playbook_draft_new_version",
    "playbook_version_add_step",
    "playbook_version_publish",
    "playbook_version_retire",
    "task_assign",
    "task_claim",
    "task_claim_next",
    "task_complete",
    "task_complete_by_signal",
    "task_escalate",
    "task_expire_lease",
    "task_fail",
    "task_hand_off",
    "task_release",
    "task_resume",
    "task_skip",
    "task_start",
    "task_succeed",
    "task_wait_on_customer",
]
