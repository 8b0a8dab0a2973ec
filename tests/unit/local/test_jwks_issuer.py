"""The loopback JWKS issuer of the local stack: served keys, rotation, fetch counting, discovery."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import jwt
import pytest

from cmdgate_local.jwks_issuer import JwksIssuer

ISS = "https://project.supabase.co/auth/v1"


@pytest.fixture
def issuer() -> Iterator[JwksIssuer]:
    with JwksIssuer(ISS) as running:
        yield running


def test_served_keys_verify_the_tokens_it_signs_and_follow_rotation(issuer: JwksIssuer) -> None:
    rs, es = issuer.add_key("RS256"), issuer.add_key("ES256")
    url = issuer.jwks_url("/auth/v1")
    assert url.endswith("/auth/v1/.well-known/jwks.json")
    client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False)
    for kid in (rs, es):
        token = issuer.sign({"iss": ISS, "sub": "u"}, kid)
        key = client.get_signing_key_from_jwt(token)
        assert jwt.decode(token, key, algorithms=["RS256", "ES256"])["sub"] == "u"
    issuer.remove_key(rs)
    document = httpx.get(url).json()
    assert [k["kid"] for k in document["keys"]] == [es]
    assert all("d" not in k for k in document["keys"])  # public halves only
    assert issuer.fetch_count == 3


def test_discovery_names_the_jwks_under_the_same_prefix(issuer: JwksIssuer) -> None:
    discovery = httpx.get(f"{issuer.url}/auth/v1/.well-known/openid-configuration").json()
    assert discovery == {"issuer": ISS, "jwks_uri": issuer.jwks_url("/auth/v1")}
    assert httpx.get(f"{issuer.url}/other").status_code == 404
    assert httpx.post(issuer.jwks_url()).status_code == 405
    assert issuer.fetch_count == 0
