"""docker-compose.yml, checked without Docker: it parses, binds loopback only,
pins its images (the Convex backend together with the Convex CLI), every file
and command it references exists, the services that run project code see
exactly the settings' names, and the database and PostgREST are set up for the
diagnosis. The scripts themselves run in tests/docker/."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    expected = {"db", "rest", "gateway", "convex-backend", "convex-deploy", "nextjs", "seed",
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


def test_compose_env_generator_fills_every_required_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("compose_env", ROOT / "docker" / "compose_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "KEYS", tmp_path / "keys")
    lines = dict(line.split("=", 1) for line in module.env_file().splitlines())
    required = set(REQUIRED_VAR.findall(COMPOSE.read_text()))
    empty = {name for name in required if not lines.get(name)}
    assert not empty, f"compose_env.py leaves required variables empty: {sorted(empty)}"
    assert set(NAMES) - {"TEST_WORKSPACE_ID", "TEST_PHONE"} <= set(lines)
    # Secrets end up as command-line arguments and in URLs: hex only, so never a leading "-".
    for name in ("CRM_API_KEY", "SUPABASE_JWT_SECRET", "POSTGRES_PASSWORD", "CONVEX_INSTANCE_SECRET"):
        assert re.fullmatch(r"[0-9a-f]{48,}", lines[name]), f"{name} is not hex"
    token = module.member_token("00000000-0000-4000-8000-000000000001")
    import jwt

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"]


def test_shell_scripts_parse() -> None:
    for script in sorted((ROOT / "docker").rglob("*.sh")):
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_kong_config_renders_with_the_keys(tmp_path: Path) -> None:
    out = tmp_path / "kong.yml"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SUPABASE_ANON_KEY": "anon.key-1",
        "SUPABASE_SERVICE_ROLE_KEY": "service|key$2",
        "KONG_DECLARATIVE_CONFIG": str(out),
        "KONG_CONFIG_TEMPLATE": str(ROOT / "docker" / "kong" / "kong.yml.template"),
        "KONG_RENDER_ONLY": "1",
    }
    result = subprocess.run(["sh", str(ROOT / "docker" / "kong" / "entrypoint.sh")], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(out.read_text())
    keys = {c["username"]: [k["key"] for k in c["keyauth_credentials"]] for c in config["consumers"]}
    assert keys == {"anon": ["anon.key-1"], "service_role": ["service|key$2"]}
    (service,) = config["services"]
    assert service["url"] == "http://rest:3000/" and service["routes"][0]["paths"] == ["/rest/v1/"]
    transformer = next(p for p in service["plugins"] if p["name"] == "request-transformer")
    assert transformer["config"]["add"]["headers"] == ["Authorization: Bearer $(headers.apikey)"]


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
    assert "--restart" in args or ("--checkpoint" in args and args[args.index("--checkpoint") + 1] != ".seed/migrate-checkpoint.json")


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
    assert initdb == ["00-bootstrap.sql", "05-extensions.sql", "10-migrations.sh"], initdb
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
