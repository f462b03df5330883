"""Fresh secrets for the docker-compose stack, printed as a .env.

    python docker/compose_env.py > .env           # new secrets; keys in docker/.keys/
    python docker/compose_env.py token SUB         # CONVEX_AUTH_TOKEN for user id SUB

The printed URLs are the stack's published loopback ports, so the same .env
also serves `make run` / `make ui AGAINST=env` from the host. The ES256 key
that signs member tokens stays in docker/.keys/ (git-ignored); Convex gets its
public half as a data: URI JWKS (SUPABASE_JWKS_URL). CONVEX_ADMIN_KEY is left
empty: the backend derives it from CONVEX_INSTANCE_SECRET
(`docker compose exec convex-backend ./generate_admin_key.sh`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEYS = Path(__file__).resolve().parent / ".keys"
ISSUER = "http://127.0.0.1:54321/auth/v1"
TEN_YEARS = 10 * 365 * 24 * 3600


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _signing_key() -> tuple[bytes, dict[str, object]]:
    """The ES256 key pair (created once) and its public JWKS."""
    pem_path, jwks_path = KEYS / "es256_private.pem", KEYS / "jwks.json"
    if not pem_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(pem_path, pem)
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        public.update({"kid": str(uuid.uuid4()), "alg": "ES256", "use": "sig"})
        jwks_path.write_text(json.dumps({"keys": [public]}) + "\n")
    return pem_path.read_bytes(), json.loads(jwks_path.read_text())


def member_token(sub: str, ttl: int = 24 * 3600) -> str:
    """An access token shaped like Supabase Auth's, signed with the stack's ES256 key."""
    pem, jwks = _signing_key()
    kid = jwks["keys"][0]["kid"]  # type: ignore[index]
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": sub, "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + ttl}
    return jwt.encode(claims, pem, algorithm="ES256", headers={"typ": "JWT", "kid": kid})


def env_file() -> str:
    jwt_secret = secrets.token_urlsafe(48)
    now = int(time.time())

    def api_key(role: str) -> str:
        claims = {"iss": "supabase-compose", "role": role, "iat": now, "exp": now + TEN_YEARS}
        return jwt.encode(claims, jwt_secret, algorithm="HS256", headers={"typ": "JWT"})

    password = secrets.token_hex(24)
    _pem, jwks = _signing_key()
    jwks_uri = "data:text/plain;charset=utf-8;base64," + base64.b64encode(json.dumps(jwks).encode()).decode()
    values = {
        "SUPABASE_URL": "http://127.0.0.1:54321",
        "SUPABASE_ANON_KEY": api_key("anon"),
        "SUPABASE_SERVICE_ROLE_KEY": api_key("service_role"),
        "SUPABASE_JWT_SECRET": jwt_secret,
        "DATABASE_URL": f"postgresql://postgres:{password}@127.0.0.1:54322/postgres",
        "CONVEX_URL": "http://127.0.0.1:3210",
        "CONVEX_SITE_URL": "http://127.0.0.1:3211",
        "CONVEX_ADMIN_KEY": "",
        "CONVEX_AUTH_TOKEN": "",
        "CRM_API_KEY": secrets.token_urlsafe(32),
        "APP_URL": "http://127.0.0.1:3000",
        "POSTGRES_PASSWORD": password,
        "CONVEX_INSTANCE_SECRET": secrets.token_hex(32),
        "SUPABASE_JWT_ISSUER": ISSUER,
        "SUPABASE_JWKS_URL": jwks_uri,
    }
    return "".join(f"{name}={value}\n" for name, value in values.items())


def main(argv: list[str]) -> int:
    if argv[:1] == ["token"] and len(argv) == 2:
        print(f"CONVEX_AUTH_TOKEN={member_token(argv[1])}")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(env_file())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
