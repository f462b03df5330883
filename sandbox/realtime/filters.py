"""`postgres_changes` filters: ``column=op.value``, the operators Supabase documents.

``eq``, ``neq``, ``lt``, ``lte``, ``gt``, ``gte`` and ``in.(a,b,…)`` (at most
100 values); several filters joined by commas must all hold. Values are cast
to the column's type by PostgreSQL when the subscription is made (as
``realtime.subscription_check_filters`` does), so equality is PostgreSQL's on
the typed value; ordering compares numbers as numbers, timestamps as instants
and other values by their text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in")
MAX_IN_VALUES = 100


class FilterError(ValueError):
    pass


@dataclass
class Filter:
    column: str
    op: str
    raw: str  # as written after the operator
    values: list[Any] = field(default_factory=list)  # the typed values, as to_jsonb renders them

    def texts(self) -> list[str]:
        if self.op != "in":
            return [self.raw]
        inner = self.raw[1:-1]
        return [_unquote(v) for v in _split(inner)] if inner.strip() else []


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _split(text: str) -> list[str]:
    """Splits on commas outside parentheses and double quotes."""
    parts, depth, quoted, current = [], 0, False, []
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i : i + 2])
                i += 2
                continue
            if ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def parse(text: str | None) -> list[Filter]:
    """The filters of a binding's ``filter`` string; raises FilterError with Realtime's message."""
    if text is None or not text.strip():
        return []
    filters = []
    for segment in _split(text.strip()):
        column, eq, rest = segment.partition("=")
        op, dot, value = rest.partition(".")
        if not eq or not dot or not column or op not in OPERATORS:
            pieces = [p for p in (column, *rest.split(".", 1)) if p] if eq else [segment]
            raise FilterError("Error parsing `filter` params: [" + ", ".join(f'"{p}"' for p in pieces[-2:]) + "]")
        if op == "in" and not (value.startswith("(") and value.endswith(")")):
            raise FilterError(f'Error parsing `filter` params: ["in", "{value}"]')
        filters.append(Filter(column.strip(), op, value))
        if op == "in" and len(filters[-1].texts()) > MAX_IN_VALUES:
            raise FilterError(f"too many values for `in` filter. Maximum {MAX_IN_VALUES}")
    return filters


def _ordered(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return bool(a == b)


def holds(f: Filter, record: dict[str, Any]) -> bool:
    """Whether a row's column (to_jsonb form) passes the filter; a missing or null column never does."""
    if f.column not in record:
        return False
    value = record[f.column]
    if value is None:
        return False
    if f.op == "eq":
        return _same(value, f.values[0])
    if f.op == "neq":
        return not _same(value, f.values[0])
    if f.op == "in":
        return any(_same(value, v) for v in f.values)
    try:
        a, b = _ordered(value), _ordered(f.values[0])
        if f.op == "lt":
            return bool(a < b)
        if f.op == "lte":
            return bool(a <= b)
        if f.op == "gt":
            return bool(a > b)
        return bool(a >= b)
    except TypeError:
        return False


def all_hold(filters: list[Filter], record: dict[str, Any]) -> bool:
    return all(holds(f, record) for f in filters)
