"""Small formatting helpers for the workspace pages."""

from __future__ import annotations

from datetime import datetime

from django import template

register = template.Library()


@register.filter
def wait_since(since: datetime | None, now: datetime) -> str:
    """`3d 4h`, `2h 05m`, `12m`: wall-clock time since `since` (how long it has waited)."""
    if since is None:
        return ""
    minutes = max(int((now - since).total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
