"""Account services."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError

from analytics.recording import record
from onboarding import clock
from onboarding.actors import Actor
from onboarding.errors import Forbidden, InvalidInput
from onboarding.models import Account
from onboarding.services._write import atomic_write

EDITABLE_FIELDS = ("name", "plan", "segment", "region", "channel", "properties")


def account_upsert(
    *, external_id: str, actor: Actor, contact_email: str | None = None, **attrs: Any
) -> tuple[Account, bool]:
    """Create the account or update the given attributes. Returns (account, created)."""
    if not (actor.is_system or actor.is_integration or actor.is_manager):
        raise Forbidden(f"{actor} may not change accounts.")
    external_id = (external_id or "").strip()
    if not external_id:
        raise InvalidInput("external_id is required.", field="external_id")
    unknown = set(attrs) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown account fields: {', '.join(sorted(unknown))}.")
    for attempt in range(2):
        try:
            with atomic_write():
                return _upsert(external_id, actor, contact_email, attrs)
        except IntegrityError:
            if attempt:  # a concurrent create won twice: give up loudly
                raise
    raise AssertionError("unreachable")


def _upsert(
    external_id: str, actor: Actor, contact_email: str | None, attrs: dict[str, Any]
) -> tuple[Account, bool]:
    now = clock.now()
    account = Account.objects.select_for_update().filter(external_id=external_id).first()
    if account is None:
        if not attrs.get("name"):
            raise InvalidInput("name is required for a new account.", field="name")
        account = Account.objects.create(
            external_id=external_id, created_at=now, updated_at=now, **attrs
        )
        props: dict[str, Any] = {"external_id": external_id}
        if contact_email:
            props["contact_email"] = contact_email  # catalog marks it PII: not stored
        record("Account Created", actor=actor, account=account, properties=props)
        return account, True
    changed = [f for f, v in attrs.items() if getattr(account, f) != v]
    if changed:
        for field in changed:
            setattr(account, field, attrs[field])
        account.updated_at = now
        account.save(update_fields=[*changed, "updated_at"])
        record(
            "Account Updated", actor=actor, account=account, properties={"changed_fields": changed}
        )
    return account, False
