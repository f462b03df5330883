"""A private network namespace for a child process: its own 127.0.0.1, so the
sandbox's fixed ports cannot clash with a stack already running on this machine."""

from __future__ import annotations

import shutil
import subprocess


def netns_prefix() -> list[str] | None:
    """``unshare -n`` with loopback up, when this process may create a network namespace."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return None
    probe = subprocess.run([unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    return [unshare, "-n", "bash", "-c", f'{ip} link set lo up && exec "$@"', "netns"]
