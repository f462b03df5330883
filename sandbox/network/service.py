"""The relays as sandbox services: ``relay-<link>`` for each link the active profile delays.

A relay runs when its link is delayed by the profile (``enabled``) and the
services it connects are part of the stack (``attached``: it starts with them).
The generator's relays export the URLs clients must use (``SUPABASE_URL``, ...)
and keep the backends' own ports as ``*_DIRECT_URL``.
"""

from __future__ import annotations

import sys

from sandbox.services import Context, Service

from .links import HOST, LINKS, Link, direct_name
from .profile import LinkSpec, format_duration


def relay_argv(link: Link, spec: LinkSpec) -> list[str]:
    argv = [sys.executable, "-m", "sandbox", "relay", "--link", link.name]
    for port in link.ports:
        argv += ["--route", f"{port.listen}={HOST}:{port.upstream}"]
    argv += ["--rtt", format_duration(spec.rtt_s), "--tls", spec.tls]
    if spec.jitter.active:
        argv += ["--jitter", f"{spec.jitter.distribution}:{format_duration(spec.jitter.sigma_s)}"]
    if spec.bandwidth_bps is not None:
        argv += ["--bandwidth", f"{spec.bandwidth_bps / 1e3:g}kbit"]
    return argv


def _spec(ctx: Context, link: Link) -> LinkSpec:
    return ctx.network.link(link.name) if ctx.network is not None else LinkSpec()


def relay_service(link: Link) -> Service:
    def exports(_ctx: Context) -> dict[str, str]:
        if not link.generator:
            return {}
        out: dict[str, str] = {}
        for port in link.ports:
            out[port.env] = port.url
            out[direct_name(port.env)] = port.upstream_url
        return out

    return Service(
        name=f"relay-{link.name}",
        argv=lambda ctx: relay_argv(link, _spec(ctx, link)),
        # the last port is bound last: when it accepts, every route does
        health_url=f"tcp://{HOST}:{link.ports[-1].listen}",
        ports=tuple(p.listen for p in link.ports),
        exports=exports,
        enabled=lambda ctx: _spec(ctx, link).relayed,
        attached_to=link.requires,
        startup_timeout=15.0,
    )


RELAYS: list[Service] = [relay_service(link) for link in LINKS.values()]
