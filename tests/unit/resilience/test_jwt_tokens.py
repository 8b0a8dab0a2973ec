"""JWT verification: signatures, pinned algorithms, claims, JWKS caching and claim-to-permission mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from cmdgate.auth.authorizer import AuthenticationFailed
from cmdgate.auth.jwt_tokens import JwtIssuer, JwtVerifier, looks_like_jwt, parse_jwt_issuers
from cmdgate.auth.permissions import Principal

NOW = 1_700_000_000.0
IDP = "https://idp.example.com/"
IDP_JWKS = "https://idp.example.com/.well-known/jwks.json"
OTHER = "https://other.example.org"
OTHER_JWKS = "https://other.example.org/jwks"
SUPA = "https://project.supabase.co/auth/v1"
SUPA_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:supabase-jwt-AbCdEf"
SUPA_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


class FakeClock:
    """Moves only when told, so TTLs and leeways are crossed without sleeping."""

    def __init__(self, start: float = NOW) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JwksServer:
    """Serves one JWKS document per URL through httpx.MockTransport and counts the requests."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if url not in self.documents:
            return httpx.Response(404)
        # The real document even on an error status: a non-200 answer must not be trusted whatever its body.
        return httpx.Response(self.status, json=self.documents[url])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}  # no `alg`: the kty/crv must then decide


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jwks(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> JwksServer:
    server = JwksServer()
    server.documents[IDP_JWKS] = {"keys": [rsa_jwk(rsa_key, "rsa-1"), ec_jwk(ec_key, "ec-1")]}
    server.documents[OTHER_JWKS] = {"keys": [rsa_jwk(rsa_key, "rsa-1")]}
    return server


@pytest.fixture
def http(jwks: JwksServer) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(jwks.handler)) as client:
        yield client


@pytest.fixture
def secrets() -> dict[str, str]:
    return {SUPA_ARN: SUPA_SECRET}


@pytest.fixture
def secret_calls() -> list[str]:
    return []


@pytest.fixture
def secret_provider(secrets: dict[str, str], secret_calls: list[str]) -> Callable[[str], str]:
    def provide(arn: str) -> str:
        secret_calls.append(arn)
        return secrets[arn]

    return provide


def idp_issuer(**overrides: Any) -> JwtIssuer:
    config: dict[str, Any] = {
        "issuer": IDP,
        "audience": "cmdgate",
        "algorithms": ["RS256", "ES256"],
        "jwks_url": IDP_JWKS,
        "claim_permissions": {"groups=deployers": ["commands.run:deploy.*"]},
    }
    return JwtIssuer.model_validate({**config, **overrides})


def supa_issuer(**overrides: Any) -> JwtIssuer:
    config: dict[str, Any] = {
        "issuer": SUPA,
        "audience": "authenticated",
        "algorithms": ["HS256"],
        "hs256_secret_arn": SUPA_ARN,
        "claim_permissions": {"role=service_role": ["admin"]},
        "default_permissions": ["commands.list"],
    }
    return JwtIssuer.model_validate({**config, **overrides})


def other_issuer() -> JwtIssuer:
    return JwtIssuer(issuer=OTHER, audience="cmdgate", algorithms=("RS256",), jwks_url=OTHER_JWKS)


@pytest.fixture
def verifier(clock: FakeClock, http: httpx.Client, secret_provider: Callable[[str], str]) -> JwtVerifier:
    return JwtVerifier(
        [idp_issuer(), supa_issuer(), other_issuer()], http=http, secret_provider=secret_provider, clock=clock
    )


def claims(iss: str | None = IDP, aud: str | None = "cmdgate", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": iss, "aud": aud, "sub": "user-1", "exp": int(NOW) + 300, "iat": int(NOW)}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def rs256(key: rsa.RSAPrivateKey, payload: dict[str, Any], kid: str | None = "rsa-1") -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid} if kid else None)


def es256(key: ec.EllipticCurvePrivateKey, payload: dict[str, Any], kid: str | None = "ec-1") -> str:
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid} if kid else None)


def hs256(payload: dict[str, Any], secret: str | bytes = SUPA_SECRET, header: dict[str, Any] | None = None) -> str:
    """Signed by hand so that any secret can be used, even a PEM public key PyJWT would refuse."""
    signing_input = f"{b64json(header or {'alg': 'HS256', 'typ': 'JWT'})}.{b64json(payload)}"
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as excinfo:
        verifier.verify(token)
    return str(excinfo.value)


# --- valid tokens ---------------------------------------------------------------------------


def test_valid_rs256_token_gives_the_issuer_scoped_principal(verifier, rsa_key):
    token = rs256(rsa_key, claims(permissions=["commands.run:echo", "state.read:team-a.*"]))

    principal = verifier.verify(token)

    assert principal == Principal(
        principal_id=f"{IDP}|user-1",
        permissions=("commands.run:echo", "state.read:team-a.*"),
        kind="jwt",
    )


def test_valid_es256_token_is_accepted(verifier, ec_key):
    principal = verifier.verify(es256(ec_key, claims(sub="svc-9", permissions=["commands.list"])))

    assert principal.principal_id == f"{IDP}|svc-9"
    assert principal.permissions == ("commands.list",)
    assert principal.kind == "jwt"


def test_valid_hs256_token_maps_claims_to_permissions(verifier, secret_calls):
    token = hs256(claims(iss=SUPA, aud="authenticated", role="service_role"))

    principal = verifier.verify(token)

    assert principal.principal_id == f"{SUPA}|user-1"
    assert principal.permissions == ("admin", "commands.list")
    assert principal.is_admin
    assert secret_calls == [SUPA_ARN]


def test_unmapped_claim_value_gets_only_the_defaults(verifier):
    principal = verifier.verify(hs256(claims(iss=SUPA, aud="authenticated", role="authenticated")))

    assert principal.permissions == ("commands.list",)
    assert not principal.is_admin


def test_list_claim_maps_by_membership(verifier, rsa_key):
    token = rs256(rsa_key, claims(permissions=["commands.list"], groups=["readers", "deployers"]))

    assert verifier.verify(token).permissions == ("commands.list", "commands.run:deploy.*")


def test_permissions_are_deduplicated_in_order(verifier, rsa_key):
    token = rs256(
        rsa_key,
        claims(permissions=["commands.run:deploy.*", "commands.list", "commands.list"], groups=["deployers"]),
    )

    assert verifier.verify(token).permissions == ("commands.run:deploy.*", "commands.list")


def test_only_string_permissions_in_a_list_count(verifier, rsa_key):
    mixed = verifier.verify(rs256(rsa_key, claims(permissions=["commands.list", 7, {"p": "admin"}, None, ""])))
    not_a_list = verifier.verify(rs256(rsa_key, claims(permissions="admin")))

    assert mixed.permissions == ("commands.list",)
    assert not_a_list.permissions == ()


def test_permissions_claim_name_is_configurable(clock, http, secret_provider, rsa_key):
    verifier = JwtVerifier(
        [idp_issuer(permissions_claim="https://cmdgate.example.com/perms")],
        http=http,
        secret_provider=secret_provider,
        clock=clock,
    )
    payload = claims(permissions=["admin"])
    payload["https://cmdgate.example.com/perms"] = ["commands.list"]
    token = rs256(rsa_key, payload)

    assert verifier.verify(token).permissions == ("commands.list",)


def test_two_issuers_with_the_same_sub_give_different_principals(verifier, rsa_key):
    from_idp = verifier.verify(rs256(rsa_key, claims(iss=IDP, sub="alice")))
    from_other = verifier.verify(rs256(rsa_key, claims(iss=OTHER, sub="alice")))
    from_supa = verifier.verify(hs256(claims(iss=SUPA, aud="authenticated", sub="alice")))

    ids = {from_idp.principal_id, from_other.principal_id, from_supa.principal_id}
    assert ids == {f"{IDP}|alice", f"{OTHER}|alice", f"{SUPA}|alice"}


# --- time claims ----------------------------------------------------------------------------


def test_expired_beyond_leeway_is_refused(verifier, rsa_key):
    assert refused(verifier, rs256(rsa_key, claims(exp=int(NOW) - 61))) == "token expired"
    assert refused(verifier, rs256(rsa_key, claims(exp=int(NOW) - 60))) == "token expired"


def test_expired_within_leeway_is_accepted(verifier, rsa_key):
    assert verifier.verify(rs256(rsa_key, claims(exp=int(NOW) - 59))).principal_id == f"{IDP}|user-1"


def test_expiry_follows_the_injected_clock(verifier, clock, rsa_key):
    token = rs256(rsa_key, claims(exp=int(NOW) + 100))
    verifier.verify(token)

    clock.advance(161)

    assert refused(verifier, token) == "token expired"


def test_leeway_is_per_issuer(clock, http, secret_provider, rsa_key):
    strict = JwtVerifier([idp_issuer(leeway_s=0)], http=http, secret_provider=secret_provider, clock=clock)

    assert refused(strict, rs256(rsa_key, claims(exp=int(NOW) - 1))) == "token expired"


def test_nbf_in_the_future_is_refused(verifier, rsa_key):
    assert refused(verifier, rs256(rsa_key, claims(nbf=int(NOW) + 120))) == "token not yet valid"


def test_nbf_within_leeway_is_accepted(verifier, rsa_key):
    assert verifier.verify(rs256(rsa_key, claims(nbf=int(NOW) + 30))).kind == "jwt"


def test_iat_in_the_future_is_refused(verifier, rsa_key):
    assert refused(verifier, rs256(rsa_key, claims(iat=int(NOW) + 120))) == "token issued in the future"
    assert verifier.verify(rs256(rsa_key, claims(iat=int(NOW) + 30))).kind == "jwt"


def test_missing_or_malformed_exp_is_refused(verifier, rsa_key):
    assert refused(verifier, rs256(rsa_key, claims(exp=None))) == "missing claim exp"
    assert refused(verifier, rs256(rsa_key, claims(exp=str(int(NOW) + 300)))) == "malformed exp"
    assert refused(verifier, rs256(rsa_key, claims(exp=True))) == "malformed exp"


# --- audience, issuer, subject --------------------------------------------------------------


def test_wrong_audience_is_refused(verifier, rsa_key):
    assert refused(verifier, rs256(rsa_key, claims(aud="someone-else"))) == "wrong audience"
    assert refused(verifier, rs256(rsa_key, claims(aud=None))) == "missing claim aud"


def test_unknown_issuer_is_refused_without_fetching_keys(verifier, rsa_key, jwks):
    assert refused(verifier, rs256(rsa_key, claims(iss="https://evil.example.com/"))) == "unknown issuer"
    assert refused(verifier, rs256(rsa_key, claims(iss=IDP.rstrip("/")))) == "unknown issuer"
    assert refused(verifier, rs256(rsa_key, claims(iss=None))) == "unknown issuer"
    assert jwks.requests == []


def verifier_for(clock: FakeClock, http: httpx.Client, secret_provider: Callable[[str], str]) -> JwtVerifier:
    return JwtVerifier([idp_issuer(), other_issuer()], http=http, secret_provider=secret_provider, clock=clock)


def test_a_token_is_checked_against_its_own_issuers_keys(clock, http, secret_provider, rsa_key, other_rsa_key, jwks):
    # Same kid, different key: claiming OTHER means OTHER's JWKS decides, not IDP's.
    jwks.documents[OTHER_JWKS] = {"keys": [rsa_jwk(other_rsa_key, "rsa-1")]}
    verifier = verifier_for(clock, http, secret_provider)

    assert verifier.verify(rs256(rsa_key, claims(iss=IDP))).principal_id == f"{IDP}|user-1"
    assert refused(verifier, rs256(rsa_key, claims(iss=OTHER))) == "bad signature"


def test_missing_or_empty_sub_is_refused(verifier, rsa_key):
    assert refused(verifier, rs256(rsa_key, claims(sub=None))) == "missing claim sub"
    assert refused(verifier, rs256(rsa_key, claims(sub=""))) == "missing subject"
    assert refused(verifier, rs256(rsa_key, claims(sub=42))) == "invalid token"


# --- signatures and algorithms --------------------------------------------------------------


def test_signature_by_another_key_is_refused(verifier, other_rsa_key):
    assert refused(verifier, rs256(other_rsa_key, claims())) == "bad signature"


def test_tampered_payload_is_refused(verifier, rsa_key):
    header, _, signature = rs256(rsa_key, claims(permissions=["commands.list"])).split(".")
    forged = f"{header}.{b64json(claims(permissions=['admin']))}.{signature}"

    assert refused(verifier, forged) == "bad signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(verifier, jwks, alg):
    token = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(claims(permissions=['admin']))}."

    assert refused(verifier, token) == "algorithm not allowed"
    assert jwks.requests == []


def test_alg_none_is_refused_for_the_hs256_issuer_too(verifier, secret_calls):
    token = f"{b64json({'alg': 'none'})}.{b64json(claims(iss=SUPA, aud='authenticated', role='service_role'))}."

    assert refused(verifier, token) == "algorithm not allowed"
    assert secret_calls == []


def test_hs256_token_signed_with_the_rsa_public_key_is_refused(verifier, rsa_key, jwks):
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hs256(claims(permissions=["admin"]), secret=public_pem, header={"alg": "HS256", "kid": "rsa-1"})

    assert refused(verifier, token) == "algorithm not allowed"
    assert jwks.requests == []  # refused on the pinned algorithms, before any key is looked at


def test_rs256_token_presented_to_the_hs256_issuer_is_refused(verifier, rsa_key, secret_calls):
    token = rs256(rsa_key, claims(iss=SUPA, aud="authenticated", role="service_role"))

    assert refused(verifier, token) == "algorithm not allowed"
    assert secret_calls == []


def test_hs256_token_with_the_wrong_secret_is_refused(verifier):
    token = hs256(claims(iss=SUPA, aud="authenticated"), secret="another-secret-that-is-also-32-bytes-or-more")

    assert refused(verifier, token) == "bad signature"


def test_algorithm_outside_the_issuer_pin_is_refused(clock, http, secret_provider, ec_key):
    rs_only = JwtVerifier([idp_issuer(algorithms=["RS256"])], http=http, secret_provider=secret_provider, clock=clock)

    assert refused(rs_only, es256(ec_key, claims())) == "algorithm not allowed"


def test_kid_of_a_key_of_the_wrong_type_is_refused(verifier, ec_key):
    # An ES256 signature pointed at the RSA key's kid: kty must agree with alg.
    assert refused(verifier, es256(ec_key, claims(), kid="rsa-1")) == "no matching signing key"


def test_jwks_oct_key_is_never_used(verifier, jwks):
    shared = "a-shared-secret-published-by-mistake-0123456789"
    jwks.documents[IDP_JWKS]["keys"].append({"kty": "oct", "kid": "oct-1", "k": b64url(shared.encode())})

    token = hs256(claims(permissions=["admin"]), secret=shared, header={"alg": "HS256", "kid": "oct-1"})

    assert refused(verifier, token) == "algorithm not allowed"


def test_token_without_kid_uses_the_only_fitting_key(clock, http, secret_provider, rsa_key, jwks):
    jwks.documents[IDP_JWKS] = {"keys": [rsa_jwk(rsa_key, "rsa-1")]}
    verifier = verifier_for(clock, http, secret_provider)

    assert verifier.verify(rs256(rsa_key, claims(), kid=None)).principal_id == f"{IDP}|user-1"


def test_token_without_kid_uses_the_key_whose_type_fits_the_algorithm(verifier, rsa_key, ec_key, jwks):
    # Neither key names its alg, so only kty/crv tell that the EC key is the one for ES256.
    rsa_without_alg = {k: v for k, v in rsa_jwk(rsa_key, "rsa-1").items() if k != "alg"}
    jwks.documents[IDP_JWKS] = {"keys": [rsa_without_alg, ec_jwk(ec_key, "ec-1")]}

    assert verifier.verify(es256(ec_key, claims(), kid=None)).principal_id == f"{IDP}|user-1"


def test_jwk_whose_alg_disagrees_with_the_token_is_not_used(verifier, rsa_key, jwks):
    jwks.documents[IDP_JWKS] = {"keys": [{**rsa_jwk(rsa_key, "rsa-1"), "alg": "RS512"}]}

    assert refused(verifier, rs256(rsa_key, claims())) == "no matching signing key"


def test_encryption_jwk_is_not_used_for_signatures(verifier, rsa_key, jwks):
    jwks.documents[IDP_JWKS] = {"keys": [{**rsa_jwk(rsa_key, "rsa-1"), "use": "enc"}]}

    assert refused(verifier, rs256(rsa_key, claims())) == "no matching signing key"


def test_token_without_kid_is_refused_when_the_key_is_ambiguous(verifier, rsa_key, other_rsa_key, jwks):
    jwks.documents[IDP_JWKS]["keys"].append(rsa_jwk(other_rsa_key, "rsa-2"))

    assert refused(verifier, rs256(rsa_key, claims(), kid=None)) == "no matching signing key"


def test_short_hs256_secret_is_refused(clock, http, secrets):
    secrets[SUPA_ARN] = "short"
    verifier = JwtVerifier([supa_issuer()], http=http, secret_provider=secrets.__getitem__, clock=clock)

    assert refused(verifier, hs256(claims(iss=SUPA, aud="authenticated"), secret="short")) == "issuer key unusable"


def test_failing_secret_provider_is_an_authentication_failure(clock, http):
    def broken(arn: str) -> str:
        raise RuntimeError("throttled")

    verifier = JwtVerifier([supa_issuer()], http=http, secret_provider=broken, clock=clock)

    assert refused(verifier, hs256(claims(iss=SUPA, aud="authenticated"))) == "issuer secret unavailable"


# --- malformed tokens -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "x.y.z",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        f"{b64url(b'not json')}.{b64json({'sub': 'x'})}.",
        f"{b64json(['alg', 'RS256'])}.{b64json({'sub': 'x'})}.c2ln",
        f"{b64json({'alg': 'RS256'})}.{b64url(b'not json')}.c2ln",
        f"{b64json({'alg': 'RS256'})}.{b64json([1, 2])}.c2ln",
        f"{b64json({'alg': 'RS256'})}.{b64json(claims())}.c2ln" + "A" * 9000,
        "cg_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdef",
    ],
)
def test_garbage_is_an_authentication_failure(verifier, token):
    refused(verifier, token)


def test_non_string_kid_is_refused(verifier, rsa_key):
    _, payload, signature = rs256(rsa_key, claims()).split(".")

    assert refused(verifier, f"{b64json({'alg': 'RS256', 'kid': 7})}.{payload}.{signature}") == "malformed token"


def test_failure_reasons_carry_no_token_content(verifier, rsa_key, other_rsa_key):
    secret_sub = "sub-7f3a9c"
    tokens = [
        rs256(other_rsa_key, claims(sub=secret_sub)),
        rs256(rsa_key, claims(sub=secret_sub, aud="aud-7f3a9c")),
        rs256(rsa_key, claims(sub=secret_sub, iss="https://iss-7f3a9c.example/")),
        rs256(rsa_key, claims(sub=secret_sub), kid="kid-7f3a9c"),
    ]
    for token in tokens:
        reason = refused(verifier, token)
        assert "7f3a9c" not in reason
        assert token not in reason


def test_looks_like_jwt_routes_between_jwts_and_api_keys(rsa_key):
    assert looks_like_jwt(rs256(rsa_key, claims()))
    assert looks_like_jwt(f"{b64json({'alg': 'none'})}.{b64json({})}.")
    assert not looks_like_jwt("cg_" + "A" * 43)
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")
    assert not looks_like_jwt("a b.c.d")
    assert not looks_like_jwt("")
    assert not looks_like_jwt("a." + "b" * 9000 + ".c")


# --- JWKS fetching and caching --------------------------------------------------------------


def test_jwks_is_cached_then_refetched_after_the_ttl(verifier, clock, rsa_key, ec_key, jwks):
    verifier.verify(rs256(rsa_key, claims()))
    clock.advance(300)
    verifier.verify(es256(ec_key, claims(exp=int(NOW) + 900)))

    assert jwks.requests == [IDP_JWKS]

    clock.advance(301)
    verifier.verify(rs256(rsa_key, claims(exp=int(NOW) + 900)))

    assert jwks.requests == [IDP_JWKS, IDP_JWKS]


def test_jwks_ttl_is_configurable(clock, http, secret_provider, rsa_key, jwks):
    verifier = JwtVerifier([idp_issuer()], http=http, secret_provider=secret_provider, clock=clock, jwks_ttl_s=60)
    token = rs256(rsa_key, claims())
    verifier.verify(token)
    clock.advance(59)
    verifier.verify(token)
    clock.advance(2)
    verifier.verify(token)

    assert len(jwks.requests) == 2


def test_each_issuer_has_its_own_jwks_cache(verifier, rsa_key, jwks):
    verifier.verify(rs256(rsa_key, claims(iss=IDP)))
    verifier.verify(rs256(rsa_key, claims(iss=OTHER)))
    verifier.verify(rs256(rsa_key, claims(iss=IDP)))

    assert jwks.requests == [IDP_JWKS, OTHER_JWKS]


def test_unknown_kids_refetch_at_most_once_a_minute(verifier, clock, rsa_key, jwks):
    verifier.verify(rs256(rsa_key, claims()))
    clock.advance(61)

    for n in range(50):
        assert refused(verifier, rs256(rsa_key, claims(exp=int(NOW) + 900), kid=f"random-{n}")) == (
            "no matching signing key"
        )
    assert len(jwks.requests) == 2  # the first fetch, and one refetch for the first unknown kid

    clock.advance(59)
    refused(verifier, rs256(rsa_key, claims(exp=int(NOW) + 900), kid="random-late"))
    assert len(jwks.requests) == 2

    clock.advance(1)
    refused(verifier, rs256(rsa_key, claims(exp=int(NOW) + 900), kid="random-later"))
    assert len(jwks.requests) == 3


def test_unknown_kid_right_after_a_fetch_does_not_refetch(verifier, rsa_key, jwks):
    verifier.verify(rs256(rsa_key, claims()))

    refused(verifier, rs256(rsa_key, claims(), kid="random"))

    assert len(jwks.requests) == 1


def test_rotated_key_is_found_by_refetching(verifier, clock, rsa_key, other_rsa_key, jwks):
    verifier.verify(rs256(rsa_key, claims()))
    jwks.documents[IDP_JWKS]["keys"].append(rsa_jwk(other_rsa_key, "rsa-2"))
    clock.advance(61)

    principal = verifier.verify(rs256(other_rsa_key, claims(exp=int(NOW) + 900), kid="rsa-2"))

    assert principal.principal_id == f"{IDP}|user-1"
    assert len(jwks.requests) == 2


def test_a_replaced_key_is_used_once_refetched(verifier, clock, rsa_key, other_rsa_key, jwks):
    verifier.verify(rs256(rsa_key, claims(), kid=None))
    jwks.documents[IDP_JWKS] = {"keys": [rsa_jwk(other_rsa_key, "rsa-2")]}
    clock.advance(601)

    assert verifier.verify(rs256(other_rsa_key, claims(exp=int(NOW) + 900), kid=None)).kind == "jwt"
    assert refused(verifier, rs256(rsa_key, claims(exp=int(NOW) + 900), kid=None)) == "bad signature"


def test_unreachable_jwks_is_an_authentication_failure(verifier, rsa_key, jwks):
    jwks.status = 503

    assert refused(verifier, rs256(rsa_key, claims())) == "issuer signing keys unavailable"


def test_failed_fetch_is_retried_after_a_short_backoff_not_on_every_request(verifier, clock, rsa_key, jwks):
    jwks.status = 503
    for _ in range(20):
        refused(verifier, rs256(rsa_key, claims()))
    assert len(jwks.requests) == 1

    jwks.status = 200
    clock.advance(5)

    assert verifier.verify(rs256(rsa_key, claims())).kind == "jwt"
    assert len(jwks.requests) == 2


def test_transport_error_is_an_authentication_failure(clock, secret_provider, rsa_key):
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with httpx.Client(transport=httpx.MockTransport(unreachable)) as client:
        verifier = JwtVerifier([idp_issuer()], http=client, secret_provider=secret_provider, clock=clock)
        assert refused(verifier, rs256(rsa_key, claims())) == "issuer signing keys unavailable"


@pytest.mark.parametrize("document", [["not", "an", "object"], {"keys": "nope"}, {"no_keys": []}])
def test_malformed_jwks_is_an_authentication_failure(verifier, rsa_key, jwks, document):
    jwks.documents[IDP_JWKS] = document

    assert refused(verifier, rs256(rsa_key, claims())) == "issuer signing keys unavailable"


def test_stale_keys_serve_while_the_jwks_endpoint_is_down(verifier, clock, rsa_key, jwks):
    verifier.verify(rs256(rsa_key, claims()))
    jwks.status = 503
    clock.advance(601)

    assert verifier.verify(rs256(rsa_key, claims(exp=int(NOW) + 900))).principal_id == f"{IDP}|user-1"
    assert len(jwks.requests) == 2


# --- configuration --------------------------------------------------------------------------


def test_issuers_parse_from_a_json_env_value():
    raw = json.dumps(
        [
            {
                "issuer": IDP,
                "audience": "cmdgate",
                "algorithms": ["RS256", "ES256"],
                "jwks_url": IDP_JWKS,
                "claim_permissions": {"groups=deployers": ["commands.run:deploy.*"]},
            },
            {
                "issuer": SUPA,
                "audience": "authenticated",
                "algorithms": ["HS256"],
                "hs256_secret_arn": SUPA_ARN,
                "leeway_s": 30,
                "claim_permissions": {"role=service_role": ["admin"]},
                "default_permissions": ["commands.list"],
            },
        ]
    )

    idp, supa = parse_jwt_issuers(raw)

    assert idp.uses_jwks and idp.leeway_s == 60 and idp.permissions_claim == "permissions"
    assert not supa.uses_jwks and supa.leeway_s == 30
    assert supa.claim_permissions == {"role=service_role": ("admin",)}
    assert parse_jwt_issuers("") == ()
    assert parse_jwt_issuers("  ") == ()


@pytest.mark.parametrize(
    "overrides",
    [
        {"algorithms": ["RS256", "HS256"]},
        {"algorithms": ["ES256", "HS256"], "hs256_secret_arn": SUPA_ARN},
        {"algorithms": []},
        {"algorithms": ["none"]},
        {"algorithms": ["PS256"]},
        {"hs256_secret_arn": SUPA_ARN},
        {"jwks_url": None},
        {"jwks_url": "http://idp.example.com/jwks"},
        {"issuer": "https://a|b"},
        {"issuer": ""},
        {"audience": ""},
        {"claim_permissions": {"role": ["admin"]}},
        {"claim_permissions": {"=x": ["admin"]}},
        {"leeway_s": -1},
        {"unknown_knob": True},
    ],
)
def test_invalid_jwks_issuer_config_is_refused(overrides):
    with pytest.raises(ValidationError):
        idp_issuer(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"jwks_url": IDP_JWKS},
        {"hs256_secret_arn": None},
        {"algorithms": ["HS256", "RS256"]},
    ],
)
def test_invalid_secret_issuer_config_is_refused(overrides):
    with pytest.raises(ValidationError):
        supa_issuer(**overrides)


def _raw_issuer(**overrides: Any) -> str:
    return json.dumps([{**idp_issuer().model_dump(mode="json"), **overrides}])


@pytest.mark.parametrize("url", ["http://127.0.0.1:4566/jwks", "http://localhost:4566/jwks", "http://[::1]:80/jwks"])
def test_loopback_jwks_over_http_is_allowed_only_where_the_stack_says_so(url):
    (issuer,) = parse_jwt_issuers(_raw_issuer(jwks_url=url), allow_loopback_http=True)
    assert issuer.uses_jwks
    with pytest.raises(ValidationError, match="must be https"):
        parse_jwt_issuers(_raw_issuer(jwks_url=url))
    with pytest.raises(ValidationError, match="must be https"):
        idp_issuer(jwks_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.com/.well-known/jwks.json",
        "http://10.0.0.1/jwks",
        "http://127.0.0.1.evil.example/jwks",
        "http://localhost.evil.example/jwks",
        "ftp://127.0.0.1/jwks",
        "https:///jwks",
    ],
)
def test_a_non_loopback_or_non_https_jwks_url_is_refused_at_config_load_whatever_the_setting(url):
    for allow in (False, True):
        with pytest.raises(ValidationError, match="jwks_url"):
            parse_jwt_issuers(_raw_issuer(jwks_url=url), allow_loopback_http=allow)


def test_the_local_stack_setting_reaches_the_issuer_parser(monkeypatch):
    from cmdgate.config import Settings
    from cmdgate.wiring import AwsClients, Services

    raw = _raw_issuer(jwks_url="http://127.0.0.1:9/jwks")
    monkeypatch.setenv("JWT_ISSUERS", raw)
    with pytest.raises(ValidationError, match="must be https"):
        _ = Services(Settings(), AwsClients()).jwt_verifier
    monkeypatch.setenv("JWKS_ALLOW_LOOPBACK_HTTP", "true")
    assert Services(Settings(), AwsClients()).jwt_verifier is not None


def test_an_issuer_s_jwks_ttl_and_refetch_interval_are_its_own(clock, http, secret_provider, rsa_key, jwks):
    issuer = idp_issuer(jwks_ttl_s=10, jwks_refetch_interval_s=2)
    verifier = JwtVerifier([issuer, other_issuer()], http=http, secret_provider=secret_provider, clock=clock)
    verifier.verify(rs256(rsa_key, claims()))
    refused(verifier, rs256(rsa_key, claims(), kid="random-1"))
    assert len(jwks.requests) == 1  # the refetch interval has not passed
    clock.advance(2)
    refused(verifier, rs256(rsa_key, claims(), kid="random-2"))
    refused(verifier, rs256(rsa_key, claims(), kid="random-3"))
    assert len(jwks.requests) == 2  # one refetch per interval
    clock.advance(10)
    verifier.verify(rs256(rsa_key, claims()))
    assert len(jwks.requests) == 3  # past the issuer's TTL, not the verifier's 600 s
    # The other issuer keeps the verifier's defaults: a made-up kid right after its fetch costs nothing.
    verifier.verify(rs256(rsa_key, claims(iss=OTHER)))
    clock.advance(59)
    refused(verifier, rs256(rsa_key, claims(iss=OTHER), kid="random-4"))
    assert jwks.requests.count(OTHER_JWKS) == 1


@pytest.mark.parametrize("overrides", [{"jwks_refetch_interval_s": 0}, {"jwks_ttl_s": 0}, {"jwks_ttl_s": 10**6}])
def test_jwks_cache_times_are_bounded(overrides):
    with pytest.raises(ValidationError):
        idp_issuer(**overrides)


def test_duplicate_issuers_are_refused(http, secret_provider):
    with pytest.raises(ValueError, match="twice"):
        JwtVerifier([idp_issuer(), idp_issuer()], http=http, secret_provider=secret_provider)
    with pytest.raises(ValueError, match="twice"):
        parse_jwt_issuers(json.dumps([idp_issuer().model_dump(), idp_issuer().model_dump()]))


def test_invalid_json_config_is_a_value_error():
    with pytest.raises(ValueError):
        parse_jwt_issuers('[{"issuer": "x"}')
