"""The phones the load draws from: ``workload.json`` (docs/formats.md) or a pinned contact.

The master reads it and hands it to workers as a plain dict (``to_wire`` /
``from_wire``), so workers need no shared disk.  Known phones are drawn with
probability proportional to their ``weight`` (the seed's skewed popularity);
``distinct`` mode walks a shuffled order instead, each process its own slice,
so no key repeats until the slice is exhausted (defeats query caches).
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from harness.settings import Settings

FORMAT = "crm-workload/1"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PHONE = re.compile(r"^[1-9][0-9]{5,14}$")


class WorkloadError(ValueError):
    """One line naming the file and the problem."""


class Key(NamedTuple):
    """One contact to look up.  A named tuple: hashed in C, for the users' per-key request cache."""

    workspace_id: str
    phone: str


@dataclass
class Workload:
    known: list[Key]
    weights: list[float]
    unknown: list[Key]
    members: dict[str, str] = field(default_factory=dict)  # workspace id -> member user id
    source: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "known": [[k.workspace_id, k.phone] for k in self.known],
            "weights": self.weights,
            "unknown": [[k.workspace_id, k.phone] for k in self.unknown],
            "members": self.members,
            "source": self.source,
        }

    @classmethod
    def from_wire(cls, doc: dict[str, Any]) -> Workload:
        return cls(
            known=[Key(w, p) for w, p in doc["known"]],
            weights=[float(x) for x in doc["weights"]],
            unknown=[Key(w, p) for w, p in doc["unknown"]],
            members=dict(doc.get("members") or {}),
            source=str(doc.get("source", "")),
        )


def load_file(path: str | Path) -> Workload:
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(
            f"{p}: workload file not found (run `python -m seed workload`, or set TEST_WORKSPACE_ID and TEST_PHONE)"
        )
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WorkloadError(f"{p}: not readable JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise WorkloadError(f"{p}: 'format' must be {FORMAT!r}")
    known: list[Key] = []
    weights: list[float] = []
    unknown: list[Key] = []
    for section in ("known", "unknown"):
        rows = doc.get(section)
        if not isinstance(rows, list):
            raise WorkloadError(f"{p}: '{section}' must be a list")
        for i, row in enumerate(rows):
            ws, phone = (row.get("workspace_id"), row.get("phone")) if isinstance(row, dict) else (None, None)
            if not isinstance(ws, str) or not _UUID.match(ws) or not isinstance(phone, str) or not _PHONE.match(phone):
                raise WorkloadError(f"{p}: {section}[{i}] needs a uuid 'workspace_id' and a digits 'phone'")
            if section == "known":
                w = row.get("weight", 1.0)
                if not isinstance(w, int | float) or w <= 0:
                    raise WorkloadError(f"{p}: known[{i}] 'weight' must be a positive number")
                known.append(Key(ws, phone))
                weights.append(float(w))
            else:
                unknown.append(Key(ws, phone))
    if not known:
        raise WorkloadError(f"{p}: 'known' is empty")
    members = {
        w["id"]: w["member_user_id"]
        for w in doc.get("workspaces") or []
        if isinstance(w, dict) and isinstance(w.get("id"), str) and isinstance(w.get("member_user_id"), str)
    }
    return Workload(known, weights, unknown, members, source=str(p))


def pinned(workspace_id: str, phone: str) -> Workload:
    """The spike's benchmark: one known contact; unknown phones are derived so they cannot exist."""
    miss = Key(workspace_id, "1" + "9" * 12)
    return Workload([Key(workspace_id, phone)], [1.0], [miss], source="TEST_WORKSPACE_ID/TEST_PHONE")


def resolve(settings: Settings, path: str | None) -> Workload:
    """The pin (TEST_WORKSPACE_ID + TEST_PHONE) wins; else the workload file."""
    ws, phone = settings.get("TEST_WORKSPACE_ID"), settings.get("TEST_PHONE")
    if ws and phone:
        return pinned(ws, phone)
    return load_file(path or "workload.json")


class Sampler:
    """Draws keys for one process.  gevent-safe: no I/O, no switches inside a call."""

    def __init__(
        self, workload: Workload, distinct: bool = False, slice_index: int = 0, slices: int = 1, seed: int | None = None
    ) -> None:
        self.workload = workload
        self.rng = random.Random(seed)
        self.cum = list(itertools.accumulate(workload.weights))
        self.distinct = distinct
        self.wraps = 0
        order = list(range(len(workload.known)))
        random.Random(0).shuffle(order)  # same order on every process, so slices do not overlap
        self.order = order[slice_index::slices] or order
        self.pos = 0

    def known(self) -> Key:
        if self.distinct:
            if self.pos >= len(self.order):
                self.pos = 0
                self.wraps += 1
            key = self.workload.known[self.order[self.pos]]
            self.pos += 1
            return key
        i = bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1])
        return self.workload.known[min(i, len(self.cum) - 1)]

    def unknown(self) -> Key | None:
        if not self.workload.unknown:
            return None
        return self.rng.choice(self.workload.unknown)
