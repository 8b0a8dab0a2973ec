"""A loopback JWT issuer for the local stack: RS256/ES256 signing keys, their JWKS, rotation while running.

It stands in for an identity provider's key endpoint (a Supabase project's
`<iss>/.well-known/jwks.json`, an OIDC issuer's `jwks_uri`): any path ending in
`/.well-known/jwks.json` (or `/jwks`) answers the public keys held right now, and
`/.well-known/openid-configuration` a discovery document naming that JWKS. Keys
are added and removed while the stack runs, so the authorizer's JWKS cache can
be watched picking up a new kid and dropping a withdrawn one. Every JWKS fetch
is counted, so a test can bound how often the authorizer asks.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import Any, Literal, Self

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

KeyAlgorithm = Literal["RS256", "ES256"]
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64json(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data, separators=(",", ":")).encode("utf-8"))


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class JwksIssuer:
    """Signing keys of one issuer, served as a JWKS on 127.0.0.1 (port 0: a free one)."""

    def __init__(self, issuer: str, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.issuer = issuer
        self._keys: dict[str, tuple[KeyAlgorithm, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]] = {}
        self._lock = threading.Lock()
        self._fetches: list[float] = []
        self._server: BaseWSGIServer = make_server(
            host, port, self._app, threaded=True, request_handler=_QuietRequestHandler
        )
        self._server.block_on_close = False  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._host = host

    # -- keys ------------------------------------------------------------------------------

    def add_key(self, alg: KeyAlgorithm, kid: str | None = None) -> str:
        """Create and publish a signing key; return its kid."""
        kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        with self._lock:
            self._keys[kid] = (alg, private)
        return kid

    def remove_key(self, kid: str) -> None:
        """Withdraw a key from the JWKS (tokens it signed keep their signature, but lose their key)."""
        with self._lock:
            del self._keys[kid]

    def public_pem(self, kid: str) -> bytes:
        """The public key of `kid` as PEM (what an algorithm-confusion attacker would use as an HMAC secret)."""
        _, private = self._keys[kid]
        return private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], kid: str, *, headers: dict[str, Any] | None = None) -> str:
        """A compact JWS of `claims` signed by key `kid`.

        The header carries `alg`, `typ` and `kid`, then `headers`' entries: any value, even one PyJWT
        would refuse to encode (a numeric kid), and None removes an entry.
        """
        alg, private = self._keys[kid]
        header = {k: v for k, v in {"alg": alg, "typ": "JWT", "kid": kid, **(headers or {})}.items() if v is not None}
        signing_input = f"{_b64json(header)}.{_b64json(claims)}".encode("ascii")
        algorithm = jwt.get_algorithm_by_name(alg)
        signature = algorithm.sign(signing_input, algorithm.prepare_key(private))
        return f"{signing_input.decode('ascii')}.{_b64(signature)}"

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document as served now."""
        with self._lock:
            keys = list(self._keys.items())
        published = []
        for kid, (alg, private) in keys:
            public = private.public_key()
            jwk = (
                RSAAlgorithm.to_jwk(public, as_dict=True)
                if isinstance(public, rsa.RSAPublicKey)
                else ECAlgorithm.to_jwk(public, as_dict=True)
            )
            published.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": published}

    # -- what was asked ---------------------------------------------------------------------

    @property
    def fetch_count(self) -> int:
        """How many times the JWKS was served since start."""
        with self._lock:
            return len(self._fetches)

    # -- serving ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    def jwks_url(self, prefix: str = "") -> str:
        """The JWKS URL under `prefix` (e.g. `/auth/v1`, as a Supabase project serves it)."""
        return f"{self.url}{prefix}{JWKS_PATH}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        if request.method != "GET":
            response = Response(status=405)
        elif path.endswith(JWKS_PATH) or path.endswith("/jwks"):
            with self._lock:
                self._fetches.append(time.monotonic())
            response = Response(json.dumps(self.jwks()), content_type="application/json")
        elif path.endswith(DISCOVERY_PATH):
            prefix = path[: -len(DISCOVERY_PATH)]
            document = {"issuer": self.issuer, "jwks_uri": self.jwks_url(prefix)}
            response = Response(json.dumps(document), content_type="application/json")
        else:
            response = Response(status=404)
        return response(environ, start_response)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
