"""Parity between Supabase and Convex (``python -m seed verify``).

1. Per table: row count and fingerprint (docs/formats.md), computed here over
   the Supabase rows (keyset scan, converted to Convex form) and by
   ``migrate:tableDigest`` on Convex. The fingerprint is order-independent and
   changes with any missing, duplicated or different row.
2. N sampled lookups: Supabase RPC ``get_contact_context`` against Convex
   ``contacts:getContextByPhone`` (called as a member of the workspace, via the
   admin key's acting-as identity), deep-compared in canonical form. Plus one
   phone that does not exist: both must answer null.
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

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables) and all(lk.ok for lk in self.lookups)

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


def supabase_digest(rest: SupabaseRest, table: Table, keep: Callable[[dict], None] | None = None) -> Digest:
    d = Digest()
    for page in rest.scan(table):
        if keep is not None:
            for row in page:
                keep(row)
        digest_docs([to_convex(table, row) for row in page], d)
    return d


def convex_digest(convex: ConvexClient, table: Table) -> Digest:
    d = Digest()
    cursor: str | None = None
    while True:
        value = convex.query(
            "migrate:tableDigest", {"table": table.convex, "cursor": cursor, "numItems": DIGEST_PAGE}
        )
        d.add_hex(int(value["count"]), str(value["digest"]))
        if value.get("isDone"):
            return d
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
    on_table: Callable[[TableParity], None] | None = None,
) -> Report:
    report = Report()
    contacts: list[tuple[str, str]] = []
    members: dict[str, str] = {}

    for t in TABLES:
        keep: Callable[[dict], None] | None = None
        if t.name == "contacts":

            def keep(row: dict) -> None:
                contacts.append((row["workspace_id"], row["phone"]))
        elif t.name == "workspace_members":

            def keep(row: dict) -> None:
                members.setdefault(row["workspace_id"], row["user_id"])

        sd = supabase_digest(rest, t, keep)
        cd = convex_digest(convex, t)
        parity = TableParity(t.name, sd.count, sd.hex, cd.count, cd.hex)
        report.tables.append(parity)
        if on_table:
            on_table(parity)

    rng = random.Random(seed)
    picked = rng.sample(contacts, min(samples, len(contacts)))
    if picked:
        used = {p for _, p in contacts}
        picked.append((picked[0][0], random_phone(rng, used)))  # a phone that does not exist
    clients: dict[str, ConvexClient] = {}
    try:
        for ws, phone in picked:
            user = members.get(ws)
            # As a member: the public, member-checked query the load test calls. A
            # workspace without members can only be read through the internal variant.
            path, client = "contacts:getContextByPhoneInternal", convex
            if user is not None:
                if ws not in clients:
                    identity = {
                        "subject": user,
                        "issuer": "seed-verify",
                        "tokenIdentifier": f"seed-verify|{user}",
                    }
                    clients[ws] = ConvexClient(convex.url, admin_key, identity=identity)
                path, client = "contacts:getContextByPhone", clients[ws]
            args = {"p_workspace_id": ws, "p_phone": phone, "p_message_limit": 20}
            sb = rest.rpc("get_contact_context", args)
            try:
                cx = client.query(path, {"workspaceId": ws, "phone": phone})
            except SeedError as exc:
                report.lookups.append(LookupParity(ws, phone, [f"Convex lookup failed: {exc}"]))
                continue
            report.lookups.append(LookupParity(ws, phone, diff(sb, cx)))
    finally:
        for c in clients.values():
            c.close()
    return report
