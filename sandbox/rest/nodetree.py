"""A reader for PostgreSQL's ``pg_node_tree`` text (``pg_rewrite.ev_action``).

Only what the schema cache needs: the target list of a view's query, i.e. for
each output column the table and column it comes from (``resorigtbl``,
``resorigcol``; zero when the column is computed). The format is the one
``outfuncs.c`` writes: ``{NODE :field value ...}`` nodes, ``( ... )`` lists,
``<>`` for NULL, and a backslash before any special character inside a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_DELIMITERS = frozenset("(){}")
_SPACE = frozenset(" \t\n\r")


@dataclass
class Node:
    type: str
    fields: dict[str, list[Any]] = field(default_factory=dict)

    def atom(self, key: str) -> str | None:
        value = self.fields.get(key)
        return value[0] if value and isinstance(value[0], str) else None

    def items(self, key: str) -> list[Any]:
        value = self.fields.get(key)
        return value[0] if value and isinstance(value[0], list) else []


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, is_delimiter); escaped characters never delimit."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            i += 1
            continue
        if ch in _DELIMITERS:
            out.append((ch, True))
            i += 1
            continue
        buf = []
        while i < n and text[i] not in _SPACE and text[i] not in _DELIMITERS:
            if text[i] == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 2
            else:
                buf.append(text[i])
                i += 1
        out.append(("".join(buf), False))
    return out


def parse(text: str) -> Any:
    """The tree: ``Node`` for ``{...}``, ``list`` for ``(...)``, ``str`` for atoms."""
    tokens = _tokens(text)
    pos = 0

    def value() -> Any:
        nonlocal pos
        tok, delim = tokens[pos]
        pos += 1
        if delim and tok == "(":
            items = []
            while not (tokens[pos][1] and tokens[pos][0] == ")"):
                items.append(value())
            pos += 1
            return items
        if delim and tok == "{":
            node = Node(tokens[pos][0])
            pos += 1
            key: str | None = None
            while not (tokens[pos][1] and tokens[pos][0] == "}"):
                tok2, delim2 = tokens[pos]
                if not delim2 and tok2.startswith(":") and len(tok2) > 1:
                    key = tok2[1:]
                    node.fields[key] = []
                    pos += 1
                    continue
                item = value()
                if key is not None:
                    node.fields[key].append(item)
            pos += 1
            return node
        return tok

    return value()


def view_columns(definition: str) -> list[tuple[int, int]]:
    """``(resorigtbl, resorigcol)`` of each output column of a view, in column order."""
    tree = parse(definition)
    query = tree[0] if isinstance(tree, list) and tree else tree
    if not isinstance(query, Node):
        return []
    out: list[tuple[int, int]] = []
    for entry in query.items("targetList"):
        if not isinstance(entry, Node) or entry.atom("resjunk") == "true":
            continue
        try:
            out.append((int(entry.atom("resorigtbl") or 0), int(entry.atom("resorigcol") or 0)))
        except ValueError:
            out.append((0, 0))
    return out
