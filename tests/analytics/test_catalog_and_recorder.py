"""The catalog rejects what it does not declare; the recorder fills the common
properties and never stores PII; events are append-only."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from analytics.catalog import CATALOG, EventRejected
from analytics.models import AppendOnly, Event
from analytics.recording import record
from onboarding import services
from onboarding.actors import Actor
from tests.conftest import act, task_of


def test_every_catalog_name_is_object_action_in_title_case():
    for name, spec in CATALOG.items():
        assert re.fullmatch(r"([A-Z][a-z]*|SLA)( [A-Z][a-z]*)+", name), name
        assert spec.version >= 1
        assert spec.description


@pytest.mark.django_db
class TestRejections:
    def test_unknown_event_name(self, system):
        with pytest.raises(EventRejected, match="not in the event catalog"):
            record("Case Teleported", actor=system)
        assert Event.objects.count() == 0

    def test_missing_required_property(self, open_case, system):
        with pytest.raises(EventRejected, match="requires property 'task_count'"):
            record("Case Opened", actor=system, case=open_case, properties={})

    def test_wrong_type(self, open_case, system):
        with pytest.raises(EventRejected, match="must be integer"):
            record("Case Opened", actor=system, case=open_case, properties={"task_count": "2"})

    def test_boolean_is_not_an_integer(self, open_case, system):
        with pytest.raises(EventRejected):
            record("Case Opened", actor=system, case=open_case, properties={"task_count": True})

    def test_undeclared_property(self, open_case, system):
        with pytest.raises(EventRejected, match="no properties color"):
            record(
                "Case Opened",
                actor=system,
                case=open_case,
                properties={"task_count": 2, "color": "red"},
            )

    def test_null_for_a_non_nullable_property(self, open_case, system):
        with pytest.raises(EventRejected, match="may not be null"):
            record("Case Opened", actor=system, case=open_case, properties={"task_count": None})


@pytest.mark.django_db
def test_pii_flagged_properties_are_never_stored(system):
    account, _ = services.account_upsert(
        external_id="acme-1", name="Acme", actor=system, contact_email="ceo@acme.example"
    )

    event = Event.objects.get(account=account, name="Account Created")
    assert "contact_email" not in event.properties
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM analytics_event WHERE properties::text LIKE %s",
            ["%ceo@acme.example%"],
        )
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db
def test_common_properties_are_filled_from_the_case(open_case, agent_a):
    task = services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))

    event = Event.objects.get(task=task, name="Step Claimed")

    version = open_case.playbook_version
    assert event.account_id == open_case.account_id
    assert event.case_id == open_case.pk
    assert event.step_key == "kickoff"
    assert (event.playbook_key, event.playbook_version) == (version.playbook.key, version.number)
    assert (event.actor_type, event.actor_id, event.source) == ("agent", str(agent_a.pk), "test")
    assert event.segmentation == {
        "plan": "growth",
        "segment": "smb",
        "region": "emea",
        "channel": "",
    }
    assert event.schema_version == CATALOG["Step Claimed"].version
    assert event.uuid is not None
    assert event.occurred_at <= event.recorded_at


@pytest.mark.django_db
def test_segmentation_is_a_snapshot_taken_when_the_event_happened(open_case, agent_a, system):
    services.account_upsert(
        external_id=open_case.account.external_id, actor=system, plan="enterprise"
    )

    services.task_claim(task_id=task_of(open_case, "kickoff").pk, actor=act(agent_a))

    opened = Event.objects.get(case=open_case, name="Case Opened")
    claimed = Event.objects.get(case=open_case, name="Step Claimed")
    assert opened.segmentation["plan"] == "growth"
    assert claimed.segmentation["plan"] == "enterprise"
    updated = Event.objects.get(account=open_case.account, name="Account Updated")
    assert updated.properties == {"changed_fields": ["plan"]}


@pytest.mark.django_db
def test_events_are_append_only(open_case):
    event = Event.objects.filter(case=open_case).first()

    event.name = "Case Closed"
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        Event.objects.filter(pk=event.pk).update(name="x")
    assert Event.objects.get(pk=event.pk).name != "Case Closed"


@pytest.mark.django_db
def test_event_uuid_is_unique(open_case):
    from django.db import IntegrityError, transaction

    first = Event.objects.filter(case=open_case).first()
    clone = Event(
        **{
            f.attname: getattr(first, f.attname)
            for f in Event._meta.concrete_fields
            if f.attname != "id"
        }
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        clone.save()


@pytest.mark.django_db
def test_a_note_is_logged_for_humans_and_counted_as_an_event(open_case, agent_a):
    entry = services.case_add_note(
        case_id=open_case.pk, actor=act(agent_a), body="Customer prefers email"
    )

    assert entry.body == "Customer prefers email"
    event = Event.objects.get(case=open_case, name="Note Added")
    assert event.properties == {"length": len("Customer prefers email")}


@pytest.mark.django_db
def test_an_agent_of_other_queues_cannot_add_notes(open_case, outsider):
    from onboarding.errors import Forbidden

    with pytest.raises(Forbidden):
        services.case_add_note(case_id=open_case.pk, actor=act(outsider), body="hi")
    assert not Event.objects.filter(name="Note Added").exists()


@pytest.mark.django_db
def test_integration_actor_is_recorded_as_api(open_case):
    services.case_put_on_hold(
        case_id=open_case.pk, actor=Actor.integration("tok_9"), reason="customer asked"
    )

    event = Event.objects.get(case=open_case, name="Case Put On Hold")
    assert (event.actor_type, event.actor_id, event.source) == ("api", "tok_9", "api")
    assert event.properties["reason"] == "customer asked"
