"""The docker-compose stack's .env: fresh secrets, written once.

    python docker/compose_env.py                   # writes .env next to docker-compose.yml
    python docker/compose_env.py --env-file PATH   # another file (docker compose --env-file PATH ...)
    python docker/compose_env.py --force           # replace it, after `docker compose down -v`
    python docker/compose_env.py --update          # add what a newer stack needs, keep every line
    python docker/compose_env.py token SUB         # CONVEX_AUTH_TOKEN for user id SUB
    python docker/compose_env.py token --workspace [ID]   # a member's token, pinned to a workspace

It never replaces an existing .env without --force, and never writes new
secrets while the stack's volumes exist (when Docker can be asked): the
database volume keeps the POSTGRES_PASSWORD and the Convex volume the
CONVEX_INSTANCE_SECRET they were created with. `docker compose down -v`
removes them, with the stack's data. --update appends the variables a .env
written by an earlier version lacks (Realtime's), changing none it has.

Every secret is hex, so it is a valid command-line argument. The URLs are the
stack's published loopback ports (SUPABASE_PORT, DB_PORT, CONVEX_PORT,
CONVEX_SITE_PORT, APP_PORT and LOCUST_WEB_PORT from the environment move them),
so the same .env also serves `make run` / `make ui AGAINST=env` from the host.
The ES256 key that signs member tokens stays in docker/.keys/ (git-ignored);
Convex gets its public half as a data: URI JWKS (SUPABASE_JWKS_URL), Realtime
the same JWKS as JSON (SUPABASE_JWKS), beside the HS256 SUPABASE_JWT_SECRET
that signs the API keys.
CONVEX_ADMIN_KEY is left empty: the backend derives it from
CONVEX_INSTANCE_SECRET (`docker compose exec convex-backend ./generate_admin_key.sh`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
KEYS = Path(__file__).resolve().parent / ".keys"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ISSUER = "http://127.0.0.1:54321/auth/v1"
TEN_YEARS = 10 * 365 * 24 * 3600
# Secrets the stack's volumes are created with (and the admin key derived from one).
VOLUME_SECRETS = ("POSTGRES_PASSWORD", "CONVEX_INSTANCE_SECRET")
# docker-compose.yml's volumes that hold them.
STATEFUL_VOLUMES = ("db-data", "convex-data")
# Added to the stack after .env files existed: --update appends them, fresh,
# to a .env that lacks them (none depends on another variable's value).
REALTIME_SECRETS = ("REALTIME_DB_ENC_KEY", "REALTIME_SECRET_KEY_BASE", "REALTIME_DASHBOARD_PASSWORD")
ADDED_LATER = (*REALTIME_SECRETS, "SUPABASE_JWKS")
PORTS = {
    "SUPABASE_PORT": 54321,
    "DB_PORT": 54322,
    "CONVEX_PORT": 3210,
    "CONVEX_SITE_PORT": 3211,
    "APP_PORT": 3000,
    "LOCUST_WEB_PORT": 8089,
}


class ComposeEnvError(Exception):
    """One line for the user; the exit code is 1."""


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


def realtime_secrets() -> dict[str, str]:
    """Supabase Realtime's own secrets, hex.

    DB_ENC_KEY is an AES-128 key (Realtime.Crypto: :aes_128_ecb), so exactly 16
    bytes: 16 hex characters. SECRET_KEY_BASE signs Phoenix's cookies and must be
    at least 64 bytes. The dashboard password guards /admin, which the stack does
    not publish; the pinned release refuses to start without one.
    """
    return {
        "REALTIME_DB_ENC_KEY": secrets.token_hex(8),
        "REALTIME_SECRET_KEY_BASE": secrets.token_hex(32),
        "REALTIME_DASHBOARD_PASSWORD": secrets.token_hex(24),
    }


def jwks_json(jwks: Mapping[str, object]) -> str:
    """The JWKS as one line of JSON, for Realtime's API_JWT_JWKS."""
    return json.dumps(jwks, separators=(",", ":"), sort_keys=True)


def jwks_of_data_uri(uri: str) -> dict[str, object] | None:
    """The JWKS a base64 data: URI (SUPABASE_JWKS_URL as written here) holds; None for anything else."""
    head, sep, body = uri.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        return None
    try:
        doc = json.loads(base64.b64decode(body, validate=True))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("keys"), list) else None


def ports_from(environ: Mapping[str, str]) -> dict[str, int]:
    """The published ports: the defaults of docker-compose.yml, moved by the environment."""
    ports = dict(PORTS)
    for name in PORTS:
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ComposeEnvError(f"{name}={raw!r} is not a TCP port (1-65535)")
        ports[name] = int(raw)
    return ports


def env_values(ports: dict[str, int] | None = None) -> dict[str, str]:
    """A fresh, consistent set of the stack's variables (secrets are hex)."""
    ports = ports or dict(PORTS)
    jwt_secret = secrets.token_hex(32)
    now = int(time.time())

    def api_key(role: str) -> str:
        claims = {"iss": "supabase-compose", "role": role, "iat": now, "exp": now + TEN_YEARS}
        return jwt.encode(claims, jwt_secret, algorithm="HS256", headers={"typ": "JWT"})

    password = secrets.token_hex(24)
    _pem, jwks = _signing_key()
    jwks_uri = "data:text/plain;charset=utf-8;base64," + base64.b64encode(json.dumps(jwks).encode()).decode()
    values = {
        "SUPABASE_URL": f"http://127.0.0.1:{ports['SUPABASE_PORT']}",
        "SUPABASE_ANON_KEY": api_key("anon"),
        "SUPABASE_SERVICE_ROLE_KEY": api_key("service_role"),
        "SUPABASE_JWT_SECRET": jwt_secret,
        "DATABASE_URL": f"postgresql://postgres:{password}@127.0.0.1:{ports['DB_PORT']}/postgres",
        "CONVEX_URL": f"http://127.0.0.1:{ports['CONVEX_PORT']}",
        "CONVEX_SITE_URL": f"http://127.0.0.1:{ports['CONVEX_SITE_PORT']}",
        "CONVEX_ADMIN_KEY": "",
        "CONVEX_AUTH_TOKEN": "",
        "CRM_API_KEY": secrets.token_hex(32),
        "APP_URL": f"http://127.0.0.1:{ports['APP_PORT']}",
        "SANDBOX_NETWORK": "",  # no network profile: the stack's links are Docker's
        "POSTGRES_PASSWORD": password,
        "CONVEX_INSTANCE_SECRET": secrets.token_hex(32),
        "SUPABASE_JWT_ISSUER": ISSUER,
        "SUPABASE_JWKS_URL": jwks_uri,
        "SUPABASE_JWKS": jwks_json(jwks),
        **realtime_secrets(),
    }
    values.update({name: str(port) for name, port in ports.items() if port != PORTS[name]})
    return values


def env_line(name: str, value: str) -> str:
    # Single quotes keep the JSON literal for docker compose and python-dotenv alike.
    return f"{name}='{value}'\n" if name == "SUPABASE_JWKS" else f"{name}={value}\n"


def env_file(ports: dict[str, int] | None = None) -> str:
    return "".join(env_line(name, value) for name, value in env_values(ports).items())


def added_values(existing: Mapping[str, str]) -> dict[str, str]:
    """Values for the ADDED_LATER names ``existing`` lacks (an empty value counts as absent).

    The JWKS is the one the .env already gives Convex (SUPABASE_JWKS_URL), so
    both verify the same tokens; the key file's only when that is not a data: URI.
    """
    missing = [name for name in ADDED_LATER if not existing.get(name)]
    if not missing:
        return {}
    fresh = realtime_secrets()
    jwks = jwks_of_data_uri(existing.get("SUPABASE_JWKS_URL", ""))
    fresh["SUPABASE_JWKS"] = jwks_json(jwks if jwks is not None else _signing_key()[1])
    return {name: fresh[name] for name in missing}


def read_dotenv(path: Path) -> dict[str, str] | None:
    """NAME=value pairs of an existing, non-empty file; None when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ComposeEnvError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return None
    # [ \t], not \s: an empty value must not run on into the next line's NAME=value.
    pairs = re.findall(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*?)[ \t]*$", text, flags=re.M)
    return {name: value.strip("'\"") for name, value in pairs}


def project_name() -> str:
    """The compose project: COMPOSE_PROJECT_NAME, else docker-compose.yml's `name:`."""
    if os.environ.get("COMPOSE_PROJECT_NAME"):
        return os.environ["COMPOSE_PROJECT_NAME"]
    try:
        match = re.search(r"^name:\s*['\"]?([\w.-]+)", COMPOSE_FILE.read_text(), flags=re.M)
    except OSError:
        match = None
    return match.group(1) if match else ROOT.name.lower()


def existing_volumes(project: str) -> list[str] | None:
    """The stack's stateful volumes that exist; None when Docker cannot tell."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    found = []
    for volume in STATEFUL_VOLUMES:
        name = f"{project}_{volume}"
        try:
            result = subprocess.run(
                [docker, "volume", "inspect", "--format", "{{.Name}}", name],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode == 0:
            found.append(name)
        elif "no such volume" not in (result.stderr + result.stdout).lower():
            return None  # the daemon did not answer: unknown, not absent
    return found


def _is_our_stdout(path: Path) -> bool:
    """True when the shell redirected stdout into ``path`` (`> .env` empties it first)."""
    try:
        out, target = os.fstat(sys.stdout.fileno()), path.stat()
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISREG(out.st_mode) and (out.st_dev, out.st_ino) == (target.st_dev, target.st_ino)


def update_env(path: Path) -> str:
    """Append to the stack's .env at ``path`` what it lacks; return the line to show. Raises ComposeEnvError."""
    existing = read_dotenv(path)
    if existing is None:
        raise ComposeEnvError(f"{path} does not exist or is empty: write one with `python docker/compose_env.py`")
    if not existing.get("POSTGRES_PASSWORD"):
        raise ComposeEnvError(
            f"{path} is not the docker-compose stack's (no POSTGRES_PASSWORD): --update only adds to one "
            "compose_env.py wrote"
        )
    added = added_values(existing)
    if not added:
        return f"{path} already has every variable the stack needs; nothing changed"
    text = path.read_text()
    if text and not text.endswith("\n"):
        text += "\n"
    text += "".join(env_line(name, value) for name, value in added.items())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_private(tmp, text.encode())
    os.replace(tmp, path)
    return f"added {', '.join(added)} to {path} (every other line kept); `docker compose up -d` picks them up"


def write_env(path: Path, *, force: bool) -> str:
    """Write a fresh .env at ``path``; return the line to show. Raises ComposeEnvError."""
    redirected = _is_our_stdout(path)
    existing = read_dotenv(path)
    if existing is not None and not force:
        held = [name for name in VOLUME_SECRETS if existing.get(name)]
        if held:
            lacking = [name for name in ADDED_LATER if not existing.get(name)]
            update = (
                f"; it lacks {', '.join(lacking)}, which `python docker/compose_env.py --update` adds" if lacking else ""
            )
            raise ComposeEnvError(
                f"{path} already holds {' and '.join(held)}, which the stack's volumes are created with: "
                f"keep it{update}; to start over, `docker compose down -v` (deletes the stack's data), "
                "then rerun with --force"
            )
        raise ComposeEnvError(
            f"{path} exists and holds other settings (no POSTGRES_PASSWORD): move it aside, "
            "or write elsewhere with --env-file PATH and use `docker compose --env-file PATH ...`"
        )
    ports = ports_from(os.environ)
    project = project_name()
    volumes = existing_volumes(project)
    if volumes:
        hint = " (the shell's `> .env` emptied it before this ran: restore it from a backup)" if redirected else ""
        raise ComposeEnvError(
            f"volumes {', '.join(volumes)} exist and keep the POSTGRES_PASSWORD and CONVEX_INSTANCE_SECRET "
            f"of the .env that created them{hint}; new secrets would lock the stack out. "
            "Restore that .env, or `docker compose down -v` (deletes the stack's data) and rerun"
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_private(tmp, env_file(ports).encode())
    os.replace(tmp, path)
    note = (
        ""
        if volumes is not None
        else f"; Docker could not say whether volumes of {project} exist: if a stack ran before, "
        "`docker compose down -v` first"
    )
    return f"wrote {path} (new secrets; CONVEX_ADMIN_KEY empty until generate_admin_key.sh){note}"


UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def pinned_member(database_url: str, workspace_id: str | None) -> tuple[str, str, str]:
    """(workspace id, a contact's phone, a member's user id) of the workspace, or of the seed's first.

    What a realtime run against the stack pins (TEST_WORKSPACE_ID, TEST_PHONE)
    and whose member it subscribes as. Raises ComposeEnvError.
    """
    import psycopg  # the host's venv (requirements.txt); only this subcommand needs it

    if workspace_id is not None and not UUID.fullmatch(workspace_id):
        raise ComposeEnvError(f"--workspace {workspace_id!r} is not a uuid")
    query = """
        select w.id::text, c.phone, m.user_id::text
        from workspaces w
        cross join lateral (select phone from contacts where workspace_id = w.id
                            order by created_at, phone limit 1) c
        cross join lateral (select user_id from workspace_members where workspace_id = w.id
                            order by created_at, user_id limit 1) m
        where %(ws)s::uuid is null or w.id = %(ws)s::uuid
        order by w.created_at, w.id
        limit 1
    """
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            row = conn.execute(query, {"ws": workspace_id}).fetchone()
            found = conn.execute("select count(*) from workspaces where id = %s::uuid", (workspace_id,)).fetchone()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ComposeEnvError(f"cannot read the stack's database (DATABASE_URL): {first}") from None
    if row is None:
        if workspace_id is None:
            raise ComposeEnvError("the stack's database has no workspace with a member and a contact: has the seed run?")
        if not (found and found[0]):
            raise ComposeEnvError(f"workspace {workspace_id} does not exist in the stack's database")
        raise ComposeEnvError(f"workspace {workspace_id} has no member or no contact")
    return str(row[0]), str(row[1]), str(row[2])


def token_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python docker/compose_env.py token",
        description="Print a member's access token, signed like the stack's other member tokens (ES256).",
    )
    parser.add_argument("sub", nargs="?", help="the member's user id: prints CONVEX_AUTH_TOKEN")
    parser.add_argument(
        "--workspace", nargs="?", const="", metavar="ID",
        help="pin a workspace (default: the seed's first): prints TEST_WORKSPACE_ID, TEST_PHONE and a "
        "CONVEX_AUTH_TOKEN of one of its members, read from the stack's database (DATABASE_URL)",
    )
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", help="where DATABASE_URL is (default: .env)")
    args = parser.parse_args(argv)
    if (args.sub is None) == (args.workspace is None):
        parser.print_usage(sys.stderr)
        print("compose_env: give either a user id or --workspace", file=sys.stderr)
        return 2
    if args.sub is not None:
        print(f"CONVEX_AUTH_TOKEN={member_token(args.sub)}")
        return 0
    try:
        database_url = os.environ.get("DATABASE_URL") or (read_dotenv(args.env_file) or {}).get("DATABASE_URL")
        if not database_url:
            raise ComposeEnvError(f"DATABASE_URL is neither in the environment nor in {args.env_file}")
        workspace, phone, user = pinned_member(database_url, args.workspace or None)
    except ComposeEnvError as exc:
        print(f"compose_env: {exc}", file=sys.stderr)
        return 1
    print(f"TEST_WORKSPACE_ID={workspace}\nTEST_PHONE={phone}\nCONVEX_AUTH_TOKEN={member_token(user)}")
    print(f"compose_env: member {user} of workspace {workspace}; put these lines in .env, "
          "then `docker compose up -d` (the Locust services read them)", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["token"]:
        return token_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python docker/compose_env.py",
        description="Write the docker-compose stack's .env with fresh secrets (never over a stack's own).",
        epilog="python docker/compose_env.py token SUB | --workspace [ID]  prints a member's access token",
    )
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", help="where to write (default: .env)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--force", action="store_true", help="replace an existing file (after `docker compose down -v`)")
    mode.add_argument("--update", action="store_true",
                      help="add the variables an existing stack .env lacks (fresh), changing none of its lines")
    args = parser.parse_args(argv)
    try:
        line = update_env(args.env_file) if args.update else write_env(args.env_file, force=args.force)
        print(line, file=sys.stderr)
    except ComposeEnvError as exc:
        print(f"compose_env: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"compose_env: cannot write {exc.filename or args.env_file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
