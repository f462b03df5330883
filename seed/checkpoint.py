"""The migration's checkpoint file: how far each table has been acknowledged by Convex.

Written atomically (temporary file, fsync, ``os.replace``, fsync of the
directory) after each acknowledged batch, so a SIGKILL at any instant leaves
either the previous or the next complete version on disk, never a torn one.

``cursor`` is the largest Supabase id such that every row up to it has been
acknowledged: batches may finish out of order, so it only advances over the
acknowledged prefix. Rows after it may already be in Convex too; resending them
is harmless because the upsert mutations are idempotent.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import SeedError
from .tables import TABLES

FORMAT = "seed-migrate-checkpoint/1"
DEFAULT_PATH = Path(".seed") / "migrate-checkpoint.json"


@dataclass
class TableState:
    cursor: str | None = None
    rows: int = 0  # rows in the acknowledged prefix
    done: bool = False
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Checkpoint:
    path: Path
    source: str
    target: str
    started_at: str = field(default_factory=_now)
    tables: dict[str, TableState] = field(default_factory=lambda: {t.name: TableState() for t in TABLES})
    # test hook: called between writing the temporary file and renaming it
    before_replace: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.tables.values())

    @property
    def started(self) -> bool:
        return any(s.done or s.rows or s.cursor for s in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "source": self.source,
            "target": self.target,
            "started_at": self.started_at,
            "updated_at": _now(),
            "tables": {name: asdict(state) for name, state in self.tables.items()},
        }

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = json.dumps(self.to_json(), indent=1).encode()
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if self.before_replace is not None:
            self.before_replace()
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def load(path: Path, source: str, target: str) -> Checkpoint | None:
    """The checkpoint at ``path`` for this source/target pair, or None if there is none.

    A checkpoint written for other hosts is refused (resuming it would skip rows
    the target never received). Leftover temporary files from a killed run are
    removed: the renamed file is the only one that counts.
    """
    for stale in path.parent.glob(f".{path.name}.*.tmp") if path.parent.is_dir() else []:
        with contextlib.suppress(OSError):
            stale.unlink()
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}")
        tables = {name: TableState(**raw["tables"].get(name, {})) for name in (t.name for t in TABLES)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SeedError(f"checkpoint {path} is unreadable ({exc}); delete it or pass --restart") from None
    if raw.get("source") != source or raw.get("target") != target:
        raise SeedError(
            f"checkpoint {path} belongs to {raw.get('source')} -> {raw.get('target')}, not {source} -> {target}; "
            "pass --checkpoint with another path, or --restart to discard it"
        )
    return Checkpoint(
        path=path, source=source, target=target, started_at=raw.get("started_at", _now()), tables=tables
    )
