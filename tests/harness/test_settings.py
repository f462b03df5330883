"""The one settings module: precedence, aliases, CONVEX_DEPLOYMENT, one-line errors, no secrets shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.settings import SettingsError, derive_convex_site_url, load_settings

WS = "11111111-2222-4333-8444-555555555555"


def test_environment_wins_over_dotenv_and_env_local(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SUPABASE_URL=http://from-dotenv:1\nCRM_API_KEY=dotenv-key\n")
    (tmp_path / ".env.local").write_text("SUPABASE_URL=http://from-local:1\nAPP_URL=http://127.0.0.1:3000\n")
    s = load_settings({"SUPABASE_URL": "http://127.0.0.1:54321"}, root=tmp_path)
    assert s.supabase_url == "http://127.0.0.1:54321"
    assert s.get("CRM_API_KEY") == "dotenv-key"
    assert s.app_url == "http://127.0.0.1:3000"


def test_spike_aliases_from_env_local(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text(
        "NEXT_PUBLIC_SUPABASE_URL=https://abc.supabase.co\nNEXT_PUBLIC_CONVEX_URL=https://happy-animal-123.convex.cloud\n"
        "NEXT_PUBLIC_SUPABASE_ANON_KEY=anon\n"
    )
    s = load_settings({}, root=tmp_path)
    assert s.supabase_url == "https://abc.supabase.co"
    assert s.convex_url == "https://happy-animal-123.convex.cloud"
    assert s.convex_site_url == "https://happy-animal-123.convex.site"
    assert s.get("SUPABASE_ANON_KEY") == "anon"
    assert not s.is_sandbox


def test_convex_deployment_gives_the_url(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("CONVEX_DEPLOYMENT=dev:happy-animal-123 # team: x, project: y\n")
    assert load_settings({}, root=tmp_path).convex_url == "https://happy-animal-123.convex.cloud"
    (tmp_path / ".env.local").write_text("CONVEX_DEPLOYMENT=nonsense value\n")
    with pytest.raises(SettingsError, match=r"^CONVEX_DEPLOYMENT is not of the form"):
        load_settings({}, root=tmp_path)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SUPABASE_URL": "ftp://x"}, "SUPABASE_URL must be an http(s) URL"),
        ({"TEST_WORKSPACE_ID": "nope"}, "TEST_WORKSPACE_ID must be a uuid"),
        ({"TEST_PHONE": "+6281"}, "TEST_PHONE must be digits"),
    ],
)
def test_malformed_values_are_one_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(env, root=tmp_path)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_missing_value_names_the_variable(tmp_path: Path) -> None:
    s = load_settings({}, root=tmp_path)
    with pytest.raises(SettingsError, match=r"^CONVEX_URL is not set"):
        _ = s.convex_url
    with pytest.raises(SettingsError, match="ENV_FILE"):
        load_settings({}, env_file=tmp_path / "absent.env", root=tmp_path)


def test_sandbox_flag_and_secrets_hidden(tmp_path: Path) -> None:
    s = load_settings(
        {"SUPABASE_URL": "http://127.0.0.1:54321", "CONVEX_URL": "http://localhost:3210",
         "SUPABASE_SERVICE_ROLE_KEY": "very-secret", "TEST_WORKSPACE_ID": WS},
        root=tmp_path,
    )
    assert s.is_sandbox
    assert "very-secret" not in repr(s) and "very-secret" not in str(s.describe())
    assert s.describe() == {"SUPABASE_URL": "http://127.0.0.1:54321", "CONVEX_URL": "http://localhost:3210"}
    assert derive_convex_site_url("http://127.0.0.1:3210") == "http://127.0.0.1:3211"
    assert derive_convex_site_url("http://127.0.0.1:9999") is None
