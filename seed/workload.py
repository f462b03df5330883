"""The load tests' key set (``python -m seed workload``), format ``crm-workload/1``
(docs/formats.md, docs/seed.md).

Known phones carry a Zipf weight: the contact ranked k (in a seeded shuffle)
weighs ``1 / k**s``, scaled so the hottest is 1000. With s = 1.1 and 10,000
contacts the hottest 1% draw about 65% of lookups, the way a few busy
customers dominate a CRM's inbound traffic. Unknown phones are valid-format
Indonesian mobile numbers that are in no workspace.
"""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import SeedError
from .generate import random_phone
from .supabase_rest import SupabaseRest
from .tables import BY_NAME

FORMAT = "crm-workload/1"
# The master ships the file to every worker: keep it to a few MB on big tenants.
MAX_KNOWN = 100_000
ROLE_ORDER = {"owner": 0, "admin": 1, "agent": 2}


def zipf_weights(n: int, s: float, top: float = 1000.0) -> list[float]:
    return [round(top / (k**s), 6) for k in range(1, n + 1)]


def build(
    workspaces: list[dict[str, Any]],
    members: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
    *,
    known: int | None = None,
    unknown: int | None = None,
    zipf: float = 1.1,
    seed: int = 1,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """The workload document from plain rows (pure: no I/O)."""
    if zipf <= 0:
        raise SeedError("--zipf must be positive", 2)
    if only:
        missing = sorted(set(only) - {w["id"] for w in workspaces})
        if missing:
            raise SeedError(f"--workspace {missing[0]} does not exist in Supabase", 2)
        workspaces = [w for w in workspaces if w["id"] in set(only)]
    ws_ids = {w["id"] for w in workspaces}
    best: dict[str, tuple[int, str, str]] = {}
    for m in members:
        key = (ROLE_ORDER.get(m["role"], 9), str(m.get("created_at") or ""), m["user_id"])
        if m["workspace_id"] in ws_ids and (m["workspace_id"] not in best or key < best[m["workspace_id"]]):
            best[m["workspace_id"]] = key
    usable = [w for w in workspaces if w["id"] in best]
    if not usable:
        raise SeedError("no workspace with a member in Supabase: run `python -m seed generate` first")
    usable_ids = {w["id"] for w in usable}

    rng = random.Random(seed)
    pool = sorted((c["workspace_id"], c["phone"]) for c in contacts if c["workspace_id"] in usable_ids)
    if not pool:
        raise SeedError("no contacts in the selected workspaces: run `python -m seed generate` first")
    rng.shuffle(pool)
    pool = pool[: known or MAX_KNOWN]
    weights = zipf_weights(len(pool), zipf)
    used = {c["phone"] for c in contacts}
    n_unknown = unknown if unknown is not None else max(10, len(pool) // 10)
    ordered_ws = sorted(usable_ids)
    return {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "workspaces": [
            {"id": w["id"], "name": w["name"], "member_user_id": best[w["id"]][2]}
            for w in sorted(usable, key=lambda w: (str(w.get("created_at") or ""), w["id"]))
        ],
        "known": [
            {"workspace_id": ws, "phone": p, "weight": wt} for (ws, p), wt in zip(pool, weights, strict=True)
        ],
        "unknown": [
            {"workspace_id": ordered_ws[i % len(ordered_ws)], "phone": random_phone(rng, used)}
            for i in range(n_unknown)
        ],
    }


def fetch_rows(rest: SupabaseRest) -> tuple[list[dict], list[dict], list[dict]]:
    rest.check_schema()
    ws = [r for page in rest.scan(BY_NAME["workspaces"], columns="id,name,created_at") for r in page]
    mem = [
        r
        for page in rest.scan(BY_NAME["workspace_members"], columns="id,workspace_id,user_id,role,created_at")
        for r in page
    ]
    con = [r for page in rest.scan(BY_NAME["contacts"], columns="id,workspace_id,phone") for r in page]
    return ws, mem, con


def write(doc: dict[str, Any], path: Path) -> None:
    """Atomically: the harness never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SeedError(f"cannot write {path}: {exc.strerror}") from None


def hot_share(doc: dict[str, Any], fraction: float = 0.01) -> float:
    """Share of draws that go to the hottest ``fraction`` of known phones."""
    w = sorted((k["weight"] for k in doc["known"]), reverse=True)
    if not w:
        return 0.0
    top = max(1, int(len(w) * fraction))
    return sum(w[:top]) / sum(w)
