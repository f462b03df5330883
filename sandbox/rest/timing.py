"""``Server-Timing`` as PostgREST v14.2+ writes it (``Response/Performance.hs``).

Five phases in a fixed order, wall-clock milliseconds with exactly one decimal
(Haskell's ``showFFloat (Just 1)``), joined by ``", "``; only successful
responses carry the header. Each phase is timed around the gateway's own code
for it:

* ``jwt``: reading the bearer token, verifying it (or the cache hit), the role;
* ``parse``: the URL grammar, ``Prefer``, ``Accept``, ``Range``, the schema
  profile and the JSON payload;
* ``plan``: building the SQL from the schema cache (no database I/O);
* ``transaction``: pool checkout, ``BEGIN``, the ``set_config`` call, the
  statements, ``COMMIT``;
* ``response``: status, headers and body from the result row.

Reading the request body and writing the response are not timed, as in PostgREST.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from time import perf_counter

PHASES = ("jwt", "parse", "plan", "transaction", "response")


_TENTH = Decimal("0.1")


def fmt_ms(ms: float) -> str:
    """``showFFloat (Just 1)``: the shortest decimal digits of the double (``repr``),
    rounded half to even at one decimal; never an exponent (0.35 -> 0.4, 0.25 -> 0.2).

    Away from a tie, rounding the binary value (``%.1f``) gives the same digits, cheaply."""
    tenths = ms * 10.0
    if abs(tenths - int(tenths) - 0.5) > 1e-6:
        return f"{ms:.1f}"
    return str(Decimal(repr(ms)).quantize(_TENTH, rounding=ROUND_HALF_EVEN))


class ServerTiming:
    """Sequential laps: each ``lap(phase)`` adds the time since the previous lap to ``phase``."""

    __slots__ = ("_last", "jwt", "parse", "plan", "response", "transaction")

    def __init__(self) -> None:
        self.jwt = self.parse = self.plan = self.transaction = self.response = 0.0
        self._last = perf_counter()

    def restart(self) -> None:
        """Start the next lap now (time since the last lap belongs to no phase)."""
        self._last = perf_counter()

    def lap(self, phase: str) -> None:
        now = perf_counter()
        setattr(self, phase, getattr(self, phase) + (now - self._last) * 1000.0)
        self._last = now

    def header(self) -> bytes:
        return (
            f"jwt;dur={fmt_ms(self.jwt)}, parse;dur={fmt_ms(self.parse)}, plan;dur={fmt_ms(self.plan)}, "
            f"transaction;dur={fmt_ms(self.transaction)}, response;dur={fmt_ms(self.response)}"
        ).encode()
