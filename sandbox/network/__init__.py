"""The sandbox's network model: links with known latency, planted by user-space TCP relays.

``python -m sandbox up --network PROFILE [--network-rtt LINK=DURATION,...]``
starts one relay per delayed link (``relay-<link>`` in ``python -m sandbox
status``) and points the URLs of ``python -m sandbox env`` at them. The active
profile is written to ``<state>/network.json``, whose path the env carries as
``SANDBOX_NETWORK``; :func:`active_profile` reads it (docs/network.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .links import LINK_NAMES, LINKS, Link, LinkPort
from .profile import (
    FORMAT,
    LOOPBACK,
    Jitter,
    LinkSpec,
    NetworkError,
    Profile,
    load_profile,
    parse_bandwidth,
    parse_duration,
    parse_rtt_overrides,
    profile_from_dict,
    resolve,
    shipped,
)

__all__ = [
    "ENV_NAME",
    "FILE_NAME",
    "FORMAT",
    "LINKS",
    "LINK_NAMES",
    "LOOPBACK",
    "Jitter",
    "Link",
    "LinkPort",
    "LinkSpec",
    "NetworkError",
    "Profile",
    "active_profile",
    "load_profile",
    "parse_bandwidth",
    "parse_duration",
    "parse_rtt_overrides",
    "profile_from_dict",
    "resolve",
    "shipped",
    "summary",
    "write_active",
]

#: The sandbox env entry holding the path of the active profile's JSON.
ENV_NAME = "SANDBOX_NETWORK"
#: Its file name in the sandbox state dir.
FILE_NAME = "network.json"


def write_active(state_dir: Path, profile: Profile) -> Path:
    """Record ``profile`` as the sandbox's active network (atomically); returns the file."""
    path = Path(state_dir) / FILE_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(profile.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def active_profile(state_dir: str | os.PathLike[str] | None = None,
                   env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The sandbox's active network profile as recorded at ``up`` (docs/network.md), or ``None``.

    Looks in ``<state_dir>/network.json`` when ``state_dir`` is given, else in the
    file named by ``SANDBOX_NETWORK`` in ``env`` (``os.environ`` by default).
    ``None`` means no sandbox network is known: not a sandbox, or one started
    before profiles existed. A loopback sandbox returns the ``loopback`` profile
    (every link direct).
    """
    if state_dir is not None:
        path = Path(state_dir) / FILE_NAME
    else:
        value = (os.environ if env is None else env).get(ENV_NAME, "")
        if not value:
            return None
        path = Path(value)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def summary(meta: Mapping[str, Any] | None) -> str:
    """One line for a report header: ``spike: supabase 230 ms, convex 230 ms, ... (TLS 1.3)``."""
    if meta is None:
        return "measured against deployments (no sandbox network)"
    links = meta.get("links") or {}
    relayed = [n for n in LINK_NAMES if (links.get(n) or {}).get("relayed")]
    if not relayed:
        return f"{meta.get('name', LOOPBACK)}: every link direct (loopback)"
    parts = []
    for name in relayed:
        link = links[name]
        text = f"{name} {link['rtt_ms']:g} ms"
        jitter = link.get("jitter") or {}
        if jitter.get("distribution", "none") != "none":
            text += f" ±{jitter['sigma_ms']:g}"
        if link.get("tls", "none") != "none":
            text += f" TLS {link['tls']}"
        if link.get("bandwidth_mbit"):
            text += f" {link['bandwidth_mbit']:g} Mbit/s"
        parts.append(text)
    direct = "; other links direct" if len(relayed) < len(LINK_NAMES) else ""
    return f"{meta.get('name')}: {', '.join(parts)} (RTT{direct})"
