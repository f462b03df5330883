"""A uniform sample of whole lookups with their parts, so a percentile can be split exactly.

Histograms per phase give each phase's own percentiles, but the P95 of a sum
is not the sum of P95s.  To say what the slow lookups are made of, each process
keeps a bounded uniform sample (reservoir sampling, Vitter's algorithm R) of
``(total, connect, server)`` per target; the master merges the samples it
receives, weighting each by the lookups it stands for.  The report then averages
the parts of the sampled lookups around each percentile: the parts add up to
that band's total.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

SIZE = 2048

Sample = tuple[float, float, float | None]  # total, connect, server (None: no server timing) in ms


class Reservoir:
    __slots__ = ("items", "n", "rng", "size")

    def __init__(self, size: int = SIZE, rng: random.Random | None = None) -> None:
        self.size = size
        self.n = 0  # lookups seen (the sample stands for them)
        self.items: list[Sample] = []
        self.rng = rng or random.Random()

    def add(self, total: float, phases: Mapping[str, float]) -> None:
        """One lookup: its total and its phases (ms); the sample is made only when it is kept."""
        n = self.n = self.n + 1
        items = self.items
        if len(items) < self.size:
            items.append((total, phases.get("connect", 0.0), phases.get("server")))
        else:
            j = int(self.rng.random() * n)  # randrange's uniformity at a third of its cost
            if j < self.size:
                items[j] = (total, phases.get("connect", 0.0), phases.get("server"))

    def merge(self, items: list[Sample], n: int) -> None:
        """Add another uniform sample of ``n`` lookups: each kept item is drawn from either side with
        probability proportional to the lookups that side stands for."""
        if n <= 0:
            return
        if self.n == 0:
            self.items, self.n = list(items)[: self.size], n
            return
        mine, theirs = list(self.items), list(items)
        self.rng.shuffle(mine)
        self.rng.shuffle(theirs)
        share = self.n / (self.n + n)
        merged: list[Sample] = []
        while len(merged) < self.size and (mine or theirs):
            take_mine = bool(mine) and (not theirs or self.rng.random() < share)
            merged.append(mine.pop() if take_mine else theirs.pop())
        self.items, self.n = merged, self.n + n

    def encode(self) -> dict[str, Any]:
        return {"n": self.n, "samples": [[round(t, 3), round(c, 3), None if s is None else round(s, 3)]
                                         for t, c, s in self.items]}

    @staticmethod
    def decode(doc: dict[str, Any]) -> tuple[list[Sample], int]:
        items = [(float(t), float(c), None if s is None else float(s)) for t, c, s in doc.get("samples") or []]
        return items, int(doc.get("n", len(items)))
