"""Schemathesis fuzzes every operation of /api/schema/ through the WSGI app: whatever it
sends, the API never answers 5xx, and every answer (status, content type, body,
headers) is one the schema documents."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.api.conftest import ALL_SCOPES

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The schema as the running app serves it (loading it needs no database).
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def world(db, open_case, other_queue, exceptions_queue):
    """A case, its account and playbook, and three queues for the examples to hit.

    Like Django's test client, requests must not close the test's connection at their
    end (`close_old_connections` would, since the test holds a transaction open).
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(issue_token) -> dict[str, str]:
    _, secret = issue_token(*ALL_SCOPES, throttle_rate="100000/min")
    return {"Authorization": f"Bearer {secret}"}


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, world, bearer):
    case.call_and_validate(headers=bearer, checks=CHECKS)
