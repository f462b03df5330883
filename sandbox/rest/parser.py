"""The PostgREST URL grammar: select, filters, logic trees, order, limit/offset.

Parsing only: names are checked against the schema cache when the SQL is built.
Follows ``src/library/PostgREST/ApiRequest/QueryParams.hs``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from .errors import ApiError, parse_error

OPERATORS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
    "match": "~",
    "imatch": "~*",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
    "sl": "<<",
    "sr": ">>",
    "nxr": "&<",
    "nxl": "&>",
    "adj": "-|-",
    "isdistinct": "IS DISTINCT FROM",
}
QUANTIFIABLE = {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"}
FTS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery", "wfts": "websearch_to_tsquery"}
IS_VALUES = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
RESERVED = {"select", "columns", "on_conflict"}
EMBEDDABLE_RESERVED = {"order", "limit", "offset", "or", "and"}
AGGREGATES = ("sum", "avg", "count", "max", "min")
_JSON_KEY_STOP = frozenset("(-:.,>)")


def _ident_char(ch: str) -> bool:
    """PostgREST's ``pIdentifierChar``: a letter (any script), an ASCII digit, ``_``, ``$`` or a space."""
    return ch.isalpha() or "0" <= ch <= "9" or ch in "_ $"


@dataclass(frozen=True)
class FieldRef:
    name: str
    # (operator "->" | "->>", key, is_index); an index is "+n" / "-n" as PostgREST keeps it
    json_path: tuple[tuple[str, str, bool], ...] = ()

    @property
    def output_name(self) -> str:
        """The column name PostgREST gives a JSON path: its last key (``addAliases``)."""
        for _op, key, is_index in reversed(self.json_path):
            if not is_index:
                return key
        return self.name


@dataclass
class SelectField:
    ref: FieldRef
    alias: str | None = None
    cast: str | None = None
    agg: str | None = None  # sum | avg | count | max | min
    agg_cast: str | None = None


@dataclass
class Star:
    pass


@dataclass
class SelectEmbed:
    name: str
    alias: str | None
    hint: str | None
    join: str | None  # "inner" | "left" | None
    spread: bool
    items: list[SelectField | SelectEmbed | Star]

    @property
    def inner(self) -> bool:
        return self.join == "inner"


SelectItem = SelectField | SelectEmbed | Star


@dataclass
class Filter:
    ref: FieldRef
    negated: bool
    op: str
    value: str | list[str]
    quant: str | None = None
    lang: str | None = None


@dataclass
class LogicTree:
    op: str  # "AND" | "OR"
    negated: bool
    children: list[Filter | LogicTree]


@dataclass
class OrderTerm:
    ref: FieldRef
    direction: str | None
    nulls: str | None
    relation: str | None = None


@dataclass
class NodeParams:
    """Everything the query string says about one embed level (path ``()`` = root)."""

    filters: list[Filter | LogicTree] = field(default_factory=list)
    order: list[OrderTerm] | None = None
    limit: int | None = None
    offset: int | None = None


class _Cursor:
    def __init__(self, text: str, what: str) -> None:
        self.s = text
        self.i = 0
        self.what = what

    def fail(self, expecting: str) -> ApiError:
        got = repr(self.s[self.i]) if self.i < len(self.s) else "end of input"
        return parse_error(self.what, self.s, f"unexpected {got} expecting {expecting}")

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def eat(self, token: str) -> bool:
        if self.s.startswith(token, self.i):
            self.i += len(token)
            return True
        return False

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\n":
            self.i += 1

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def quoted(self) -> str:
        # "..." with backslash escapes
        assert self.s[self.i] == '"'
        self.i += 1
        out = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        raise self.fail('"\\"" to close the quoted name')

    def _ident_run(self) -> str:
        start = self.i
        while self.i < len(self.s) and _ident_char(self.s[self.i]):
            self.i += 1
        return self.s[start : self.i]

    def _dash(self) -> bool:
        """A ``-`` joining two identifier runs (never the start of ``->``)."""
        return self.peek() == "-" and self.peek(2) != "->"

    def identifier(self) -> str:
        """``pFieldName``: a quoted string, or identifier runs joined by ``-`` (not ``->``), trimmed."""
        self.skip_ws()
        if self.peek() == '"':
            return self.quoted()
        runs = [self._ident_run()]
        if not runs[0]:
            raise self.fail("field name (* or [a..z0..9_$])")
        while self._dash():
            save = self.i
            self.i += 1
            run = self._ident_run()
            if not run:
                self.i = save
                break
            runs.append(run)
        return "-".join(r.strip() for r in runs)

    def json_path(self) -> tuple[tuple[str, str, bool], ...]:
        """``pJsonPath``: ``->``/``->>`` then an index (``-?digits`` before ``->``, ``::``, ``.``, ``,``
        or the end) or a key (quoted, or runs of anything but ``(-:.,>)`` joined by ``-``)."""
        path: list[tuple[str, str, bool]] = []
        while True:
            if self.eat("->>"):
                op = "->>"
            elif self.eat("->"):
                op = "->"
            else:
                return tuple(path)
            match = re.match(r"-?[0-9]+", self.s[self.i :])
            if match:
                end = self.i + match.end()
                rest = self.s[end:]
                if not rest or rest.startswith(("->", "::", ".", ",")):
                    digits = match.group(0)
                    self.i = end
                    path.append((op, digits if digits.startswith("-") else "+" + digits, True))
                    continue
            if self.peek() == '"':
                path.append((op, self.quoted(), False))
                continue
            runs = [self._json_key_run()]
            if not runs[0]:
                raise self.fail("any non reserved character different from: .,>()")
            while self._dash():
                save = self.i
                self.i += 1
                run = self._json_key_run()
                if not run:
                    self.i = save
                    break
                runs.append(run)
            path.append((op, "-".join(r.strip() for r in runs), False))

    def _json_key_run(self) -> str:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in _JSON_KEY_STOP:
            self.i += 1
        return self.s[start : self.i]


def parse_field_ref(text: str, what: str = "filter") -> FieldRef:
    cur = _Cursor(text, what)
    name = cur.identifier()
    path = cur.json_path()
    cur.skip_ws()
    if not cur.at_end():
        raise cur.fail("end of input")
    return FieldRef(name, path)


@functools.lru_cache(maxsize=1024)
def parse_select(text: str) -> list[SelectItem]:
    """``pFieldForest``, as parsec runs it: what follows the last item that parses is ignored, and
    a first item that fails before consuming anything leaves an empty list (all columns).

    Cached: the same select string repeats across requests (callers never mutate the result)."""
    return _select_items(_Cursor(text, "select parameter"))


def _select_items(cur: _Cursor) -> list[SelectItem]:
    """``pFieldTree `sepBy` lexeme (char ',')``."""
    items: list[SelectItem] = []
    while True:
        item = _select_item(cur)
        if item is None:  # failed without consuming input
            if not items:
                return items
            raise cur.fail("field name (* or [a..z0..9_$])")  # after a consumed ","
        items.append(item)
        save = cur.i
        cur.skip_ws()
        if not cur.eat(","):
            cur.i = save
            return items
        cur.skip_ws()


def _embed_params(cur: _Cursor) -> tuple[str | None, str | None]:
    """``pEmbedParams``: up to two of ``!left``, ``!inner``, ``!<hint>``."""
    hint: str | None = None
    join: str | None = None
    for _ in range(2):
        if cur.peek() != "!":
            break
        cur.i += 1
        if cur.eat("left"):
            join = join or "left"
        elif cur.eat("inner"):
            join = join or "inner"
        else:
            word = cur.identifier()
            hint = hint or word
    return hint, join


def _cast(cur: _Cursor) -> str | None:
    """``::type`` (``pIdentifier``: letters, digits, ``_``, ``$`` and spaces only)."""
    if not cur.eat("::"):
        return None
    cast = cur._ident_run().strip()
    if not cast:
        raise cur.fail("letter or digit")
    return cast


def _field_end(cur: _Cursor) -> None:
    cur.skip_ws()
    if not (cur.at_end() or cur.peek() in ",)"):
        raise cur.fail('")", "," or end of input')


def _embed_head(cur: _Cursor, spread: bool) -> tuple[str | None, str, str | None, str | None] | None:
    """``try pSpreadRelationSelect`` / ``try pRelationSelect`` up to the ``(`` they look ahead for:
    (alias, name, hint, join), or None with the cursor back where it was."""
    start = cur.i
    try:
        cur.skip_ws()
        alias: str | None = None
        if spread:
            if not cur.eat("..."):
                raise cur.fail('"..."')
            name = cur.identifier()
        else:
            first = cur.identifier()
            if cur.peek() == ":" and cur.peek(2) != "::":
                cur.i += 1
                alias, name = first, cur.identifier()
            else:
                name = first
            if name == "count":
                raise cur.fail('"("')
        hint, join = _embed_params(cur)
        if cur.peek() == "(":
            return alias, name, hint, join
    except ApiError:
        pass
    cur.i = start
    return None


def _select_item(cur: _Cursor) -> SelectItem | None:
    """One ``pFieldTree``; None when it fails without consuming input."""
    head = _embed_head(cur, True)
    if head is not None:
        return SelectEmbed(head[1], None, head[2], head[3], True, _embed_items(cur))
    head = _embed_head(cur, False)
    if head is not None:
        return SelectEmbed(head[1], head[0], head[2], head[3], False, _embed_items(cur))
    # pFieldSelect = lexeme (try star <|> try count() <|> field)
    start = cur.i
    cur.skip_ws()
    consumed = cur.i > start
    save = cur.i
    if cur.eat("*"):
        if cur.at_end() or cur.peek() in ",)":
            cur.skip_ws()
            return Star()
        cur.i = save
    alias: str | None = None
    try:
        first = cur.identifier()
        if cur.peek() == ":" and cur.peek(2) != "::":
            cur.i += 1
            alias = first
        else:
            cur.i = save
    except ApiError:
        cur.i = save
    after_alias = cur.i
    if cur.eat("count()"):
        try:
            agg_cast = _cast(cur)
            _field_end(cur)
            return SelectField(FieldRef("*"), alias, None, "count", agg_cast)
        except ApiError:
            cur.i = after_alias
    if not consumed and cur.i == save and not (cur.peek() == '"' or (cur.peek() and _ident_char(cur.peek()))):
        return None
    name = cur.identifier()
    path = cur.json_path()
    cur.skip_ws()
    cast = _cast(cur)
    agg: str | None = None
    match = re.match(r"\.(sum|avg|count|max|min)\(\)", cur.s[cur.i :])
    if match:
        agg = match.group(1)
        cur.i += match.end()
    agg_cast = _cast(cur) if agg else None
    _field_end(cur)
    return SelectField(FieldRef(name, path), alias, cast, agg, agg_cast)


def _embed_items(cur: _Cursor) -> list[SelectItem]:
    """``between (char '(') (char ')') pFieldForest``."""
    cur.i += 1  # "("
    sub = _select_items(cur)
    if not cur.eat(")"):
        raise cur.fail('")"')
    return sub


# filters -----------------------------------------------------------------
_OP_RE = re.compile(r"^(not\.)?([a-z]+)(?:\((any|all)\)|\(([A-Za-z_]+)\))?\.", re.S)


def parse_filter_value(ref: FieldRef, raw: str, key: str) -> Filter:
    """``[not.]op[(any|all)|(lang)].value`` as the value of a ``col=`` parameter."""
    m = _OP_RE.match(raw)
    if not m:
        # `is` with nothing after it, bare `in`, ... all parse errors
        raise parse_error("filter", raw, 'unexpected end of input expecting "not" or operator (eq, gt, ...)')
    negated = bool(m.group(1))
    op = m.group(2)
    quant = m.group(3)
    lang = m.group(4)
    rest = raw[m.end() :]
    if op == "in":
        if quant or lang:
            raise parse_error("filter", raw, "unexpected \"(\" expecting \".\"")
        return Filter(ref, negated, "in", parse_in_list(rest, raw), None)
    if op == "is":
        if rest.lower() not in IS_VALUES or quant or lang:
            raise parse_error(
                "filter", raw, "unexpected input expecting null or trilean value (unknown, true, false)"
            )
        return Filter(ref, negated, "is", rest.lower())
    if op in FTS:
        if quant:
            raise parse_error("filter", raw, "unexpected quantifier")
        return Filter(ref, negated, op, rest, None, lang)
    if op not in OPERATORS or lang:
        raise parse_error("filter", raw, 'unexpected operator expecting "not" or operator (eq, gt, ...)')
    if quant and op not in QUANTIFIABLE:
        raise parse_error("filter", raw, "unexpected quantifier")
    if quant:
        return Filter(ref, negated, op, parse_array_literal(rest, raw), quant)
    return Filter(ref, negated, op, rest)


def parse_in_list(text: str, raw: str) -> list[str]:
    if not (text.startswith("(") and text.endswith(")")):
        raise parse_error("filter", raw, 'unexpected input expecting "("')
    inner = text[1:-1]
    if '"' not in inner:  # no quoted element: the elements are exactly the comma-separated runs
        return inner.split(",") if inner else []
    cur = _Cursor(inner, "filter")
    values: list[str] = []
    if cur.at_end():
        return values
    while True:
        if cur.peek() == '"':
            values.append(cur.quoted())
            if not (cur.at_end() or cur.peek() == ","):
                raise parse_error("filter", raw, 'unexpected input expecting "," or ")"')
        else:
            start = cur.i
            while not cur.at_end() and cur.peek() not in ",":
                cur.i += 1
            values.append(cur.s[start : cur.i])
        if cur.at_end():
            return values
        cur.i += 1  # ","


def parse_array_literal(text: str, raw: str) -> list[str]:
    if not (text.startswith("{") and text.endswith("}")):
        raise parse_error("filter", raw, 'unexpected input expecting "{"')
    return parse_in_list("(" + text[1:-1] + ")", raw)


def parse_logic_tree(op: str, negated: bool, raw: str, key: str) -> LogicTree:
    """``(f1,f2,and(f3,f4),not.or(f5,f6))`` as the value of ``or=``/``and=``."""
    cur = _Cursor(raw, "logic tree")
    if not cur.eat("("):
        raise parse_error("logic tree", f"{key}={raw}", 'unexpected input expecting "("')
    tree = LogicTree(op.upper(), negated, _tree_children(cur, f"{key}={raw}"))
    if not cur.at_end():
        raise parse_error("logic tree", f"{key}={raw}", "unexpected input expecting end of input")
    return tree


def _tree_children(cur: _Cursor, whole: str) -> list[Filter | LogicTree]:
    children: list[Filter | LogicTree] = []
    while True:
        cur.skip_ws()
        children.append(_tree_item(cur, whole))
        cur.skip_ws()
        if cur.eat(","):
            continue
        if cur.eat(")"):
            return children
        raise parse_error("logic tree", whole, 'unexpected input expecting "," or ")"')


def _tree_item(cur: _Cursor, whole: str) -> Filter | LogicTree:
    negated = False
    save = cur.i
    if cur.eat("not."):
        negated = True
    for op in ("and", "or"):
        if cur.eat(op + "("):
            return LogicTree(op.upper(), negated, _tree_children(cur, whole))
    cur.i = save
    try:
        name = cur.identifier()
        path = cur.json_path()
    except ApiError:
        raise parse_error("logic tree", whole, "unexpected input expecting field name") from None
    if not cur.eat("."):
        raise parse_error("logic tree", whole, 'unexpected input expecting "."')
    start = cur.i
    # operator part up to the value
    m = _OP_RE.match(cur.s[cur.i :])
    if not m:
        raise parse_error("logic tree", whole, 'unexpected input expecting "not" or operator (eq, gt, ...)')
    cur.i += m.end()
    value = _tree_value(cur, whole)
    return parse_filter_value(FieldRef(name, path), cur.s[start : start + m.end()] + value, whole)


def _tree_value(cur: _Cursor, whole: str) -> str:
    if cur.peek() == '"':
        inner = cur.quoted()
        return inner
    if cur.peek() in ("(", "{"):
        close = ")" if cur.peek() == "(" else "}"
        start = cur.i
        depth = 0
        in_quote = False
        while not cur.at_end():
            ch = cur.s[cur.i]
            if in_quote:
                if ch == "\\":
                    cur.i += 1
                elif ch == '"':
                    in_quote = False
            elif ch == '"':
                in_quote = True
            elif ch in "({":
                depth += 1
            elif ch in ")}":
                depth -= 1
                if depth == 0:
                    cur.i += 1
                    text = cur.s[start : cur.i]
                    if not text.endswith(close):
                        raise parse_error("logic tree", whole, "unbalanced brackets")
                    return text
            cur.i += 1
        raise parse_error("logic tree", whole, "unbalanced brackets")
    start = cur.i
    while not cur.at_end() and cur.peek() not in ",)":
        cur.i += 1
    return cur.s[start : cur.i]


@functools.lru_cache(maxsize=1024)
def parse_order(raw: str, key: str) -> list[OrderTerm]:
    terms: list[OrderTerm] = []
    for part in _split_top(raw):
        cur = _Cursor(part, "order")
        try:
            name = cur.identifier()
            relation: str | None = None
            if cur.eat("("):
                relation = name
                name = cur.identifier()
                if not cur.eat(")"):
                    raise cur.fail('")"')
            path = cur.json_path()
            direction = nulls = None
            while cur.eat("."):
                word_start = cur.i
                while not cur.at_end() and cur.peek().isalpha():
                    cur.i += 1
                word = cur.s[word_start : cur.i]
                if word in ("asc", "desc") and direction is None and nulls is None:
                    direction = word
                elif word in ("nullsfirst", "nullslast") and nulls is None:
                    nulls = word
                else:
                    raise cur.fail('"asc", "desc", "nullsfirst" or "nullslast"')
            if not cur.at_end():
                raise cur.fail('"," or end of input')
        except ApiError:
            raise parse_error("order", raw, 'unexpected input expecting "asc", "desc", "nullsfirst" or "nullslast"') from None
        terms.append(OrderTerm(FieldRef(name, path), direction, nulls, relation))
    return terms


def _split_top(raw: str) -> list[str]:
    parts, depth, start, in_quote = [], 0, 0, False
    for i, ch in enumerate(raw):
        if ch == '"':
            in_quote = not in_quote
        elif in_quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(raw[start:i])
            start = i + 1
    parts.append(raw[start:])
    return [p.strip() for p in parts]


def parse_nonneg_int(raw: str, what: str) -> int:
    raw = raw.strip()
    if raw.startswith("-") and raw[1:].isdigit():
        raise ApiError(416, "PGRST103", "Requested range not satisfiable", f"{what} must be greater than or equal to zero")
    if not raw.isdigit():
        raise parse_error(what, raw, "unexpected input expecting digit")
    return int(raw)


def split_key(key: str) -> list[str]:
    """``a.b."c.d"`` -> ``["a", "b", "c.d"]``; JSON arrows stay on their field."""
    if '"' not in key:
        return key.split(".")
    out: list[str] = []
    cur = []
    in_quote = False
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == '"':
            in_quote = not in_quote
            cur.append(ch)
        elif ch == "." and not in_quote:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


@dataclass
class ParsedQuery:
    select: list[SelectItem] | None
    nodes: dict[tuple[str, ...], NodeParams]
    columns: list[str] | None
    on_conflict: list[str] | None
    rpc_args: dict[str, str]


# a value that starts an operator expression; anything else is an argument on a GET/HEAD RPC
_OPERATOR_START = re.compile(
    r"^(?:not\.|(?:eq|neq|gt|gte|lt|lte|like|ilike|match|imatch|in|is|isdistinct|cs|cd|ov|sl|sr|nxr|nxl|adj"
    r"|fts|plfts|phfts|wfts)(?:\([^)]*\))?\.)"
)


def parse_query(pairs: list[tuple[str, str]], rpc_read: bool = False) -> ParsedQuery:
    """The query string. ``rpc_read`` (GET/HEAD on /rpc): a parameter whose value is no operator
    expression is a function argument, as ``QueryParams.pRequestFilter`` decides it."""
    select: list[SelectItem] | None = None
    nodes: dict[tuple[str, ...], NodeParams] = {}
    columns: list[str] | None = None
    on_conflict: list[str] | None = None
    rpc_args: dict[str, str] = {}

    def node(path: tuple[str, ...]) -> NodeParams:
        found = nodes.get(path)
        if found is None:
            found = nodes[path] = NodeParams()
        return found

    for key, value in pairs:
        if key == "select":
            select = parse_select(value)
            continue
        if key == "columns":
            columns = [_strip_quotes(c) for c in _split_top(value) if c]
            continue
        if key == "on_conflict":
            on_conflict = [_strip_quotes(c) for c in _split_top(value) if c]
            continue
        segments = split_key(key)
        last = segments[-1]
        if rpc_read and last not in EMBEDDABLE_RESERVED and not _OPERATOR_START.match(value):
            rpc_args[_strip_quotes(last)] = value
            continue
        negated_tree = len(segments) >= 2 and segments[-2] == "not" and last in ("or", "and")
        if last in EMBEDDABLE_RESERVED and (len(segments) == 1 or negated_tree or last in EMBEDDABLE_RESERVED):
            path_segments = segments[:-2] if negated_tree else segments[:-1]
            path = tuple(_strip_quotes(s) for s in path_segments)
            target = node(path)
            if last == "order":
                target.order = parse_order(value, key)
            elif last == "limit":
                target.limit = parse_nonneg_int(value, "limit")
            elif last == "offset":
                target.offset = parse_nonneg_int(value, "offset")
            else:
                target.filters.append(parse_logic_tree(last, negated_tree, value, key))
            continue
        path = tuple(_strip_quotes(s) for s in segments[:-1])
        ref = parse_field_ref(segments[-1])
        node(path).filters.append(parse_filter_value(ref, value, key))
    return ParsedQuery(select, nodes, columns, on_conflict, rpc_args)


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text
