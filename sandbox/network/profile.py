"""Network profiles: per-link RTT, jitter, bandwidth and TLS, from a shipped name or a TOML/JSON file.

A profile lists the links it delays; an unlisted link is direct (no relay).
Format (docs/network.md)::

    name = "cross-region-us"             # optional (default: the file's stem)
    description = "..."                  # optional

    [defaults]                           # optional: inherited by every listed link
    tls = "1.3"
    jitter = { distribution = "normal", sigma = "1ms" }

    [links.supabase]
    rtt = "62ms"                         # round trip; half each way
    bandwidth = "100mbit"                # optional cap, shared by the link's connections
    note = "AWS us-east-1 <-> us-west-1" # where the figure comes from

Every problem is a :class:`NetworkError` whose message is one line naming the
file and the key.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .links import LINK_NAMES, LINKS

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
LOOPBACK = "loopback"
FORMAT = "sandbox-network/1"

DISTRIBUTIONS = ("none", "normal", "uniform", "pareto")
TLS_VERSIONS = ("none", "1.2", "1.3")
# Round trips a new connection pays before its first byte: TCP's handshake, then TLS's.
TLS_HANDSHAKE_RTTS = {"none": 0, "1.3": 1, "1.2": 2}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(us|µs|ms|s)\s*$")
_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_BANDWIDTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)(?:/s)?\s*$", re.IGNORECASE)
_BANDWIDTH_UNITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "bps": 1.0, "kbps": 1e3, "mbps": 1e6,
                    "gbps": 1e9}
_LINK_KEYS = ("rtt", "jitter", "bandwidth", "tls", "note")
_TOP_KEYS = ("name", "description", "defaults", "links")


class NetworkError(ValueError):
    """A bad profile, override or relay option, worded as one line."""


def parse_duration(text: str, what: str = "duration") -> float:
    """``"80ms"`` -> 0.08 (seconds). Units: us, ms, s; a unit is required."""
    if not isinstance(text, str):
        raise NetworkError(f"{what}: expected a duration such as \"80ms\", got {text!r}")
    m = _DURATION.match(text)
    if m is None:
        hint = " (add a unit: us, ms or s)" if re.fullmatch(r"\s*\d+(\.\d+)?\s*", text) else ""
        raise NetworkError(f"{what}: {text!r} is not a duration such as \"80ms\"{hint}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_bandwidth(text: str, what: str = "bandwidth") -> float:
    """``"100mbit"`` -> 1e8 (bits per second). Units: bit, kbit, mbit, gbit (or bps, kbps, mbps, gbps)."""
    if not isinstance(text, str):
        raise NetworkError(f"{what}: expected a rate such as \"100mbit\", got {text!r}")
    m = _BANDWIDTH.match(text)
    if m is None:
        raise NetworkError(f"{what}: {text!r} is not a rate such as \"100mbit\" (units: kbit, mbit, gbit)")
    value = float(m.group(1)) * _BANDWIDTH_UNITS[m.group(2).lower()]
    if value <= 0:
        raise NetworkError(f"{what}: {text!r} must be above zero")
    return value


def format_duration(seconds: float) -> str:
    ms = seconds * 1e3
    if ms == 0:
        return "0ms"
    if ms < 1:
        return f"{seconds * 1e6:g}us"
    return f"{round(ms, 3):g}ms"


@dataclass(frozen=True)
class Jitter:
    """Per-packet delay variation, zero-mean, bounded (see docs/network.md):

    ``normal``: N(0, sigma) clipped to +-3 sigma; ``uniform``: +-sigma*sqrt(3) (standard deviation sigma);
    ``pareto``: a right-skewed tail (shape 3, shifted to mean 0), clipped to [-1.73 sigma, +10 sigma].
    """

    distribution: str = "none"
    sigma_s: float = 0.0

    @property
    def active(self) -> bool:
        return self.distribution != "none" and self.sigma_s > 0

    def bounds_s(self) -> tuple[float, float]:
        s = self.sigma_s
        if not self.active:
            return (0.0, 0.0)
        if self.distribution == "normal":
            return (-3 * s, 3 * s)
        if self.distribution == "uniform":
            return (-math.sqrt(3) * s, math.sqrt(3) * s)
        return (-1.5 * s / _PARETO_STD, 10 * s)  # pareto

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.distribution if self.active else "none",
                "sigma_ms": round(self.sigma_s * 1e3, 6) if self.active else 0.0}


# Pareto with shape 3 and scale 1: standard deviation sqrt(3/4), mean 1.5.
_PARETO_STD = math.sqrt(0.75)


@dataclass(frozen=True)
class LinkSpec:
    rtt_s: float = 0.0
    jitter: Jitter = field(default_factory=Jitter)
    bandwidth_bps: float | None = None
    tls: str = "none"
    note: str = ""

    @property
    def relayed(self) -> bool:
        """A relay is needed when the link adds any delay (TLS alone costs nothing at zero RTT)."""
        return self.rtt_s > 0 or self.jitter.active or self.bandwidth_bps is not None

    @property
    def setup_rtts(self) -> int:
        """Round trips a new connection waits before its first byte reaches the server."""
        return 1 + TLS_HANDSHAKE_RTTS[self.tls]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rtt_ms": round(self.rtt_s * 1e3, 6),
            "jitter": self.jitter.to_dict(),
            "bandwidth_mbit": None if self.bandwidth_bps is None else self.bandwidth_bps / 1e6,
            "tls": self.tls,
            "setup_rtts": self.setup_rtts,
            "relayed": self.relayed,
            "note": self.note,
        }


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    source: str = "shipped"
    links: Mapping[str, LinkSpec] = field(default_factory=dict)
    defaults: LinkSpec = field(default_factory=LinkSpec)
    overrides: Mapping[str, float] = field(default_factory=dict)

    def link(self, name: str) -> LinkSpec:
        return self.links.get(name, LinkSpec())

    def relayed_links(self) -> list[str]:
        return [n for n in LINK_NAMES if self.link(n).relayed]

    @property
    def label(self) -> str:
        """The name, with the overrides: ``spike+supabase=80ms``."""
        extra = ",".join(f"{k}={format_duration(v)}" for k, v in self.overrides.items())
        return f"{self.name}+{extra}" if extra else self.name

    def with_rtts(self, overrides: Mapping[str, float]) -> Profile:
        """A copy with these links' RTTs replaced; an unlisted link gets the profile's defaults."""
        links = dict(self.links)
        for name, rtt in overrides.items():
            links[name] = replace(links.get(name, self.defaults), rtt_s=rtt)
        return replace(self, links=links, overrides={**self.overrides, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """The metadata a run records (``<state>/network.json``; docs/network.md)."""
        links: dict[str, Any] = {}
        for name in LINK_NAMES:
            spec, link = self.link(name), LINKS[name]
            links[name] = {
                "from": link.source,
                "to": link.target,
                **spec.to_dict(),
                "ports": [
                    {"listen": p.listen if spec.relayed else None, "upstream": p.upstream,
                     "url": p.url if spec.relayed else p.upstream_url}
                    for p in link.ports
                ],
            }
        return {
            "format": FORMAT,
            "name": self.label,
            "profile": self.name,
            "description": self.description,
            "source": self.source,
            "overrides": {k: format_duration(v) for k, v in self.overrides.items()},
            "relayed": self.relayed_links(),
            "links": links,
        }


def profile_from_dict(meta: Mapping[str, Any]) -> Profile:
    """The profile back from :meth:`Profile.to_dict` (what ``network.json`` holds)."""
    links: dict[str, LinkSpec] = {}
    for name, raw in (meta.get("links") or {}).items():
        if name not in LINKS:
            continue
        jitter = raw.get("jitter") or {}
        bandwidth = raw.get("bandwidth_mbit")
        links[name] = LinkSpec(
            rtt_s=float(raw.get("rtt_ms", 0)) / 1e3,
            jitter=Jitter(jitter.get("distribution", "none"), float(jitter.get("sigma_ms", 0)) / 1e3),
            bandwidth_bps=None if bandwidth is None else float(bandwidth) * 1e6,
            tls=raw.get("tls", "none"),
            note=raw.get("note", ""),
        )
    overrides = {k: parse_duration(v) for k, v in (meta.get("overrides") or {}).items()}
    return Profile(
        name=meta.get("profile") or meta.get("name") or LOOPBACK,
        description=meta.get("description", ""),
        source=meta.get("source", "shipped"),
        links={n: s for n, s in links.items() if s != LinkSpec() or n in overrides},
        overrides=overrides,
    )


def shipped() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def _jitter(value: Any, where: str) -> Jitter:
    if value in ("none", None):
        return Jitter()
    if not isinstance(value, dict):
        raise NetworkError(f"{where}: expected {{ distribution = \"normal\", sigma = \"1ms\" }} or \"none\", got {value!r}")
    unknown = sorted(set(value) - {"distribution", "sigma"})
    if unknown:
        raise NetworkError(f"{where}: unknown key {unknown[0]!r} (known: distribution, sigma)")
    dist = value.get("distribution", "normal")
    if dist not in DISTRIBUTIONS:
        raise NetworkError(f"{where}.distribution: {dist!r} is not one of {', '.join(DISTRIBUTIONS)}")
    if "sigma" not in value and dist != "none":
        raise NetworkError(f"{where}.sigma: missing (e.g. sigma = \"1ms\")")
    sigma = parse_duration(value.get("sigma", "0ms"), f"{where}.sigma")
    return Jitter(dist, sigma)


def _link_spec(raw: Any, base: LinkSpec, where: str) -> LinkSpec:
    if not isinstance(raw, dict):
        raise NetworkError(f"{where}: expected a table of {', '.join(_LINK_KEYS)}")
    unknown = sorted(set(raw) - set(_LINK_KEYS))
    if unknown:
        raise NetworkError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_LINK_KEYS)})")
    spec = base
    if "rtt" in raw:
        spec = replace(spec, rtt_s=parse_duration(raw["rtt"], f"{where}.rtt"))
    if "jitter" in raw:
        spec = replace(spec, jitter=_jitter(raw["jitter"], f"{where}.jitter"))
    if "bandwidth" in raw:
        value = raw["bandwidth"]
        spec = replace(spec, bandwidth_bps=None if value in ("none", None) else parse_bandwidth(value, f"{where}.bandwidth"))
    if "tls" in raw:
        tls = str(raw["tls"])
        if tls not in TLS_VERSIONS:
            raise NetworkError(f"{where}.tls: {raw['tls']!r} is not one of {', '.join(repr(t) for t in TLS_VERSIONS)}")
        spec = replace(spec, tls=tls)
    if "note" in raw:
        if not isinstance(raw["note"], str):
            raise NetworkError(f"{where}.note: expected a string")
        spec = replace(spec, note=raw["note"])
    return spec


def parse_profile(data: Any, name: str, source: str) -> Profile:
    """A profile from its parsed TOML/JSON document; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise NetworkError(f"network profile {source}: expected a table at the top level")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise NetworkError(f"network profile {source}: unknown key {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
    defaults = _link_spec(data.get("defaults", {}), LinkSpec(), f"network profile {source}: defaults")
    raw_links = data.get("links", {})
    if not isinstance(raw_links, dict):
        raise NetworkError(f"network profile {source}: links: expected a table per link")
    links: dict[str, LinkSpec] = {}
    for link, raw in raw_links.items():
        if link not in LINKS:
            raise NetworkError(
                f"network profile {source}: links.{link}: unknown link (known: {', '.join(LINK_NAMES)})"
            )
        links[link] = _link_spec(raw, defaults, f"network profile {source}: links.{link}")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise NetworkError(f"network profile {source}: {key}: expected a string")
    return Profile(
        name=data.get("name") or name,
        description=data.get("description", ""),
        source=source,
        links={n: links[n] for n in LINK_NAMES if n in links},
        defaults=defaults,
    )


def read_profile_file(path: Path) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NetworkError(f"network profile {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise NetworkError(f"network profile {path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'}: "
                           f"{str(exc).splitlines()[0]}") from None
    return parse_profile(data, path.stem, str(path))


def load_profile(spec: str | None) -> Profile:
    """A shipped profile by name (``spike``), or a ``.toml``/``.json`` file; ``None`` -> ``loopback``."""
    spec = (spec or LOOPBACK).strip()
    if spec in shipped():
        profile = read_profile_file(PROFILES_DIR / f"{spec}.toml")
        return replace(profile, source="shipped")
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".toml", ".json") or path.exists():
        if not path.is_file():
            raise NetworkError(f"network profile {spec}: no such file")
        return read_profile_file(path.resolve())
    raise NetworkError(
        f"unknown network profile {spec!r} (shipped: {', '.join(shipped())}; or a path to a .toml/.json file)"
    )


def parse_rtt_overrides(text: str) -> dict[str, float]:
    """``"supabase=80ms,convex=20ms"`` -> ``{"supabase": 0.08, "convex": 0.02}``."""
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        link, sep, value = item.partition("=")
        link = link.strip()
        if not sep:
            raise NetworkError(f"--network-rtt: {item!r} is not LINK=DURATION (e.g. supabase=80ms)")
        if link not in LINKS:
            raise NetworkError(f"--network-rtt: unknown link {link!r} (known: {', '.join(LINK_NAMES)})")
        if link in out:
            raise NetworkError(f"--network-rtt: link {link!r} is given twice")
        out[link] = parse_duration(value, f"--network-rtt {link}")
    if not out:
        raise NetworkError("--network-rtt: expected LINK=DURATION[,LINK=DURATION...] (e.g. supabase=80ms,convex=20ms)")
    return out


def resolve(network: str | None = None, rtt: str | None = None) -> Profile:
    """What ``--network`` and ``--network-rtt`` name together."""
    profile = load_profile(network)
    if rtt:
        profile = profile.with_rtts(parse_rtt_overrides(rtt))
    return profile
