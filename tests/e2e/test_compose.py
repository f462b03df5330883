"""docker-compose.yml, checked without Docker: it parses, binds loopback only,
pins its images, every file and command it references exists, and the
services that run project code see exactly the settings' names."""

from __future__ import annotations

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
