"""The REST API for integrations: /api/v1/, token auth with scopes, problem details."""
