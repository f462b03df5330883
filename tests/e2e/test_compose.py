"""docker-compose.yml, checked without Docker: it parses, binds loopback only,
pins its images (the Convex backend together with the Convex CLI, Supabase
Realtime with the evidence for its tag), every file and command it references
exists, the services that run project code see exactly the settings' names,
the database and PostgREST are set up for the diagnosis, and Realtime is wired
behind Kong as Supabase's self-hosted stack wires it and verifies the tokens
the stack issues. The scripts themselves run in tests/docker/."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import yaml
from dotenv import dotenv_values

from harness.settings import NAMES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
CONVEX_VERSIONS = ROOT / "docker" / "convex-versions.env"
CONVEX_CLI = ROOT / "node_modules" / "convex"
# Services running this repository's code, configured through harness/settings.py.
PROJECT_SERVICES = ("nextjs", "seed", "locust-master", "locust-worker")
# Extra, non-settings variables those services may carry.
PROJECT_EXTRAS = {"SEED_CONTACTS"}
VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")
REQUIRED_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*):\?")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def test_parses_and_has_the_stack(compose: dict[str, Any]) -> None:
    expected = {"db", "rest", "gateway", "realtime", "convex-backend", "convex-deploy", "nextjs", "seed",
                "locust-master", "locust-worker"}
    assert expected <= set(compose["services"])


def test_every_port_is_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is not bound to 127.0.0.1"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        # ${VAR:-default}: the default is what runs
        resolved = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", image)
        tag = resolved.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: image {image} is not pinned to a tag"


def test_referenced_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: volume source {source} does not exist"
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            assert (ROOT / env_file).is_file(), f"{name}: env_file {env_file} does not exist"
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert context.is_dir(), f"{name}: build context {build['context']} does not exist"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: Dockerfile missing"
        # the repository is mounted at /app: any /app/<path> argument must be a file here
        for arg in _argv(service.get("entrypoint")) + _argv(service.get("command")):
            for path in re.findall(r"/app/([\w./-]+)", arg):
                assert (ROOT / path).exists(), f"{name}: {path} does not exist"


def test_commands_exist(compose: dict[str, Any]) -> None:
    seen_locustfile = False
    for name, service in compose["services"].items():
        argv = _argv(service.get("command"))
        text = " ".join(argv)
        for module in re.findall(r"python -m (\w+)", text):
            assert (ROOT / module / "__main__.py").is_file(), f"{name}: python -m {module}: no {module}/__main__.py"
        if "-f" in argv:
            locustfile = argv[argv.index("-f") + 1]
            assert (ROOT / locustfile).is_file(), f"{name}: locustfile {locustfile} does not exist"
            seen_locustfile = True
    assert seen_locustfile


def test_project_services_see_the_settings_names(compose: dict[str, Any]) -> None:
    for name in PROJECT_SERVICES:
        env = _env(compose["services"][name])
        unknown = set(env) - set(NAMES) - PROJECT_EXTRAS
        assert not unknown, f"{name}: env names not in harness/settings.py NAMES: {sorted(unknown)}"
        missing = set(NAMES) - set(env)
        assert not missing, f"{name}: settings names not passed: {sorted(missing)}"
        for url_name in ("SUPABASE_URL", "CONVEX_URL", "CONVEX_SITE_URL", "APP_URL"):
            assert env[url_name].startswith("http://"), f"{name}: {url_name} is not a URL"


def test_env_example_documents_every_variable() -> None:
    text = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]*)=", text, flags=re.M))
    missing_settings = set(NAMES) - documented
    assert not missing_settings, f".env.example lacks settings names: {sorted(missing_settings)}"
    missing_compose = set(VAR.findall(COMPOSE.read_text())) - documented
    assert not missing_compose, f".env.example lacks compose variables: {sorted(missing_compose)}"


def _compose_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """docker/compose_env.py, signing with keys of its own under tmp_path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("compose_env", ROOT / "docker" / "compose_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "KEYS", tmp_path / "keys")
    return module


def test_compose_env_generator_fills_every_required_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _compose_env(tmp_path, monkeypatch)
    lines = dict(line.split("=", 1) for line in module.env_file().splitlines())
    required = set(REQUIRED_VAR.findall(COMPOSE.read_text()))
    empty = {name for name in required if not lines.get(name)}
    assert not empty, f"compose_env.py leaves required variables empty: {sorted(empty)}"
    assert set(NAMES) - {"TEST_WORKSPACE_ID", "TEST_PHONE"} <= set(lines)
    # Secrets end up as command-line arguments and in URLs: hex only, so never a leading "-".
    for name in ("CRM_API_KEY", "SUPABASE_JWT_SECRET", "POSTGRES_PASSWORD", "CONVEX_INSTANCE_SECRET",
                 "REALTIME_SECRET_KEY_BASE", "REALTIME_DASHBOARD_PASSWORD"):
        assert re.fullmatch(r"[0-9a-f]{48,}", lines[name]), f"{name} is not hex"
    # Realtime encrypts with :aes_128_ecb: a 16-byte key. Phoenix wants 64+ bytes of key base.
    assert re.fullmatch(r"[0-9a-f]{16}", lines["REALTIME_DB_ENC_KEY"])
    assert len(lines["REALTIME_SECRET_KEY_BASE"]) >= 64
    token = module.member_token("00000000-0000-4000-8000-000000000001")
    import jwt

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"]


def test_shell_scripts_parse() -> None:
    for script in sorted((ROOT / "docker").rglob("*.sh")):
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def _render_kong(tmp_path: Path, anon: str, service: str) -> dict[str, Any]:
    out = tmp_path / "kong.yml"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SUPABASE_ANON_KEY": anon,
        "SUPABASE_SERVICE_ROLE_KEY": service,
        "KONG_DECLARATIVE_CONFIG": str(out),
        "KONG_CONFIG_TEMPLATE": str(ROOT / "docker" / "kong" / "kong.yml.template"),
        "KONG_RENDER_ONLY": "1",
    }
    result = subprocess.run(["sh", str(ROOT / "docker" / "kong" / "entrypoint.sh")], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(out.read_text())
    assert isinstance(config, dict)
    return config


def _services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in config["services"]}


def _plugins(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p.get("config") or {} for p in service["plugins"]}


def test_kong_config_renders_with_the_keys(tmp_path: Path) -> None:
    config = _render_kong(tmp_path, "anon.key-1", "service|key$2")
    keys = {c["username"]: [k["key"] for k in c["keyauth_credentials"]] for c in config["consumers"]}
    assert keys == {"anon": ["anon.key-1"], "service_role": ["service|key$2"]}
    services = _services(config)
    assert set(services) == {"rest-v1", "realtime-v1-ws"}
    rest = services["rest-v1"]
    assert rest["url"] == "http://rest:3000/" and rest["routes"][0]["paths"] == ["/rest/v1/"]
    assert _plugins(rest)["request-transformer"]["add"]["headers"] == ["Authorization: Bearer $(headers.apikey)"]


# Kong 2.8.1 kong/constants.lua: the protocols a service may have (no ws/wss before 3.0).
KONG_28_PROTOCOLS = {"http", "https", "tcp", "tls", "udp", "tls_passthrough", "grpc", "grpcs"}


def test_kong_routes_realtime_as_supabase_does_with_awkward_keys(tmp_path: Path, compose: dict[str, Any]) -> None:
    """supabase/supabase docker/volumes/api/kong.yml's realtime-v1-ws: key-auth (apikey in the query, kept),
    the key forwarded as x-api-key (what Realtime reads first), anon and admin groups only."""
    # A JWT-shaped key with awk's and sed's specials, and one that names a variable: both land verbatim.
    anon = "eyJhbGciOiJIUzI1NiJ9.e30.a-b_c&d\\1|%s"
    service = "sb_secret_$SUPABASE_ANON_KEY&$(x)"
    config = _render_kong(tmp_path, anon, service)
    keys = {c["username"]: [k["key"] for k in c["keyauth_credentials"]] for c in config["consumers"]}
    assert keys == {"anon": [anon], "service_role": [service]}
    assert {a["consumer"]: a["group"] for a in config["acls"]} == {"anon": "anon", "service_role": "admin"}

    realtime = _services(config)["realtime-v1-ws"]
    upstream = urlsplit(realtime["url"])
    assert realtime.get("protocol", upstream.scheme) in KONG_28_PROTOCOLS
    # Realtime's endpoint mounts the Phoenix socket at /socket: /realtime/v1/websocket -> /socket/websocket.
    assert upstream.path == "/socket"
    (route,) = realtime["routes"]
    assert route["paths"] == ["/realtime/v1/"] and route["strip_path"] is True
    assert [p["name"] for p in realtime["plugins"]] == ["cors", "key-auth", "request-transformer", "acl"]
    plugins = _plugins(realtime)
    assert plugins["key-auth"].get("hide_credentials") is False
    assert plugins["key-auth"].get("key_names", ["apikey"]) == ["apikey"]
    assert plugins["request-transformer"]["add"]["headers"] == ["x-api-key:$(query_params.apikey)"]
    assert sorted(plugins["acl"]["allow"]) == ["admin", "anon"] and plugins["acl"]["hide_groups_header"] is True
    # Nothing of the services is left for entrypoint.sh to replace: only request-transformer templates.
    assert re.findall(r"\$(?!\()\S*", yaml.safe_dump(config["services"])) == []

    # The upstream is the realtime service, by the name that makes its tenant.
    rt = compose["services"]["realtime"]
    env = _env(rt)
    assert upstream.hostname in rt["networks"]["default"]["aliases"]
    assert upstream.port == int(env["PORT"])
    tenant = upstream.hostname.split(".", 1)[0]  # Realtime: the Host header's first label
    assert env["SELF_HOST_TENANT_NAME"] == tenant
    assert any(arg.endswith(f"/api/tenants/{tenant}/health") for arg in _argv(rt["healthcheck"]["test"]))


def test_kong_entrypoint_refuses_missing_keys(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KONG_DECLARATIVE_CONFIG": str(tmp_path / "k.yml"),
           "KONG_RENDER_ONLY": "1"}
    result = subprocess.run(["sh", str(ROOT / "docker" / "kong" / "entrypoint.sh")], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "SUPABASE_ANON_KEY is not set" in result.stderr


# ---------------------------------------------------------------- the Convex pair


def _versions() -> dict[str, str]:
    text = CONVEX_VERSIONS.read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, flags=re.M))


def test_convex_backend_image_is_the_pinned_release(compose: dict[str, Any]) -> None:
    pins = _versions()
    assert re.fullmatch(r"[0-9a-f]{40}", pins["CONVEX_BACKEND_TAG"]), "the backend pin is a release commit"
    image = compose["services"]["convex-backend"]["image"]
    assert image == f"ghcr.io/get-convex/convex-backend:{pins['CONVEX_BACKEND_TAG']}", (
        f"docker-compose.yml runs {image}, docker/convex-versions.env pins {pins['CONVEX_BACKEND_TAG']}"
    )


def test_convex_cli_is_the_pinned_version() -> None:
    cli = _versions()["CONVEX_CLI_VERSION"]
    declared = json.loads((ROOT / "package.json").read_text())["dependencies"]["convex"]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"]["node_modules/convex"]["version"]
    assert declared == cli, f"package.json has convex {declared}, docker/convex-versions.env pins {cli}"
    assert locked == cli, f"package-lock.json locks convex {locked}, docker/convex-versions.env pins {cli}"


def test_every_endpoint_the_cli_deploys_with_is_accounted_for() -> None:
    """A CLI that calls an endpoint the pin's evidence does not name needs the
    backend checked again: the list in docker/convex-versions.env is that check."""
    if not (CONVEX_CLI / "package.json").is_file():
        pytest.skip("node_modules/convex is not installed (make deps)")
    installed = json.loads((CONVEX_CLI / "package.json").read_text())["version"]
    pin = _versions()["CONVEX_CLI_VERSION"]
    assert installed == pin, f"node_modules has convex {installed}, the pin is {pin}: make deps after moving it"
    lib = CONVEX_CLI / "dist" / "cjs" / "cli" / "lib"
    called = set()
    for module in ("deploy2.js", "config.js", "env.js"):
        called |= set(re.findall(r'"(/api/[a-z0-9_/]+)"', (lib / module).read_text()))
    assert {"/api/deploy2/start_push", "/api/get_config_hashes", "/api/update_environment_variables"} <= called
    evidence = CONVEX_VERSIONS.read_text()
    unnamed = sorted(path for path in called if not re.search(re.escape(path) + r"\b", evidence))
    assert not unnamed, f"the CLI calls {unnamed}, which docker/convex-versions.env does not account for"


def test_deploy_one_shot_gets_the_pins(compose: dict[str, Any]) -> None:
    service = compose["services"]["convex-deploy"]
    env_files = service.get("env_file")
    env_files = [env_files] if isinstance(env_files, str) else env_files or []
    assert "docker/convex-versions.env" in env_files, "convex-deploy does not get the pinned CLI version"
    assert "CONVEX_CLI_VERSION" in (ROOT / "docker" / "convex-push.sh").read_text()


# ---------------------------------------------------------------- first start


def test_seed_one_shot_has_its_own_checkpoint(compose: dict[str, Any]) -> None:
    script = " ".join(_argv(compose["services"]["seed"]["command"]))
    migrate = re.search(r"python -m seed migrate([^&]*)", script)
    assert migrate, "the seed one-shot does not migrate"
    args = migrate.group(1).split()
    assert "--restart" in args or (
        "--checkpoint" in args and args[args.index("--checkpoint") + 1] != ".seed/migrate-checkpoint.json"
    )


def test_postgres_preloads_pg_stat_statements(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    argv = _argv(db.get("command"))
    assert argv[:1] == ["postgres"]
    settings = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-c")
    assert "pg_stat_statements" in settings.get("shared_preload_libraries", "").split(",")
    initdb = sorted(
        str(v).split(":")[1].rsplit("/", 1)[-1]
        for v in db["volumes"]
        if ":/docker-entrypoint-initdb.d/" in str(v)
    )
    assert initdb == ["00-bootstrap.sql", "05-extensions.sql", "10-migrations.sh", "20-realtime.sql"], initdb
    # Realtime decodes the WAL: logical, as on Supabase.
    assert settings.get("wal_level") == "logical"
    assert "create extension if not exists pg_stat_statements with schema extensions" in (
        ROOT / "docker" / "db" / "05-extensions.sql"
    ).read_text()


def test_postgrest_serves_timings_and_plans_and_reports_ready(compose: dict[str, Any]) -> None:
    rest = compose["services"]["rest"]
    env = _env(rest)
    # PostgREST v14.5 src/PostgREST/Config.hs: server-timing-enabled / db-plan-enabled,
    # read from PGRST_<NAME, dashes to underscores>; booleans must be true/false.
    assert env["PGRST_SERVER_TIMING_ENABLED"] == "true"
    assert env["PGRST_DB_PLAN_ENABLED"] == "true"
    assert rest["image"] == "postgrest/postgrest:v14.5"
    # `postgrest --ready` needs the admin server on a concrete host.
    assert env["PGRST_ADMIN_SERVER_PORT"].isdigit() and env["PGRST_ADMIN_SERVER_HOST"] not in ("", "*", "*4", "!4", "*6", "!6")
    assert _argv(rest["healthcheck"]["test"]) == ["CMD", "postgrest", "--ready"]
    assert compose["services"]["gateway"]["depends_on"]["rest"] == {"condition": "service_healthy"}


def test_python_services_can_build_sdists(compose: dict[str, Any]) -> None:
    """hdrhistogram has no linux/arm64 wheel: pip builds it, which -slim images cannot."""
    for name in ("seed", "locust-master", "locust-worker"):
        image = compose["services"][name]["image"]
        assert image.startswith("python:") and "slim" not in image and "alpine" not in image, f"{name}: {image}"


# ---------------------------------------------------------------- Supabase Realtime


def _realtime_block(text: str) -> str:
    """The realtime service's lines in docker-compose.yml, comments included."""
    match = re.search(r"^  realtime:\n(.*?)(?=^  \S)", text, flags=re.M | re.S)
    assert match, "no realtime service"
    return match.group(1)


def test_realtime_image_is_pinned_with_its_evidence(compose: dict[str, Any]) -> None:
    image = compose["services"]["realtime"]["image"]
    match = re.fullmatch(r"supabase/realtime:v(\d+\.\d+\.\d+)", image)
    assert match, f"{image} is not a supabase/realtime release tag"
    version = match.group(1)
    comments = " ".join(
        line.strip().lstrip("#").strip() for line in _realtime_block(COMPOSE.read_text()).splitlines()
        if line.strip().startswith("#")
    )
    # The pin names where it was seen running and the release it was read at: moving the tag
    # without checking both again fails here.
    assert f"Evidence for the pin {image}:" in comments
    assert re.search(rf"supabase/supabase docker/docker-compose\.yml \(commit [0-9a-f]{{7,40}}\) runs {re.escape(image)}",
                     comments)
    assert f"supabase/realtime tag v{version}" in comments and f"mix.exs version {version}" in comments
    assert "prod_build.yml pushes supabase/realtime:v<version>" in comments


# What the pinned release refuses to start without (config/runtime.exs: System.fetch_env!,
# raise when unset or empty; run.sh), and what Supabase's compose sets besides.
REALTIME_REQUIRED = {
    "PORT", "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_AFTER_CONNECT_QUERY", "DB_ENC_KEY",
    "API_JWT_SECRET", "METRICS_JWT_SECRET", "SECRET_KEY_BASE", "APP_NAME", "DASHBOARD_USER", "DASHBOARD_PASSWORD",
    "ERL_AFLAGS", "DNS_NODES", "RLIMIT_NOFILE", "SEED_SELF_HOST", "RUN_JANITOR",
}


def test_realtime_service_env_is_what_the_release_reads(compose: dict[str, Any]) -> None:
    services = compose["services"]
    rt = services["realtime"]
    env = _env(rt)
    missing = REALTIME_REQUIRED - {k for k, v in env.items() if v}
    assert not missing, f"realtime lacks {sorted(missing)}"
    # The database as docker/db/20-realtime.sql prepares it.
    init = (ROOT / "docker" / "db" / "20-realtime.sql").read_text()
    assert env["DB_HOST"] in services and env["DB_PORT"] == "5432" and env["DB_NAME"] == "postgres"
    assert re.search(rf"alter role {env['DB_USER']} with login superuser\b.*\breplication\b", init)
    assert env["DB_PASSWORD"] == "${POSTGRES_PASSWORD}"
    assert env["DB_AFTER_CONNECT_QUERY"] == "SET search_path TO _realtime"
    assert f"create schema if not exists _realtime authorization {env['DB_USER']}" in init
    assert rt["depends_on"]["db"] == {"condition": "service_healthy"}
    # Tokens: the API keys' HS256 secret is PostgREST's; member tokens through the JWKS.
    assert env["API_JWT_SECRET"] == "${SUPABASE_JWT_SECRET}" == _env(services["rest"])["PGRST_JWT_SECRET"]
    assert re.fullmatch(r"\$\{SUPABASE_JWKS:\?[^}]*\}", env["API_JWT_JWKS"])
    # Booleans as strings (Podman too), the tenant seeded at every start.
    assert env["SEED_SELF_HOST"] == "true" and isinstance(rt["environment"]["SEED_SELF_HOST"], str)
    # Reached through Kong only; the Locust master waits for it.
    assert "ports" not in rt
    assert services["locust-master"]["depends_on"]["realtime"] == {"condition": "service_healthy"}
    caps = {k: env[k] for k in ("TENANT_MAX_CONCURRENT_USERS", "TENANT_MAX_EVENTS_PER_SECOND",
                                "TENANT_MAX_JOINS_PER_SECOND", "MAX_CONNECTIONS")}
    for name, value in caps.items():
        default = re.fullmatch(r"\$\{REALTIME_[A-Z_]+:-(\d+)\}", value)
        assert default, f"{name}={value} is not a REALTIME_* knob with a default"
    assert int(env["RLIMIT_NOFILE"]) > int(re.sub(r"\D", "", caps["MAX_CONNECTIONS"]))


def test_realtime_verifies_the_tokens_the_stack_issues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Realtime's connect needs a JWT with role and exp; v2.78.15 verifies an HS* token without a kid with
    API_JWT_SECRET, and an ES256 token with a kid against the EC key of that kid in API_JWT_JWKS
    (lib/realtime_web/channels/auth/jwt_verification.ex)."""
    module = _compose_env(tmp_path, monkeypatch)
    # The .env as docker compose and python-dotenv read it (the JWKS line is single-quoted JSON).
    values = {k: v or "" for k, v in dotenv_values(stream=io.StringIO(module.env_file())).items()}
    secret = values["SUPABASE_JWT_SECRET"]
    for name in ("SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        key = values[name]
        assert "kid" not in jwt.get_unverified_header(key)
        claims = jwt.decode(key, secret, algorithms=["HS256"])
        assert claims["role"] in ("anon", "service_role") and claims["exp"] > claims["iat"]
    jwks = json.loads(values["SUPABASE_JWKS"])
    # Convex (SUPABASE_JWKS_URL) and Realtime trust the same keys.
    uri = values["SUPABASE_JWKS_URL"]
    assert json.loads(base64.b64decode(uri.split(",", 1)[1])) == jwks
    token = module.member_token("00000000-0000-4000-8000-000000000001")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    (jwk,) = [k for k in jwks["keys"] if k.get("kid") == header["kid"] and k["kty"] == "EC"]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="authenticated")
    assert claims["role"] == "authenticated" and claims["exp"] > claims["iat"]
    assert "d" not in jwk, "the JWKS carries the private key"


def _compose_v2() -> list[str] | None:
    """A Docker Compose v2 CLI on PATH (it renders a project without a daemon), else None."""
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) is None:
            continue
        try:
            probe = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and re.match(r"v?2\.", probe.stdout.strip()):
            return argv
    return None


def test_compose_v2_renders_realtime_from_a_generated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where Docker Compose v2 is installed: its own loader interpolates the stack from compose_env's .env."""
    compose_cli = _compose_v2()
    if compose_cli is None:
        pytest.skip("no Docker Compose v2 CLI on PATH")
    module = _compose_env(tmp_path, monkeypatch)
    env_path = tmp_path / "compose.env"
    env_path.write_text(module.env_file())
    result = subprocess.run(
        [*compose_cli, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_path),
         "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)["services"]["realtime"]
    env = rendered["environment"]
    assert json.loads(env["API_JWT_JWKS"])["keys"][0]["kty"] == "EC"
    assert len(env["DB_ENC_KEY"]) == 16 and env["APP_NAME"] == "realtime"
    assert rendered["networks"]["default"]["aliases"] == ["realtime-dev.supabase-realtime"]


# ---------------------------------------------------------------- the database image


def test_database_image_adds_wal2json_to_the_pinned_postgres(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    dockerfile = ROOT / db["build"]["context"] / db["build"]["dockerfile"]
    text = dockerfile.read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert re.fullmatch(r"postgres:\d+\.\d+-bookworm", base), f"{base} is not a pinned postgres image"
    # The plugin for the image's own major, checked at build time.
    assert '"postgresql-${PG_MAJOR}-wal2json"' in text
    assert 'test -f "/usr/lib/postgresql/${PG_MAJOR}/lib/wal2json.so"' in text


def test_compose_env_reads_an_empty_value_without_eating_the_next_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _compose_env(tmp_path, monkeypatch)
    env = tmp_path / ".env"
    env.write_text("SANDBOX_NETWORK=\nPOSTGRES_PASSWORD=abc\n  export CONVEX_ADMIN_KEY = 'k' \nEMPTY_LAST=")
    assert module.read_dotenv(env) == {"SANDBOX_NETWORK": "", "POSTGRES_PASSWORD": "abc", "CONVEX_ADMIN_KEY": "k",
                                       "EMPTY_LAST": ""}
