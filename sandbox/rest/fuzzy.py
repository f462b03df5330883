"""The fuzzy string set PostgREST's error hints come from (Haskell ``fuzzyset`` 0.2.4).

Entries and queries are lower-cased; their n-grams (n = 3, then 2 when 3 finds
nothing) are taken over the text reduced to letters, digits, spaces and commas
and enclosed in ``-``; candidates are ranked by cosine similarity, the best 50
re-scored with the normalised Levenshtein similarity, and kept above a minimum
score (0.33 unless given). An exact (case-insensitive) entry scores 1.
"""

from __future__ import annotations

import math
from collections import Counter


def _normalized(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace() or ch == ",")


def _grams(text: str, size: int) -> Counter[str]:
    padded = "-" + _normalized(text) + "-"
    return Counter(padded[i : i + size] for i in range(len(padded) - size + 1))


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similarity(a: str, b: str) -> float:
    """text-metrics' ``levenshteinNorm``: 1 - distance / longer length (1 for two empty strings)."""
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest


class FuzzySet:
    def __init__(self, entries: list[str], lower: int = 2, upper: int = 3) -> None:
        self.lower, self.upper = lower, upper
        self.exact: dict[str, str] = {}
        self.items: dict[int, list[tuple[float, str]]] = {n: [] for n in range(lower, upper + 1)}
        self.index: dict[int, dict[str, list[tuple[int, int]]]] = {n: {} for n in range(lower, upper + 1)}
        for entry in entries:
            key = entry.lower()
            if key in self.exact:
                continue
            for n in range(lower, upper + 1):
                grams = _grams(key, n)
                position = len(self.items[n])
                self.items[n].append((math.sqrt(sum(c * c for c in grams.values())), key))
                for gram, count in grams.items():
                    self.index[n].setdefault(gram, []).append((position, count))
            self.exact[key] = entry

    def get(self, value: str, min_score: float = 0.33) -> list[tuple[float, str]]:
        """(score, entry), best first."""
        key = value.lower()
        if key in self.exact:
            return [(1.0, self.exact[key])]
        for n in range(self.upper, self.lower - 1, -1):
            found = self._matches(key, n, min_score)
            if found:
                return found
        return []

    def get_one(self, value: str, min_score: float = 0.33) -> str | None:
        found = self.get(value, min_score)
        return found[0][1] if found else None

    def _matches(self, key: str, n: int, min_score: float) -> list[tuple[float, str]]:
        query = _grams(key, n)
        query_norm = math.sqrt(sum(c * c for c in query.values()))
        dots: dict[int, int] = {}
        for gram, count in query.items():
            for position, item_count in self.index[n].get(gram, []):
                dots[position] = dots.get(position, 0) + item_count * count
        scored = []
        for position, dot in dots.items():
            norm, entry = self.items[n][position]
            scored.append((dot / (query_norm * norm), entry))
        scored.sort(key=lambda pair: -pair[0])
        rescored = sorted(((similarity(key, entry), entry) for _, entry in scored[:50]), key=lambda pair: -pair[0])
        return [(score, self.exact[entry]) for score, entry in rescored if score >= min_score]
