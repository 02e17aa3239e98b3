"""The Django admin (Unfold) for onboarding: a window on every model, never a side door.

Rules this module keeps:
- FSM `state` fields are always read-only and never in a form. State changes go
  through `onboarding.services`, here only from the buttons at the top of a page
  (Unfold `actions_detail`), each shown only when this user may run it now.
- Cases, tasks and context entries are created and changed only by services, so
  their admins are view-only. Accounts and new playbooks are saved through
  `account_upsert` / `playbook_create`, so the admin records the same events the
  API does.
- Published playbook versions are frozen: their page and their steps are read-only.
- Writes need the manager role (`onboarding.manage_onboarding`) on top of the model
  permission, the same rule the services apply.
"""

from onboarding.admin import accounts, cases, playbooks, signals, sla  # noqa: F401  (registers the admins)
