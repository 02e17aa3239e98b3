"""Who performs an action: a person in the admin, an integration, or the system.

Every service takes an `actor`; every event records its type and id. Roles are
derived from Django permissions (granted through the demo groups), so a deployment
can shape them in the admin without code changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

ActorType = Literal["system", "agent", "api"]

WORK_PERM = "onboarding.work_tasks"
MANAGE_PERM = "onboarding.manage_onboarding"


@dataclass(eq=False)
class Actor:
    type: ActorType
    id: str
    source: str = "shell"
    user: AbstractBaseUser | None = field(default=None, repr=False)

    @classmethod
    def system(cls, name: str = "automation", *, source: str = "worker") -> Actor:
        return cls(type="system", id=name, source=source)

    @classmethod
    def for_user(cls, user: AbstractBaseUser, *, source: str = "admin") -> Actor:
        return cls(type="agent", id=str(user.pk), source=source, user=user)

    @classmethod
    def integration(cls, token_id: str, *, source: str = "api") -> Actor:
        return cls(type="api", id=token_id, source=source)

    @property
    def is_system(self) -> bool:
        return self.type == "system"

    @property
    def is_integration(self) -> bool:
        return self.type == "api"

    @cached_property
    def is_manager(self) -> bool:
        user = self.user
        return bool(user and user.is_active and user.has_perm(MANAGE_PERM))

    @cached_property
    def is_agent(self) -> bool:
        user = self.user
        return bool(user and user.is_active and (user.has_perm(WORK_PERM) or self.is_manager))

    @cached_property
    def queue_ids(self) -> frozenset[int]:
        """Queues this person works: direct membership or through a group (one query)."""
        if self.user is None:
            return frozenset()
        from django.db.models import Q

        from onboarding.models import Queue

        user = self.user
        return frozenset(
            Queue.objects.filter(Q(members=user) | Q(member_groups__user=user))
            .values_list("id", flat=True)
            .distinct()
        )

    def __str__(self) -> str:
        if self.user is not None:
            return self.user.get_username()
        return f"{self.type}:{self.id}"
