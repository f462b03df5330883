"""Parity between Supabase and Convex (``python -m seed verify``).

1. Per table: row count and fingerprint (docs/formats.md), computed here over
   the Supabase rows (keyset scan, converted to Convex form) and by
   ``migrate:tableDigest`` on Convex. The fingerprint is order-independent and
   changes with any missing, duplicated or different row.
2. N sampled lookups: Supabase RPC ``get_contact_context`` against Convex
   ``contacts:getContextByPhone`` (called as a member of the workspace, via the
   admin key's acting-as identity), deep-compared in canonical form. Plus one
   phone that does not exist: both must answer null. Each is also fetched
   through the official client (the PyPI ``convex`` ``ConvexClient``, over the
   WebSocket sync protocol, admin auth, ``contacts:getContextByPhoneInternal``)
   and compared the same way.

By default the load tests' writes are left out (:mod:`seed.loadtest`): their
messages are skipped and the conversations they touched are compared as they
were before; contacts with such a conversation on either side are not sampled.
``include_loadtest`` compares the data as it is.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .convex_client import ConvexClient
from .errors import SeedError
from .fingerprint import Digest, digest_docs
from .generate import random_phone
from .loadtest import MESSAGE_TYPE, fields_without_loadtest, touched
from .supabase_rest import SupabaseRest
from .tables import TABLES, Table, to_convex

DIGEST_PAGE = 4000
MAX_DIFFS = 8


@dataclass
class TableParity:
    name: str
    supabase_count: int
    supabase_digest: str
    convex_count: int
    convex_digest: str

    @property
    def ok(self) -> bool:
        return self.supabase_count == self.convex_count and self.supabase_digest == self.convex_digest


@dataclass
class LookupParity:
    workspace_id: str
    phone: str
    differences: list[str]

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class Report:
    tables: list[TableParity] = field(default_factory=list)
    lookups: list[LookupParity] = field(default_factory=list)
    loadtest_messages: dict[str, int] = field(default_factory=lambda: {"supabase": 0, "convex": 0})
    touched_contacts: int = 0  # contacts left out of the sampled lookups

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables) and all(lk.ok for lk in self.lookups)

    def empty_side(self) -> str | None:
        """"supabase", "convex" or "both" when a side holds no rows at all."""
        sb = sum(t.supabase_count for t in self.tables)
        cx = sum(t.convex_count for t in self.tables)
        if sb == 0 and cx == 0:
            return "both"
        return "supabase" if sb == 0 else "convex" if cx == 0 else None

    def mismatches(self) -> list[str]:
        out = [
            f"{t.name}: Supabase {t.supabase_count} rows / {t.supabase_digest}, "
            f"Convex {t.convex_count} rows / {t.convex_digest}"
            for t in self.tables
            if not t.ok
        ]
        for lk in self.lookups:
            if not lk.ok:
                out.append(f"lookup {lk.workspace_id} {lk.phone}: " + "; ".join(lk.differences))
        return out


def supabase_digest(
    rest: SupabaseRest,
    table: Table,
    keep: Callable[[dict], None] | None = None,
    without_loadtest: bool = False,
) -> tuple[Digest, int]:
    """The table's digest (and how many loadtest messages were skipped)."""
    d = Digest()
    skipped = 0
    for page in rest.scan(table):
        rows = page
        if without_loadtest and table.name == "messages":
            rows = [r for r in page if r.get("message_type") != MESSAGE_TYPE]
            skipped += len(page) - len(rows)
        elif without_loadtest and table.name == "conversations":
            rows = [{**r, **fields_without_loadtest(rest, r["id"])} if touched(r) else r for r in page]
        if keep is not None:
            for row in page:
                keep(row)
        digest_docs([to_convex(table, row) for row in rows], d)
    return d, skipped


def convex_digest(
    convex: ConvexClient, table: Table, without_loadtest: bool = False
) -> tuple[Digest, int, set[str]]:
    """The table's digest, loadtest messages skipped, and the conversations the write task touched."""
    d = Digest()
    skipped = 0
    touched_ids: set[str] = set()
    path = "migrate:tableDigestWithoutLoadtest" if without_loadtest else "migrate:tableDigest"
    cursor: str | None = None
    while True:
        value = convex.query(path, {"table": table.convex, "cursor": cursor, "numItems": DIGEST_PAGE})
        d.add_hex(int(value["count"]), str(value["digest"]))
        skipped += int(value.get("skipped", 0))
        touched_ids.update(value.get("touched") or ())
        if value.get("isDone"):
            return d, skipped, touched_ids
        cursor = value["cursor"]


def diff(a: Any, b: Any, path: str = "$", out: list[str] | None = None) -> list[str]:
    """Differences between two canonical lookups, as ``path: supabase=… convex=…``."""
    out = [] if out is None else out
    if len(out) >= MAX_DIFFS:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(
                    f"{path}.{key}: " + ("missing on Supabase" if key not in a else "missing on Convex")
                )
            else:
                diff(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items on Supabase, {len(b)} on Convex")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            diff(x, y, f"{path}[{i}]", out)
    elif a != b or isinstance(a, bool) != isinstance(b, bool):
        out.append(f"{path}: supabase={_short(a)} convex={_short(b)}")
    return out[:MAX_DIFFS]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def verify(
    rest: SupabaseRest,
    convex: ConvexClient,
    admin_key: str,
    *,
    samples: int = 20,
    seed: int = 7,
    include_loadtest: bool = False,
    on_table: Callable[[TableParity], None] | None = None,
) -> Report:
    report = Report()
    seen = _Seen()
    for t in TABLES:
        # Convex first: the conversations it reports as touched decide which contacts the Supabase scan sets aside.
        cd, cx_skipped, cx_touched = convex_digest(convex, t, not include_loadtest)
        sd, sb_skipped = supabase_digest(rest, t, seen.keeper(t, cx_touched, include_loadtest), not include_loadtest)
        if t.name == "messages":
            report.loadtest_messages = {"supabase": sb_skipped, "convex": cx_skipped}
        parity = TableParity(t.name, sd.count, sd.hex, cd.count, cd.hex)
        report.tables.append(parity)
        if on_table:
            on_table(parity)
    report.touched_contacts = len(seen.touched_contacts)
    if report.empty_side() is None:  # with a side empty there is nothing to sample: the caller says which
        report.lookups = _sampled_lookups(rest, convex, admin_key, seen, samples, seed)
    return report


@dataclass
class _Seen:
    """What the Supabase scan keeps for the sampled lookups."""

    contacts: list[tuple[str, str, str]] = field(default_factory=list)  # (workspace, phone, contact id)
    members: dict[str, str] = field(default_factory=dict)  # workspace -> a member's user id
    touched_contacts: set[str] = field(default_factory=set)  # contacts with a conversation the write task touched

    def keeper(self, t: Table, cx_touched: set[str], include_loadtest: bool) -> Callable[[dict], None] | None:
        def contact(row: dict) -> None:
            self.contacts.append((row["workspace_id"], row["phone"], row["id"]))

        def member(row: dict) -> None:
            self.members.setdefault(row["workspace_id"], row["user_id"])

        def conversation(row: dict) -> None:
            if touched(row) or row["id"] in cx_touched:
                self.touched_contacts.add(row["contact_id"])

        if t.name == "conversations":
            return None if include_loadtest else conversation
        return {"contacts": contact, "workspace_members": member}.get(t.name)


def _sampled_lookups(rest: SupabaseRest, convex: ConvexClient, admin_key: str, seen: _Seen, samples: int,
                     seed: int) -> list[LookupParity]:
    rng = random.Random(seed)
    candidates = [(ws, phone) for ws, phone, cid in seen.contacts if cid not in seen.touched_contacts]
    picked = rng.sample(candidates, min(samples, len(candidates)))
    if picked:
        used = {p for _, p, _ in seen.contacts}
        picked.append((picked[0][0], random_phone(rng, used)))  # a phone that does not exist
    out: list[LookupParity] = []
    clients: dict[str, ConvexClient] = {}
    official = _official_client(convex.url, admin_key)
    try:
        for ws, phone in picked:
            user = seen.members.get(ws)
            # As a member: the public, member-checked query the load test calls. A
            # workspace without members can only be read through the internal variant.
            path, client = "contacts:getContextByPhoneInternal", convex
            if user is not None:
                if ws not in clients:
                    identity = {"subject": user, "issuer": "seed-verify", "tokenIdentifier": f"seed-verify|{user}"}
                    clients[ws] = ConvexClient(convex.url, admin_key, identity=identity)
                path, client = "contacts:getContextByPhone", clients[ws]
            sb = rest.rpc("get_contact_context", {"p_workspace_id": ws, "p_phone": phone, "p_message_limit": 20})
            try:
                cx = client.query(path, {"workspaceId": ws, "phone": phone})
            except SeedError as exc:
                out.append(LookupParity(ws, phone, [f"Convex lookup failed: {exc}"]))
                continue
            differences = diff(sb, cx)
            try:
                via_official = official.query("contacts:getContextByPhoneInternal", {"workspaceId": ws, "phone": phone})
            except Exception as exc:  # the official client raises its own error types
                differences.append(f"official convex client: {type(exc).__name__}: {str(exc)[:120]}")
            else:
                differences += [f"official convex client: {d}" for d in diff(sb, via_official)]
            out.append(LookupParity(ws, phone, differences))
    finally:
        for c in clients.values():
            c.close()
    return out


def _official_client(url: str, admin_key: str) -> Any:
    """The PyPI ``convex`` client (blocking; never used inside Locust), with the admin key."""
    from convex import ConvexClient as OfficialClient

    client = OfficialClient(url)
    client.set_admin_auth(admin_key)
    return client
