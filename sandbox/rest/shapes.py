"""Read plans reused across filter values: the query string's *shape*.

The app's lookups repeat a handful of query strings that differ only in their
filter values (``phone=eq.<phone>``, ``contact_id=eq.<uuid>``,
``conversation_id=in.(<ids>)``). Those values are bound parameters, so the SQL
text does not depend on them: a read planned once for a shape serves every
request of that shape with the new values put in their parameter slots, and
the statement text stays the same (asyncpg's prepared statement is reused).

A shape is the query's ``(key, value)`` pairs with the value of each plain
filter (``[not.]eq|neq|gt|gte|lt|lte|in.<value>``) replaced by its operator.
A template is learnt only when it is provably value-independent: the request
is planned a second time with a distinct marker for every such value, and the
two plans must have the same SQL and the same response plan, differ only where
a marker was bound, and bind each value exactly as ``query.Builder`` does.
Anything else (a marker inside another parameter, a value that changed the
SQL) keeps the request on the full path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .parser import EMBEDDABLE_RESERVED, RESERVED, parse_in_list, split_key

Statements = list[tuple[str, list[Any]]]
Pairs = list[tuple[str, str]]
# the operators whose value is bound as one parameter: the text after the operator, or the `in` list
_VALUE_OP = re.compile(r"(?:not\.)?(eq|neq|gt|gte|lt|lte|in)\.")
MAX_SHAPES = 1024


@dataclass(frozen=True)
class Value:
    """One abstracted filter value: its operator, the text after it, and the whole raw value."""

    op: str
    text: str
    raw: str

    def bound(self) -> Any:
        """The parameter ``query.Builder.filter_sql`` binds for it (``in``: the parsed list)."""
        return parse_in_list(self.text, self.raw) if self.op == "in" else self.text


@dataclass(frozen=True)
class Template:
    """A read's statements with their value slots: (statement, parameter, value index)."""

    statements: tuple[tuple[str, tuple[Any, ...]], ...]
    slots: tuple[tuple[int, int, int], ...]
    plan: Any

    def bind(self, values: list[Value]) -> Statements:
        """The statements with ``values`` bound; raises ApiError for a value that does not parse."""
        bound = [v.bound() for v in values]
        out = [(sql, list(params)) for sql, params in self.statements]
        for statement, param, value in self.slots:
            out[statement][1][param] = bound[value]
        return out


def _is_filter_key(key: str) -> bool:
    return key not in RESERVED and split_key(key)[-1] not in EMBEDDABLE_RESERVED


def shape_of(pairs: Pairs) -> tuple[tuple[tuple[str, str, bool], ...], list[Value]]:
    """(the shape, its abstracted values in order)."""
    shape: list[tuple[str, str, bool]] = []
    values: list[Value] = []
    for key, raw in pairs:
        m = _VALUE_OP.match(raw)
        if m is not None and _is_filter_key(key):
            shape.append((key, raw[: m.end()], True))
            values.append(Value(m.group(1), raw[m.end() :], raw))
        else:
            shape.append((key, raw, False))
    return tuple(shape), values


def _probe_pairs(shape: tuple[tuple[str, str, bool], ...], values: list[Value]) -> tuple[Pairs, dict[str, int]]:
    """The query with a marker for each abstracted value (inside ``(...)`` for ``in``)."""
    markers: dict[str, int] = {}
    pairs: Pairs = []
    index = 0
    for key, text, abstracted in shape:
        if not abstracted:
            pairs.append((key, text))
            continue
        marker = f"\x00pgrst-shape-{index}\x00"
        markers[marker] = index
        pairs.append((key, text + (f"({marker})" if values[index].op == "in" else marker)))
        index += 1
    return pairs, markers


def _marker_of(param: Any, markers: dict[str, int], values: list[Value]) -> int | None:
    if isinstance(param, str):
        index = markers.get(param)
        return index if index is not None and values[index].op != "in" else None
    if isinstance(param, list) and len(param) == 1 and isinstance(param[0], str):
        index = markers.get(param[0])
        return index if index is not None and values[index].op == "in" else None
    return None


def learn(
    shape: tuple[tuple[str, str, bool], ...],
    values: list[Value],
    statements: Statements,
    plan: Any,
    plan_with: Callable[[Pairs], tuple[Statements, Any]],
) -> Template | None:
    """The template of a request planned as (``statements``, ``plan``), or None when its values
    are not plain bound parameters. ``plan_with(pairs)`` plans the same request with other pairs."""
    if not values or any("\x00" in key or "\x00" in text for key, text, _ in shape) or any("\x00" in v.text for v in values):
        return None  # the markers hold NUL: no request text can be mistaken for one
    probe, markers = _probe_pairs(shape, values)
    try:
        probe_statements, probe_plan = plan_with(probe)
        actual = [v.bound() for v in values]
    except ApiError:
        return None
    if probe_plan != plan or len(probe_statements) != len(statements):
        return None
    slots: list[tuple[int, int, int]] = []
    for s, ((sql, params), (probe_sql, probe_params)) in enumerate(zip(statements, probe_statements, strict=True)):
        if sql != probe_sql or len(params) != len(probe_params):
            return None
        for p, (param, probe_param) in enumerate(zip(params, probe_params, strict=True)):
            index = _marker_of(probe_param, markers, values)
            if index is None:
                if param != probe_param:
                    return None
            elif param != actual[index]:
                return None
            else:
                slots.append((s, p, index))
    if {index for _, _, index in slots} != set(range(len(values))):
        return None
    frozen = tuple((sql, tuple(params)) for sql, params in statements)
    return Template(frozen, tuple(slots), plan)


class ShapeCache:
    """Templates by (request context, shape); bounded, emptied with the schema cache."""

    def __init__(self, max_size: int = MAX_SHAPES) -> None:
        self.max_size = max_size
        self._templates: dict[tuple[Any, ...], Template | None] = {}

    def clear(self) -> None:
        self._templates = {}

    def get(self, key: tuple[Any, ...]) -> Template | None:
        return self._templates.get(key)

    def known(self, key: tuple[Any, ...]) -> bool:
        return key in self._templates

    def put(self, key: tuple[Any, ...], template: Template | None) -> None:
        """``None`` records a shape that has no template, so it is not probed again."""
        if len(self._templates) >= self.max_size:
            self._templates = {}
        self._templates[key] = template
