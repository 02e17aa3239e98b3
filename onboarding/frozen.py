"""Per-process caches of rows that never change once a case can point at them.

A published playbook version is frozen (DESIGN §2): its number, its playbook's key
and its steps are immutable, and cases only start on published versions. So the
write path need not join or re-read them on every transition; one query per
version or step per process fills these caches.
"""

from __future__ import annotations

from dataclasses import dataclass

from onboarding.models import PlaybookVersion, Step


@dataclass(frozen=True)
class VersionFacts:
    playbook_key: str
    number: int


_versions: dict[int, VersionFacts] = {}
_steps: dict[int, Step] = {}


def version_facts(version_id: int) -> VersionFacts:
    facts = _versions.get(version_id)
    if facts is None:
        version = PlaybookVersion.objects.select_related("playbook").get(pk=version_id)
        facts = VersionFacts(version.playbook.key, version.number)
        if version.is_frozen:  # a draft could still be renumbered or deleted
            _versions[version_id] = facts
    return facts


def step(step_id: int) -> Step:
    """The step definition of a task; never mutate the returned instance."""
    cached = _steps.get(step_id)
    if cached is None:
        cached = Step.objects.select_related("version").get(pk=step_id)
        if cached.version.is_frozen:
            _steps[step_id] = cached
    return cached
