"""Bearer JWT verification as PostgREST does it (HS256 secret, or JWK/JWKS keys)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson

from .errors import ApiError

CLOCK_SKEW = 30  # seconds, PostgREST's allowed skew for exp/nbf/iat
_CACHE_MAX = 10_000


def _invalid(message: str, code: str = "PGRST301") -> ApiError:
    header = f'Bearer error="invalid_token", error_description="{message}"'.encode()
    return ApiError(401, code, message, None, None, [(b"www-authenticate", header)])


@dataclass
class JwtVerifier:
    """Keys: an HS256 secret and/or public JWKs (ES256/RS256...)."""

    secret: str | None = None
    jwks: list[dict[str, Any]] = field(default_factory=list)
    role_claim: str = "role"
    _keys: list[tuple[str | None, str, Any]] = field(default_factory=list, init=False)
    _cache: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        secret = self.secret
        if secret and secret.lstrip().startswith("{"):
            # PostgREST's jwt-secret may itself be a JWK or a JWKS
            parsed = orjson.loads(secret)
            self.jwks = [*self.jwks, *(parsed.get("keys") or [parsed])]
            secret = None
        if secret:
            self._keys.append((None, "HS256", secret.encode()))
        for jwk in self.jwks:
            key = jwt.PyJWK.from_dict(jwk)
            self._keys.append((jwk.get("kid"), jwk.get("alg") or key.algorithm_name, key.key))

    def claims(self, token: str) -> dict[str, Any]:
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        claims = self._verify(token, now)
        exp = claims.get("exp")
        until = float(exp) + CLOCK_SKEW if isinstance(exp, int | float) else now + 300
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (claims, min(until, now + 300))
        return claims

    def _verify(self, token: str, now: float) -> dict[str, Any]:
        if not token.strip():
            raise _invalid("Empty JWT is sent in Authorization header")
        parts = token.count(".") + 1
        if parts != 3:
            raise _invalid(f"Expected 3 parts in JWT; got {parts}")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("JWT cryptographic operation failed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise _invalid("Wrong or unsupported encoding algorithm")
        kid = header.get("kid")
        keys = [(k_alg, key) for k_kid, k_alg, key in self._keys if k_alg == alg and (kid is None or k_kid in (None, kid))]
        if not keys:
            raise _invalid("No suitable key or wrong key type")
        claims: dict[str, Any] | None = None
        for k_alg, key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[k_alg],
                    options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
                )
                break
            except jwt.PyJWTError:
                continue
        if claims is None:
            raise _invalid("JWT cryptographic operation failed")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and now > exp + CLOCK_SKEW:
            raise _invalid("JWT expired", "PGRST303")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + CLOCK_SKEW < nbf:
            raise _invalid("JWT not yet valid", "PGRST303")
        iat = claims.get("iat")
        if isinstance(iat, int | float) and now + CLOCK_SKEW < iat:
            raise _invalid("JWT issued at future", "PGRST303")
        return claims
