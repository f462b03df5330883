"""JWTs for the sandbox: Supabase-like claims, signed with the sandbox's keys.

Keys live in ``<state dir>/keys/``: ``jwt_secret`` (HS256, also the value of
SUPABASE_JWT_SECRET) and ``es256_private.pem`` / ``jwks.json`` (the asymmetric
signing key, whose public half the gateway serves at
``/auth/v1/.well-known/jwks.json``).
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ISSUER = "http://127.0.0.1:54321/auth/v1"
KEYS_DIR = "keys"


def default_state_dir() -> Path:
    env = os.environ.get("SANDBOX_DIR")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent / ".sandbox"


def keys_dir(state_dir: Path | None = None) -> Path:
    return (state_dir or default_state_dir()) / KEYS_DIR


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def ensure_keys(state_dir: Path | None = None) -> None:
    """Generate the HS256 secret and the ES256 key pair once (first start)."""
    kdir = keys_dir(state_dir)
    kdir.mkdir(parents=True, exist_ok=True)
    kdir.chmod(0o700)
    if not (kdir / "jwt_secret").exists():
        _write_private(kdir / "jwt_secret", secrets.token_urlsafe(48).encode() + b"\n")
    if not (kdir / "es256_private.pem").exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(kdir / "es256_private.pem", pem)
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        public.update({"kid": str(uuid.uuid4()), "alg": "ES256", "use": "sig", "key_ops": ["verify"]})
        (kdir / "jwks.json").write_text(json.dumps({"keys": [public]}, indent=2) + "\n")


def jwt_secret(state_dir: Path | None = None) -> str:
    return (keys_dir(state_dir) / "jwt_secret").read_text().strip()


def jwks(state_dir: Path | None = None) -> dict[str, Any]:
    return json.loads((keys_dir(state_dir) / "jwks.json").read_text())


def mint_jwt(
    sub: str | None = None,
    role: str = "authenticated",
    alg: str = "HS256",
    ttl: int = 3600,
    state_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A token shaped like one Supabase Auth issues (iss, aud, sub, role, exp, iat)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "iat": now, "exp": now + ttl, "role": role}
    if role == "authenticated" or sub is not None:
        claims["aud"] = "authenticated"
    if sub is not None:
        claims["sub"] = sub
    if extra:
        claims.update(extra)
    if alg == "HS256":
        return jwt.encode(claims, jwt_secret(state_dir), algorithm="HS256", headers={"typ": "JWT"})
    if alg == "ES256":
        pem = (keys_dir(state_dir) / "es256_private.pem").read_bytes()
        kid = jwks(state_dir)["keys"][0]["kid"]
        return jwt.encode(claims, pem, algorithm="ES256", headers={"typ": "JWT", "kid": kid})
    raise ValueError(f"unsupported alg {alg!r} (HS256 or ES256)")


def api_key(role: str, state_dir: Path | None = None) -> str:
    """A legacy-style Supabase API key: HS256, role anon / service_role, long-lived."""
    now = int(time.time())
    claims = {"iss": "supabase-sandbox", "role": role, "iat": now, "exp": now + 10 * 365 * 24 * 3600}
    return jwt.encode(claims, jwt_secret(state_dir), algorithm="HS256", headers={"typ": "JWT"})


MEMBER_ROLES = {"owner": ("owner",), "member": ("admin", "agent")}


class NoMember(LookupError):
    """The workspace is unknown, or has no member with the wanted role (the message says which)."""


def workspace_member(database_url: str, workspace_id: str, role: str = "member") -> str:
    """The user id of a workspace member: its owner (``role="owner"``), or the
    longest-standing admin or agent (``"member"``). Raises NoMember."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("select 1 from public.workspaces where id = %s", (workspace_id,)).fetchone() is None:
            raise NoMember(f"workspace {workspace_id} does not exist on the sandbox")
        row = conn.execute(
            "select user_id::text from public.workspace_members where workspace_id = %s and role = any(%s) "
            "order by created_at, user_id limit 1",
            (workspace_id, list(MEMBER_ROLES[role])),
        ).fetchone()
    if row is None:
        raise NoMember(f"workspace {workspace_id} has no {role} ({' or '.join(MEMBER_ROLES[role])})")
    return str(row[0])


def member_token(workspace_id: str, role: str = "member", ttl: int = 3600, state_dir: Path | None = None) -> str:
    """A fresh access token (ES256, like Supabase Auth's with asymmetric keys) for
    a member of the workspace: the gateway verifies it with its JWKS and the
    Convex runtime with the same JWKS (auth.config.ts); Realtime accepts it too."""
    from .launcher import read_env

    env = read_env(state_dir)
    if not env.get("DATABASE_URL"):
        raise NoMember("the sandbox has not been started (run `python -m sandbox up`)")
    user = workspace_member(env["DATABASE_URL"], workspace_id, role)
    return mint_jwt(sub=user, alg="ES256", ttl=ttl, state_dir=state_dir)
