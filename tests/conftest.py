"""The shared session stack, one per pytest worker, for tests/integration and tests/security alike.

The stack trusts two JWT issuers besides API keys: the HS256 issuer whose secret is in Secrets
Manager (tests/integration/conftest.py JWT_ISSUERS) and a Supabase-shaped JWKS issuer, served on
loopback by `jwks_issuer` (cmdgate_local.jwks_issuer) with one RS256 and one ES256 key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmdgate_local.jwks_issuer import JwksIssuer
from tests.integration.conftest import JWT_ISSUERS, Stack, running_stack

# A Supabase project's access tokens: iss is the project's auth URL, aud `authenticated`; its keys
# are published at `<iss>/.well-known/jwks.json`, here served on loopback under the same path.
SUPABASE_ISSUER = "https://cmdgatetest.supabase.co/auth/v1"
SUPABASE_AUDIENCE = "authenticated"
SUPABASE_RS_KID = "supabase-rs256"
SUPABASE_ES_KID = "supabase-es256"
# Short cache times so rotation is seen within seconds (the defaults are 600 s and 60 s).
SUPABASE_JWKS_TTL_S = 4
SUPABASE_JWKS_REFETCH_INTERVAL_S = 2
SUPABASE_CLAIM_PERMISSIONS = {
    "role=authenticated": ["commands.list", "commands.run:echo"],
    "aal=aal2": ["commands.run:fail"],
}


def shared_jwt_issuers(jwks_url: str) -> str:
    """JwtIssuers of the shared stack: the HS256 issuer and the Supabase-shaped JWKS issuer at `jwks_url`."""
    supabase = {
        "issuer": SUPABASE_ISSUER,
        "audience": SUPABASE_AUDIENCE,
        "algorithms": ["RS256", "ES256"],
        "jwks_url": jwks_url,
        "jwks_ttl_s": SUPABASE_JWKS_TTL_S,
        "jwks_refetch_interval_s": SUPABASE_JWKS_REFETCH_INTERVAL_S,
        "claim_permissions": SUPABASE_CLAIM_PERMISSIONS,
    }
    return json.dumps([*json.loads(JWT_ISSUERS), supabase])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep every test on the shared stack on one pytest-xdist worker, in file order, end-of-run checks last.

    `make test` runs two workers (`-n 2 --dist loadgroup`): one stack then serves every test
    that asks for `stack` (tests/integration, then tests/security), while the other worker runs
    the unit tests and the files that start stacks of their own. The end-of-run checks
    (tests/integration/test_zz_*) move behind every other test, so they see every call made to it.
    """
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("shared-stack"))
    items.sort(key=lambda item: Path(str(item.fspath)).name.startswith("test_zz"))


@pytest.fixture(scope="session")
def jwks_issuer() -> Iterator[JwksIssuer]:
    """The loopback JWKS of the Supabase-shaped issuer; tests may add and remove keys while it runs."""
    issuer = JwksIssuer(SUPABASE_ISSUER)
    issuer.add_key("RS256", SUPABASE_RS_KID)
    issuer.add_key("ES256", SUPABASE_ES_KID)
    with issuer:
        yield issuer


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, jwks_issuer: JwksIssuer) -> Iterator[Stack]:
    """The local stack with the testing command pack on."""
    issuers = shared_jwt_issuers(jwks_issuer.jwks_url("/auth/v1"))
    with running_stack(tmp_path_factory.mktemp("stack"), jwt_issuers=issuers) as running:
        yield running
