"""API personas: integrations holding tokens with given scopes, staff signed in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api.models import SCOPES, ApiToken

ALL_SCOPES = sorted(SCOPES)


@pytest.fixture(autouse=True)
def _fresh_throttle_buckets() -> None:
    cache.clear()


@pytest.fixture
def issue_token(db: None) -> Callable[..., tuple[ApiToken, str]]:
    def issue(*scopes: str, **fields: Any) -> tuple[ApiToken, str]:
        return ApiToken.issue(name=f"token {len(scopes)} scopes", scopes=list(scopes), **fields)

    return issue


@pytest.fixture
def client_with(issue_token: Callable[..., tuple[ApiToken, str]]) -> Callable[..., APIClient]:
    """An API client holding a fresh token with exactly these scopes."""

    def build(*scopes: str, **fields: Any) -> APIClient:
        token, secret = issue_token(*scopes, **fields)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        client.token = token
        return client

    return build


@pytest.fixture
def integration(client_with: Callable[..., APIClient]) -> APIClient:
    """An integration whose token has every scope."""
    return client_with(*ALL_SCOPES)


@pytest.fixture
def signed_in() -> Callable[..., APIClient]:
    """A browser session of this user (DRF's session auth, as the docs page uses)."""

    def build(user: Any) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    return build
