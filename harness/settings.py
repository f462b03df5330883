"""The one settings module: every entry point reads its configuration here.

Values come from the process environment first, then from a dotenv file
(``ENV_FILE`` if set, else ``.env``), then from the spike's ``.env.local``,
whose Next.js-style names are accepted as aliases. A missing or malformed value
raises :class:`SettingsError` whose message is one line naming the variable;
entry points print that line and exit non-zero.

Secrets are held here but never rendered: ``repr()`` hides them and
:meth:`Settings.describe` reports hosts only.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

# canonical name -> names accepted in its place, most preferred first
ALIASES: dict[str, tuple[str, ...]] = {
    "SUPABASE_URL": ("NEXT_PUBLIC_SUPABASE_URL",),
    "SUPABASE_ANON_KEY": ("NEXT_PUBLIC_SUPABASE_ANON_KEY",),
    "CONVEX_URL": ("NEXT_PUBLIC_CONVEX_URL",),
}

NAMES = (
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "DATABASE_URL",
    "CONVEX_URL",
    "CONVEX_SITE_URL",
    "CONVEX_ADMIN_KEY",
    "CONVEX_AUTH_TOKEN",
    "CRM_API_KEY",
    "APP_URL",
    "TEST_WORKSPACE_ID",
    "TEST_PHONE",
    "SANDBOX_NETWORK",  # the sandbox's network.json (written by `python -m sandbox up`, docs/network.md)
)
SECRET_NAMES = frozenset(
    {
        "SUPABASE_ANON_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_JWT_SECRET",
        "CONVEX_ADMIN_KEY",
        "CONVEX_AUTH_TOKEN",
        "CRM_API_KEY",
        "DATABASE_URL",
    }
)
URL_NAMES = ("SUPABASE_URL", "CONVEX_URL", "CONVEX_SITE_URL", "APP_URL")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PHONE = re.compile(r"^[1-9][0-9]{7,14}$")
# CONVEX_DEPLOYMENT as written by `npx convex dev`: "dev:happy-animal-123 # team: x, project: y"
_DEPLOYMENT = re.compile(r"^(?:(?:dev|prod|preview):)?([a-z]+-[a-z]+-[0-9]+)$")


class SettingsError(ValueError):
    """A configuration problem, worded as one line that names the variable."""


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}" if parts.netloc else url


def derive_convex_site_url(convex_url: str) -> str | None:
    """``https://x.convex.cloud`` -> ``https://x.convex.site``; ``:3210`` -> ``:3211``."""
    parts = urlsplit(convex_url)
    host = parts.hostname or ""
    if host.endswith(".convex.cloud"):
        return f"{parts.scheme}://{host[: -len('.convex.cloud')]}.convex.site"
    if parts.port == 3210:
        return f"{parts.scheme}://{host}:3211"
    return None


def _read_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, str]
    sources: tuple[str, ...] = field(default=())

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            where = ", ".join(self.sources) or "the environment"
            raise SettingsError(f"{name} is not set (looked in {where})")
        return value

    # typed accessors -------------------------------------------------------
    @property
    def supabase_url(self) -> str:
        return self.require("SUPABASE_URL").rstrip("/")

    @property
    def convex_url(self) -> str:
        return self.require("CONVEX_URL").rstrip("/")

    @property
    def convex_site_url(self) -> str:
        explicit = self.get("CONVEX_SITE_URL")
        if explicit:
            return explicit.rstrip("/")
        derived = derive_convex_site_url(self.convex_url)
        if derived is None:
            raise SettingsError("CONVEX_SITE_URL is not set and cannot be derived from CONVEX_URL")
        return derived

    @property
    def app_url(self) -> str | None:
        value = self.get("APP_URL")
        return value.rstrip("/") if value else None

    @property
    def is_sandbox(self) -> bool:
        """True when every configured target URL is a loopback address."""
        urls = [self.values[n] for n in URL_NAMES if self.values.get(n)]
        return bool(urls) and all(is_loopback_url(u) for u in urls)

    def describe(self) -> dict[str, str]:
        """Target hosts, for logs and reports: never a key, never a path or query."""
        return {n: url_host(self.values[n]) for n in URL_NAMES if self.values.get(n)}

    def __repr__(self) -> str:
        shown = {n: ("***" if n in SECRET_NAMES else v) for n, v in self.values.items()}
        return f"Settings({shown})"


def _validate(values: dict[str, str]) -> None:
    for name in URL_NAMES:
        value = values.get(name)
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError(f"{name} must be an http(s) URL, got {value!r}")
    workspace = values.get("TEST_WORKSPACE_ID")
    if workspace and not _UUID.match(workspace):
        raise SettingsError(f"TEST_WORKSPACE_ID must be a uuid, got {workspace!r}")
    phone = values.get("TEST_PHONE")
    if phone and not _PHONE.match(phone):
        raise SettingsError(f"TEST_PHONE must be digits in E.164 form without '+', got {phone!r}")


def load_settings(
    env: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] = ".",
) -> Settings:
    """Merge the environment, the dotenv file and ``.env.local``; validate."""
    environ = dict(os.environ if env is None else env)
    root_path = Path(root)
    file_name = env_file or environ.get("ENV_FILE") or ".env"
    primary = Path(file_name) if Path(file_name).is_absolute() else root_path / file_name
    if env_file is not None and not primary.is_file():
        raise SettingsError(f"ENV_FILE {primary} does not exist")
    layers = [("the environment", environ), (str(file_name), _read_file(primary))]
    local = root_path / ".env.local"
    if local.resolve() != primary.resolve():
        layers.append((".env.local", _read_file(local)))

    merged: dict[str, str] = {}
    for name in NAMES:
        for _, layer in layers:
            candidates = (name, *ALIASES.get(name, ()))
            found = next((layer[c].strip() for c in candidates if layer.get(c, "").strip()), None)
            if found is not None:
                merged[name] = found
                break
    if "CONVEX_URL" not in merged:
        for _, layer in layers:
            deployment = layer.get("CONVEX_DEPLOYMENT", "").split("#")[0].strip()
            if deployment:
                match = _DEPLOYMENT.match(deployment)
                if not match:
                    raise SettingsError(f"CONVEX_DEPLOYMENT is not of the form dev:name-name-123, got {deployment!r}")
                merged["CONVEX_URL"] = f"https://{match.group(1)}.convex.cloud"
                break
    _validate(merged)
    return Settings(values=merged, sources=tuple(source for source, _ in layers))
