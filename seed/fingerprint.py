"""Table fingerprint (docs/formats.md): sum of FNV-1a-64 hashes of each row's
canonical JSON, modulo 2^64, as 16 lowercase hex digits.

Must agree byte for byte with ``migrate:tableDigest`` in convex/migrate.ts,
which serialises with ``JSON.stringify`` over recursively key-sorted objects.
Python's ``json.dumps(ensure_ascii=False, separators=(",", ":"))`` escapes the
same characters as ``JSON.stringify`` (``"``, ``\\`` and U+0000..U+001F), and
both write integers without a decimal point. Floats are out of scope: the
seed never writes them (a float that is integral would print as ``1.0`` here
and ``1`` in JS).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .tables import Table, to_convex

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK
    return h


def _sort_keys_js(value: Any) -> Any:
    # JS sorts keys by UTF-16 code units; Python by code points. They differ only
    # for astral characters in keys, which the CRM never has, but stay exact.
    if isinstance(value, dict):
        return {k: _sort_keys_js(value[k]) for k in sorted(value, key=lambda s: s.encode("utf-16-be"))}
    if isinstance(value, list):
        return [_sort_keys_js(v) for v in value]
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    return value


def canonical_json(doc: dict[str, Any]) -> str:
    return json.dumps(_sort_keys_js(doc), ensure_ascii=False, separators=(",", ":"))


def row_hash(doc: dict[str, Any]) -> int:
    return fnv1a64(canonical_json(doc).encode("utf-8"))


@dataclass
class Digest:
    count: int = 0
    total: int = 0

    def add_doc(self, doc: dict[str, Any]) -> None:
        self.count += 1
        self.total = (self.total + row_hash(doc)) & MASK

    def add_hex(self, count: int, digest_hex: str) -> None:
        self.count += count
        self.total = (self.total + int(digest_hex, 16)) & MASK

    @property
    def hex(self) -> str:
        return f"{self.total:016x}"


def fnv1a64_many(blobs: Sequence[bytes]) -> np.ndarray:
    """FNV-1a 64 of many byte strings at once (uint64 array, same order).

    The byte loop runs over columns of a length-sorted, zero-padded matrix, so
    Python iterates once per byte position rather than once per byte: ~50x
    faster than :func:`fnv1a64` on a table. uint64 multiplication wraps mod 2^64.
    """
    n = len(blobs)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    prime = np.uint64(FNV_PRIME)
    chunk = 2048
    for start in range(0, n, chunk):
        idx = order[start : start + chunk]
        lens = lengths[idx]
        width = int(lens[-1])
        mat = np.zeros((len(idx), max(width, 1)), dtype=np.uint8)
        for r, i in enumerate(idx):
            b = blobs[i]
            if b:
                mat[r, : len(b)] = np.frombuffer(b, dtype=np.uint8)
        h = np.full(len(idx), FNV_OFFSET, dtype=np.uint64)
        # rows are sorted by length: at column j the rows still "active" are a suffix
        first_active = np.searchsorted(lens, np.arange(width), side="right")
        for j in range(width):
            a = int(first_active[j])
            col = mat[a:, j].astype(np.uint64)
            h[a:] = (h[a:] ^ col) * prime
        out[idx] = h
    return out


def digest_docs(docs: Sequence[dict[str, Any]], into: Digest | None = None) -> Digest:
    """Add Convex-form documents to a digest (vectorised hashing)."""
    d = into if into is not None else Digest()
    hashes = fnv1a64_many([canonical_json(doc).encode("utf-8") for doc in docs])
    d.count += len(docs)
    # uint64 sum wraps mod 2^64, which is exactly the digest's arithmetic
    d.total = (d.total + int(hashes.sum(dtype=np.uint64))) & MASK
    return d


def digest_rows(table: Table, rows: Iterable[dict[str, Any]]) -> Digest:
    """Fingerprint of Supabase rows, each converted to its Convex form first."""
    return digest_docs([to_convex(table, row) for row in rows])
