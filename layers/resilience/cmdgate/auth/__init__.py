"""Authentication and authorization: API keys, permissions, authorizer policies."""

from cmdgate.auth.apikeys import ApiKeyRecord, ApiKeyStore, BootstrapRefused, generate_api_key, hash_api_key
from cmdgate.auth.authorizer import AuthenticationFailed, authorize_request, bearer_token
from cmdgate.auth.permissions import ADMIN, Principal, pattern_matches
from cmdgate.auth.policy import allow_policy

__all__ = [
    "ADMIN",
    "ApiKeyRecord",
    "ApiKeyStore",
    "AuthenticationFailed",
    "BootstrapRefused",
    "Principal",
    "allow_policy",
    "authorize_request",
    "bearer_token",
    "generate_api_key",
    "hash_api_key",
    "pattern_matches",
]
