"""Token checks as Supabase Realtime makes them (``RealtimeWeb.JwtVerification``).

A token is verified with the project's JWT secret (HS256/384/512) or, when its
header names a ``kid``, with that key of the project's JWKS (RS*/ES*); ``exp``
must be in the future (no leeway) and ``role`` and ``exp`` present. Failures
carry the reason and message Realtime answers with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt

HS_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC = {"RS256": "RSA", "RS384": "RSA", "RS512": "RSA", "ES256": "EC", "ES384": "EC", "ES512": "EC"}


class TokenError(Exception):
    """``code`` is Realtime's log code (the channel's join error reason starts with it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class TokenVerifier:
    secret: str | None = None
    jwks: list[dict[str, Any]] = field(default_factory=list)

    def claims(self, token: object) -> dict[str, Any]:
        """The verified claims; raises TokenError."""
        if not isinstance(token, str) or token.count(".") != 2:
            raise TokenError("MalformedJWT", "The token provided is not a valid JWT")
        token = "".join(token.split())
        try:
            header = jwt.get_unverified_header(token)
            jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenError("MalformedJWT", "The token provided is not a valid JWT") from None
        key = self._key(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            raise TokenError("JwtSignatureError", "Failed to validate JWT signature") from None
        exp = claims.get("exp")
        if "role" not in claims or exp is None:
            raise TokenError("InvalidJWTToken", "Fields `role` and `exp` are required in JWT")
        if not isinstance(exp, int | float):
            raise TokenError("InvalidJWTToken", "Token expiration time is invalid")
        now = int(time.time())
        if exp <= now:
            raise TokenError("InvalidJWTToken", f"Token has expired {now - round(exp)} seconds ago")
        iat = claims.get("iat")
        if iat is not None and not isinstance(iat, int | float):
            raise TokenError("InvalidJWTToken", "Token issued-at time is invalid")
        return claims

    def _key(self, header: dict[str, Any]) -> Any:
        alg = header.get("alg")
        kid = header.get("kid")
        if isinstance(kid, str) and alg in ASYMMETRIC:
            for jwk in self.jwks:
                if jwk.get("kid") == kid and jwk.get("kty") == ASYMMETRIC[alg]:
                    return jwt.PyJWK.from_dict(jwk).key
            raise TokenError(
                "JwtSignerError",
                f'Failed to generate JWT signer for key ID (kid) "{kid}", check your JWT secret or JWKS configuration',
            )
        if alg in HS_ALGORITHMS and self.secret:
            return self.secret.encode()
        raise TokenError("JwtSignerError", "Failed to generate JWT signer, check your JWT secret or JWKS configuration")
