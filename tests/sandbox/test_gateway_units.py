"""The gateway's pure parts, against PostgREST's own examples (doctests and specs)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.rest.app import coerce_bool
from sandbox.rest.errors import ApiError
from sandbox.rest.fuzzy import FuzzySet
from sandbox.rest.media import accepted, negotiate
from sandbox.rest.nodetree import view_columns
from sandbox.rest.timing import ServerTiming, fmt_ms


@pytest.mark.parametrize(
    ("header", "mimes"),
    [
        (None, ["*/*"]),
        ("application/json", ["application/json"]),
        # MediaType.hs doctests
        ("application/vnd.pgrst.plan;", ['application/vnd.pgrst.plan+text; for="application/json"']),
        ('application/vnd.pgrst.plan ; for="text/xml" ; options=analyze',
         ['application/vnd.pgrst.plan+text; for="text/xml"; options=analyze']),
        ('application/vnd.pgrst.plan+json;for="text/csv"', ['application/vnd.pgrst.plan+json; for="text/csv"']),
        ("application/vnd.pgrst.array+json;nulls=stripped", ["application/vnd.pgrst.array+json;nulls=stripped"]),
        ("application/vnd.pgrst.array+json", ["application/json"]),
        ("ApplicatIon/vnd.PgRsT.object+json", ["application/vnd.pgrst.object+json"]),
        ("application/vnd.twkb", ["application/vnd.twkb"]),
        # options always in PostgREST's order, unknown ones dropped; supabase-js's trailing `;`
        ('application/vnd.pgrst.plan+json; for="application/vnd.pgrst.object"; options=wal|nope|analyze;',
         ['application/vnd.pgrst.plan+json; for="application/vnd.pgrst.object+json"; options=analyze|wal']),
        # quality first, then (number of `;` - number of `*`), stable
        ("*/*;q=0.5, text/csv", ["text/csv", "*/*"]),
        ("application/json, application/vnd.pgrst.plan+json",
         ["application/json", 'application/vnd.pgrst.plan+json; for="application/json"']),
        ('application/json, application/vnd.pgrst.plan+json;for="application/json"',
         ['application/vnd.pgrst.plan+json; for="application/json"', "application/json"]),
    ],
)
def test_accept_parsed_as_postgrest(header: str | None, mimes: list[str]) -> None:
    assert [m.mime for m in accepted(header)] == mimes


def test_negotiation_and_its_406() -> None:
    assert negotiate("application/vnd.pgrst.plan", True).kind == "plan"
    assert negotiate("application/vnd.pgrst.plan, application/json", False).mime == "application/json"
    with pytest.raises(ApiError) as err:
        negotiate('text/html, application/vnd.pgrst.plan+json; for="application/json"', False)
    assert (err.value.status, err.value.code, err.value.message) == (
        406, "PGRST107",
        'None of these media types are available: application/vnd.pgrst.plan+json; for="application/json", text/html',
    )
    with pytest.raises(ApiError):
        negotiate("application/*", True)  # PostgREST has no wildcard subtype handler


def test_server_timing_header_shape() -> None:
    timing = ServerTiming()
    timing.jwt, timing.parse, timing.plan, timing.transaction, timing.response = 0.4, 0.5, 0.1, 353.25, 0.04
    # Performance.hs: fixed order, ", ", one decimal (showFFloat's rounding of the shortest digits)
    assert timing.header() == b"jwt;dur=0.4, parse;dur=0.5, plan;dur=0.1, transaction;dur=353.2, response;dur=0.0"
    assert [fmt_ms(v) for v in (0.35, 0.25, 14.0, 1e-7, 12345.678, 1e16)] == [
        "0.4", "0.2", "14.0", "0.0", "12345.7", "10000000000000000.0"]


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_fmt_ms_is_showffloat(value: float) -> None:
    assert fmt_ms(value) == str(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN))


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ('"true"', True), ("False", False), ("1", True), ("0", False), ("7", True),
     ("on", None), ("off", None), ("yes", None), ("", None)],
)
def test_coerce_bool_as_postgrest(text: str, value: bool | None) -> None:
    assert coerce_bool(text) is value


def test_fuzzy_hints_as_postgrest_doctests() -> None:
    # Error.hs doctests: noRelBetweenHint, noRpcHint
    assert FuzzySet(["films"]).get_one("film") == "films"
    assert FuzzySet(["directors", "roles", "actors"]).get("actors") == [(1.0, "actors")]
    assert FuzzySet(["directors", "roles", "actors"]).get_one("role") == "roles"
    assert FuzzySet(["directors", "roles", "actors"]).get_one("noclosealternative") is None
    assert FuzzySet(["test", "another"]).get_one("testt", 0.75) == "test"
    params = FuzzySet(["(name, param, val)", "(attr, id)"])
    assert params.get_one("(nam, pqaram, vall)") == "(name, param, val)"
    assert params.get_one("(attrs, id)") == "(attr, id)"
    assert params.get_one("(noclosealternative)") is None


def test_view_columns_from_a_query_tree() -> None:
    # the shape pg_rewrite.ev_action has (abridged): two columns from relation 16390, one computed,
    # one junk entry, and a column name with escaped characters
    tree = (
        "({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :rtable ({RANGETBLENTRY :alias <> "
        ":relid 16390}) :targetList ({TARGETENTRY :expr {VAR :varno 1 :varattno 1 :location 7} :resno 1 "
        ":resname id :ressortgroupref 0 :resorigtbl 16390 :resorigcol 1 :resjunk false} {TARGETENTRY :expr "
        "{VAR :varno 1 :varattno 3} :resno 2 :resname a\\ b\\(x\\) :ressortgroupref 0 :resorigtbl 16390 "
        ":resorigcol 3 :resjunk false} {TARGETENTRY :expr {CONST :consttype 23 :constvalue 4 [ 1 0 0 0 0 0 0 0 ]} "
        ":resno 3 :resname one :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr "
        "{VAR :varno 1 :varattno 2} :resno 4 :resname <> :ressortgroupref 1 :resorigtbl 16390 :resorigcol 2 "
        ":resjunk true}) :onConflict <>})"
    )
    assert view_columns(tree) == [(16390, 1), (16390, 3), (0, 0)]


@pytest.mark.parametrize(
    ("select", "parsed"),
    [
        # parsec's pFieldForest: trailing input after the last item is ignored, and a first item that
        # fails before consuming anything is an empty select (every column)
        ("", 0), (",id", 0), ("*!hint", 0), ("...y!a!b!c(z)", 0), ("id)", 1), ("a:count()::text,b", 2),
        ("rel(id) , x", 2),
    ],
)
def test_select_parsed_as_parsec_does(select: str, parsed: int) -> None:
    from sandbox.rest.parser import parse_select

    assert len(parse_select(select)) == parsed


@pytest.mark.parametrize("select", ["id,", "id,,name", "a( )", "id,*!hint", "x:...y(z)", "count(x)", "id,nope(",
                                    "name::", "id->"])
def test_select_errors_after_consuming_input(select: str) -> None:
    from sandbox.rest.parser import parse_select

    with pytest.raises(ApiError) as err:
        parse_select(select)
    assert err.value.code == "PGRST100"


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("()", []), ("(a)", ["a"]), ("(a,b,c)", ["a", "b", "c"]), ("(a,,b)", ["a", "", "b"]), ("(a,)", ["a", ""]),
        ("(,)", ["", ""]), ("( a , b )", [" a ", " b "]), ('("a,b",c)', ["a,b", "c"]), ('("a\\"b",c)', ['a"b', "c"]),
        ('(a"b,c)', ['a"b', "c"]),
    ],
)
def test_in_list_elements(text: str, values: list[str]) -> None:
    """``in.(...)``: comma-separated elements kept verbatim (spaces, empties); a quoted element may hold
    commas and escaped quotes."""
    from sandbox.rest.parser import parse_in_list

    assert parse_in_list(text, text) == values


@pytest.mark.parametrize("text", ["a,b", "(a", '("a)', '("a"b)'])
def test_in_list_errors(text: str) -> None:
    from sandbox.rest.parser import parse_in_list

    with pytest.raises(ApiError) as err:
        parse_in_list(text, text)
    assert err.value.code == "PGRST100"


@given(st.text(alphabet="ab=&%+é.,()*:!-_ 0x", max_size=16))
def test_query_pairs_are_parse_qsl(text: str) -> None:
    """The query string's pairs as ``parse_qsl`` (blank values kept) gives them, with or without escapes."""
    from urllib.parse import parse_qsl

    from sandbox.rest.app import query_pairs

    raw = text.encode()
    assert query_pairs(raw) == (parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8") if raw else [])
