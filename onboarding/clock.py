"""The application's clock.

Services read time only through `now()`, so the demo seeder can replay 90 days of
history through the real write path (`travel_to`) and tests can pin time.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from datetime import datetime

from django.utils import timezone

_frozen: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("frozen", default=None)


def now() -> datetime:
    return _frozen.get() or timezone.now()


@contextlib.contextmanager
def travel_to(moment: datetime) -> Iterator[None]:
    if timezone.is_naive(moment):
        raise ValueError("travel_to needs an aware datetime")
    token = _frozen.set(moment)
    try:
        yield
    finally:
        _frozen.reset(token)
