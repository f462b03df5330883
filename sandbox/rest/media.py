"""Content negotiation on ``Accept``, as PostgREST v14 does it.

The header is split the way wai-extra's ``parseHttpAccept`` splits it (spaces
removed, entries sorted by quality, then by specificity = number of ``;`` minus
number of ``*``; stable otherwise), each entry is decoded like
``MediaType.decodeMediaType`` and the first one the endpoint can produce wins
(``Plan.negotiateContent``). Nothing matching is 406 PGRST107 naming every
entry in PostgREST's own spelling (``MediaType.toMime``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import ApiError

JSON = "application/json"
OBJECT = "application/vnd.pgrst.object+json"
PLAN = "application/vnd.pgrst.plan"
# EXPLAIN options in the order PostgREST always writes them (``SqlFragment.explainF``)
PLAN_OPTIONS = ("analyze", "verbose", "settings", "buffers", "wal")

_KNOWN = {
    ("application", "json"): "application/json",
    ("application", "geo+json"): "application/geo+json",
    ("text", "csv"): "text/csv",
    ("text", "plain"): "text/plain",
    ("text", "xml"): "text/xml",
    ("application", "openapi+json"): "application/openapi+json",
    ("application", "x-www-form-urlencoded"): "application/x-www-form-urlencoded",
    ("application", "octet-stream"): "application/octet-stream",
    ("*", "*"): "*/*",
}
# ``type/subtype`` then ``;key=value`` pairs (value quoted, or ``[A-Za-z0-9|-]+``)
_TOKEN = re.compile(r"([A-Za-z0-9.*]+)/([A-Za-z0-9.*+-]+)")
_PARAM = re.compile(r'\s*;\s*([A-Za-z0-9-]+)\s*=\s*(?:"([^"]*)"|([A-Za-z0-9|-]+))')


@dataclass(frozen=True)
class MediaType:
    """One decoded ``Accept`` entry.

    ``kind``: ``json``, ``any`` (``*/*``), ``object`` (singular), ``array-strip``,
    ``plan`` or ``other`` (a type the gateway does not produce).
    """

    kind: str
    mime: str
    stripped: bool = False  # ``nulls=stripped`` on object / array
    target: MediaType | None = None  # plan: the representation whose query is explained
    plan_format: str = "text"  # plan: ``json`` | ``text``
    plan_options: tuple[str, ...] = ()

    @property
    def singular(self) -> bool:
        return (self.target or self).kind == "object"

    def content_type(self) -> bytes:
        """``Content-Type`` of a response in this media type (``MediaType.toContentType``)."""
        return f"{self.mime}; charset=utf-8".encode()


JSON_MEDIA = MediaType("json", JSON)
_PRODUCED = ("json", "any", "object", "array-strip")
ANY_MEDIA = MediaType("any", "*/*")


def _decode(entry: str) -> MediaType:
    match = _TOKEN.match(entry)
    if match is None:
        return MediaType("other", entry)
    main, sub = match.group(1).lower(), match.group(2).lower()
    params: dict[str, str] = {}
    pos = match.end()
    while True:
        param = _PARAM.match(entry, pos)
        if param is None:
            break
        value = param.group(2) if param.group(2) is not None else param.group(3)
        params.setdefault(param.group(1).lower(), value)
        pos = param.end()
    stripped = params.get("nulls") == "stripped"
    if (main, sub) == ("application", "json"):
        return JSON_MEDIA
    if (main, sub) == ("*", "*"):
        return ANY_MEDIA
    if (main, sub) in _KNOWN:
        return MediaType("other", _KNOWN[(main, sub)])
    if main == "application" and sub in ("vnd.pgrst.object+json", "vnd.pgrst.object"):
        return MediaType("object", OBJECT + (";nulls=stripped" if stripped else ""), stripped)
    if main == "application" and sub in ("vnd.pgrst.array+json", "vnd.pgrst.array"):
        if stripped:
            return MediaType("array-strip", "application/vnd.pgrst.array+json;nulls=stripped", True)
        return JSON_MEDIA
    if main == "application" and sub in ("vnd.pgrst.plan", "vnd.pgrst.plan+text", "vnd.pgrst.plan+json"):
        fmt = "json" if sub.endswith("+json") else "text"
        target = _decode(params.get("for", JSON))
        wanted = set(params.get("options", "").split("|"))
        options = tuple(o for o in PLAN_OPTIONS if o in wanted)
        mime = f'{PLAN}+{fmt}; for="{target.mime}"' + (f"; options={'|'.join(options)}" if options else "")
        return MediaType("plan", mime, target=target, plan_format=fmt, plan_options=options)
    return MediaType("other", entry)


def _quality(entry: str) -> float:
    _, sep, rest = entry.partition(";q=")
    if not sep:
        return 1.0
    raw = rest.split(";", 1)[0]
    try:
        return float(raw)
    except ValueError:
        return 1.0


def _specificity(entry: str) -> int:
    return entry.count(";") - entry.count("*")


@functools.lru_cache(maxsize=256)
def accepted(header: str | None) -> tuple[MediaType, ...]:
    """The entries of an ``Accept`` header, decoded, in PostgREST's order of preference."""
    if header is None:
        return (ANY_MEDIA,)
    entries = [part.replace(" ", "") for part in header.split(",")]
    ranked = sorted(entries, key=lambda e: (_quality(e), _specificity(e.partition(";q=")[0])), reverse=True)
    return tuple(_decode(e.partition(";q=")[0]) for e in ranked)


def negotiate(header: str | None, plan_enabled: bool) -> MediaType:
    """The media type of the response, or 406 PGRST107."""
    media = accepted(header)
    for mt in media:
        if mt.kind in _PRODUCED:
            return mt
        # a plan is produced when enabled and its `for` representation is one the endpoint produces
        if mt.kind == "plan" and plan_enabled and mt.target is not None and mt.target.kind in _PRODUCED:
            return mt
    raise ApiError(406, "PGRST107", "None of these media types are available: " + ", ".join(m.mime for m in media))
