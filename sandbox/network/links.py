"""The sandbox's network links: who talks to whom, and on which relay ports.

A link is one leg of the real topology. The load generator reaches Supabase,
Convex and the Next.js app over ``supabase``, ``convex`` and ``app``; the app
itself reaches Supabase and Convex over ``app-supabase`` and ``app-convex``.
A relayed link gets one relay port per backend port it covers (Convex has two:
the HTTP API and the HTTP actions). The ports are fixed, like the backends'.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST = "127.0.0.1"

SUPABASE_PORT = 54321
CONVEX_PORT = 3210
CONVEX_SITE_PORT = 3211
APP_PORT = 3000


@dataclass(frozen=True)
class LinkPort:
    """One relay port: ``listen`` forwards to the backend's ``upstream`` port.

    ``env`` is the setting whose URL points at this port when the link is relayed
    (for the generator's links, the sandbox env; for the app's links, the app's env).
    """

    listen: int
    upstream: int
    env: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.listen}"

    @property
    def upstream_url(self) -> str:
        return f"http://{HOST}:{self.upstream}"


@dataclass(frozen=True)
class Link:
    name: str
    source: str  # who opens the connections
    target: str  # who accepts them
    ports: tuple[LinkPort, ...]
    requires: tuple[str, ...]  # sandbox services the link needs running
    generator: bool  # the load generator's link (its URLs go into the sandbox env)


LINKS: dict[str, Link] = {
    link.name: link
    for link in (
        Link("supabase", "load generator", "Supabase API", (LinkPort(54401, SUPABASE_PORT, "SUPABASE_URL"),),
             ("supabase",), True),
        Link("convex", "load generator", "Convex", (
            LinkPort(54402, CONVEX_PORT, "CONVEX_URL"),
            LinkPort(54403, CONVEX_SITE_PORT, "CONVEX_SITE_URL"),
        ), ("convex",), True),
        Link("app", "load generator", "Next.js app", (LinkPort(54404, APP_PORT, "APP_URL"),), ("nextjs",), True),
        Link("app-supabase", "Next.js app", "Supabase API", (LinkPort(54405, SUPABASE_PORT, "SUPABASE_URL"),),
             ("nextjs", "supabase"), False),
        Link("app-convex", "Next.js app", "Convex", (
            LinkPort(54406, CONVEX_PORT, "CONVEX_URL"),
            LinkPort(54407, CONVEX_SITE_PORT, "CONVEX_SITE_URL"),
        ), ("nextjs", "convex"), False),
    )
}

LINK_NAMES: tuple[str, ...] = tuple(LINKS)


def direct_name(env_name: str) -> str:
    """``SUPABASE_URL`` -> ``SUPABASE_DIRECT_URL``: the backend's own port, next to the relayed URL."""
    return env_name[: -len("_URL")] + "_DIRECT_URL"
