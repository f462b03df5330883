"""Before any user starts: can every selected target's host be reached at all?

A refused or unresolvable host would otherwise turn a whole bounded run into a
column of connection errors. One TCP connect per distinct host, no request sent,
so it is safe against production deployments too.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from harness.targets import URL_SETTING, Endpoints

CONNECT_TIMEOUT_S = 5.0


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def unreachable(endpoints: Endpoints, targets: Iterable[str], timeout: float = CONNECT_TIMEOUT_S) -> list[str]:
    """One line per host that does not accept a TCP connection, naming the targets and the setting behind it."""
    by_url: dict[str, list[str]] = {}
    for target in targets:
        base = endpoints.base_url(target)
        if base:
            by_url.setdefault(base, []).append(target)
    problems = []
    for url, names in by_url.items():
        host, port = _address(url)
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            reason = e.strerror or type(e).__name__
            problems.append(f"{', '.join(names)}: cannot connect to {url} ({URL_SETTING[names[0]]}): {reason}")
    return problems
