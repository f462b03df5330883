"""PostgREST v14's read grammar beyond the CRM lookups, against test-only fixtures
(``fixtures/grammar.sql``) served by a gateway exposing only the ``grammar`` schema.

Error bodies are PostgREST's (its ``test/spec`` expectations, on these fixtures);
data answers are checked against the same question asked in SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError

from sandbox.tokens import mint_jwt
from supabase import Client, ClientOptions, create_client

from .conftest import Crm, grammar_gateway

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def http(grammar_base: str, sandbox_env: dict[str, str]) -> Iterator[httpx.Client]:
    token = mint_jwt(role="service_role", state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    with httpx.Client(base_url=grammar_base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def sb(grammar_base: str, sandbox_env: dict[str, str]) -> Client:
    token = mint_jwt(role="service_role", state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    return create_client(grammar_base, token, ClientOptions(schema="grammar", postgrest_client_retry=False))


def sql_json(db: Crm, query: str, *params: object) -> Any:
    return db.sql(f"select coalesce(json_agg(t), '[]') from ({query}) t", *params)[0][0]


def get(http: httpx.Client, path: str, **params: str) -> Any:
    resp = http.get(path, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


# embeds through views, many-to-many, hints ------------------------------------------
def test_many_to_many_through_the_junction(http: httpx.Client, sb: Client, grammar_db: Crm) -> None:
    got = get(http, "/users", select="id,tasks(id,name)", order="id", **{"tasks.order": "id"})
    want = sql_json(grammar_db, """
        select u.id, coalesce((select json_agg(json_build_object('id', t.id, 'name', t.name) order by t.id)
                               from grammar.users_tasks ut join grammar.tasks t on t.id = ut.task_id
                               where ut.user_id = u.id), '[]') as tasks
        from grammar.users u order by u.id""")
    assert got == want
    # and the other way, through supabase-py, naming the junction as the hint
    rows = sb.table("tasks").select("id,users!users_tasks(name)").eq("id", 1).execute().data
    assert rows == [{"id": 1, "users": [{"name": "Angela Martin"}, {"name": "Dwight Schrute"}]}]


def test_embeds_through_views(http: httpx.Client, grammar_db: Crm) -> None:
    # a view exposing a table's FK column gets its relationships (view -> table, table -> view)
    assert get(http, "/tasks", select="id,projects_view!project(id,name,clients(name))", id="eq.1") == [
        {"id": 1, "projects_view": {"id": 1, "name": "Windows 7", "clients": {"name": "Microsoft"}}}
    ]
    assert get(http, "/clients_view", select="client_key,projects(name)", client_key="eq.2",
               **{"projects.order": "id"}) == [{"client_key": 2, "projects": [{"name": "IOS"}, {"name": "OSX"}]}]
    # a view over a table of a schema that is not exposed
    assert get(http, "/books", select="book_title,clients(name)", order="id") == [
        {"book_title": "Book One", "clients": {"name": "Microsoft"}},
        {"book_title": "Book Two", "clients": {"name": "Apple"}},
        {"book_title": "Book Three", "clients": {"name": "Apple"}},
    ]
    assert get(http, "/clients", select="name,books(book_title)", id="eq.2", **{"books.order": "id"}) == [
        {"name": "Apple", "books": [{"book_title": "Book Two"}, {"book_title": "Book Three"}]}
    ]


def test_fk_and_column_hints(http: httpx.Client) -> None:
    by_fk = get(http, "/orders", select="id,name,billing(address),shipping(address)", id="eq.1")
    by_col = get(http, "/orders", select="id,billing_address_id(address),shipping_address_id(address)", id="eq.1")
    hinted = get(http, "/orders", select="id,b:addresses!billing(address),s:addresses!shipping_address_id(address)",
                 id="eq.1")
    assert by_fk == [{"id": 1, "name": "order 1", "billing": {"address": "address 1"},
                      "shipping": {"address": "address 2"}}]
    assert by_col == [{"id": 1, "billing_address_id": {"address": "address 1"},
                       "shipping_address_id": {"address": "address 2"}}]
    assert hinted == [{"id": 1, "b": {"address": "address 1"}, "s": {"address": "address 2"}}]
    children = get(http, "/addresses", select="id,orders!shipping(name)", id="eq.2", **{"orders.order": "id"})
    assert children == [{"id": 2, "orders": [{"name": "order 1"}, {"name": "order 2"}]}]


def test_self_references(http: httpx.Client) -> None:
    assert get(http, "/family_tree", select="id,parent(id,name,parent(*))", id="in.(3,4)", order="id") == [
        {"id": "3", "parent": {"id": "1", "name": "Parental Unit", "parent": None}},
        {"id": "4", "parent": {"id": "2", "name": "Kid One", "parent": {"id": "1", "name": "Parental Unit",
                                                                       "parent": None}}},
    ]
    assert get(http, "/family_tree", select="id,children:family_tree!parent(id,children:family_tree!parent(id))",
               id="eq.1", **{"children.order": "id"}) == [
        {"id": "1", "children": [{"id": "2", "children": [{"id": "4"}]}, {"id": "3", "children": [{"id": "5"}]}]}
    ]
    assert get(http, "/organizations", select="id,referee(name),auditor(name)", id="eq.3") == [
        {"id": 3, "referee": {"name": "Referee Org"}, "auditor": {"name": "Auditor Org"}}
    ]
    assert get(http, "/organizations", select="name,auditees:organizations!auditor(name)", id="eq.2",
               **{"auditees.order": "id"}) == [{"name": "Auditor Org", "auditees": [{"name": "Acme"},
                                                                                   {"name": "Umbrella"}]}]


def test_one_to_one_both_ways(http: httpx.Client) -> None:
    assert get(http, "/country", select="name,capital(name)", order="id") == [
        {"name": "Afghanistan", "capital": {"name": "Kabul"}},
        {"name": "Algeria", "capital": {"name": "Algiers"}},
        {"name": "Atlantis", "capital": None},
    ]
    assert get(http, "/capital", select="name,country(name)", id="eq.1") == [{"name": "Kabul",
                                                                              "country": {"name": "Afghanistan"}}]


def test_ambiguous_embedding_is_300_with_the_candidates(http: httpx.Client) -> None:
    resp = http.get("/agents", params={"select": "*,departments(*)"})
    assert resp.status_code == 300
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.json() == {
        "code": "PGRST201",
        "details": [
            {"cardinality": "one-to-many", "embedding": "agents with departments",
             "relationship": "departments_head_id_fkey using agents(id) and departments(head_id)"},
            {"cardinality": "many-to-one", "embedding": "agents with departments",
             "relationship": "agents_department_id_fkey using agents(department_id) and departments(id)"},
        ],
        "hint": "Try changing 'departments' to one of the following: 'departments!departments_head_id_fkey', "
                "'departments!agents_department_id_fkey'. Find the desired relationship in the 'details' key.",
        "message": "Could not embed because more than one relationship was found for 'agents' and 'departments'",
    }
    # the hint resolves it
    assert get(http, "/agents", select="name,departments!agents_department_id_fkey(name)", id="eq.3") == [
        {"name": "Toby", "departments": {"name": "Legal"}}
    ]


def test_no_relationship_errors(http: httpx.Client) -> None:
    unknown_hint = http.get("/orders", params={"select": "id,addresses!space(address)"})
    assert (unknown_hint.status_code, unknown_hint.json()) == (400, {
        "code": "PGRST200",
        "details": "Searched for a foreign key relationship between 'orders' and 'addresses' using the hint 'space' "
                   "in the schema 'grammar', but no matches were found.",
        "hint": None,
        "message": "Could not find a relationship between 'orders' and 'addresses' in the schema cache",
    })
    typo = http.get("/projects", params={"select": "id,client(name),taskz(id)"})
    assert typo.status_code == 400 and typo.json()["hint"] == "Perhaps you meant 'tasks' instead of 'taskz'."
    private_junction = http.get("/end_1", params={"select": "end_2(*)"})
    assert private_junction.json()["code"] == "PGRST200" and private_junction.json()["hint"] is None
    missing = http.get("/projectz")
    assert (missing.status_code, missing.json()["hint"]) == (404, "Perhaps you meant the table 'grammar.projects'")


def test_views_of_views_rpc_and_mutations_embed(http: httpx.Client, sb: Client) -> None:
    assert get(http, "/projects_view_view", select="project_name,clients(name),tasks(name)", project_id="eq.3",
               **{"tasks.order": "id"}) == [
        {"project_name": "IOS", "clients": {"name": "Apple"}, "tasks": [{"name": "Design IOS"}, {"name": "Code IOS"}]}
    ]
    rpc = sb.rpc("projects_of", {"client": 2}).select("name,clients(name),tasks(count)").execute().data
    assert rpc == [{"name": "IOS", "clients": {"name": "Apple"}, "tasks": [{"count": 2}]},
                   {"name": "OSX", "clients": {"name": "Apple"}, "tasks": [{"count": 2}]}]
    created = http.post("/tasks", params={"select": "name,projects(name,...clients(client:name))"},
                        json={"id": 99, "name": "Ship IOS", "project_id": 3}, headers={"Prefer": "return=representation"})
    try:
        assert (created.status_code, created.json()) == (201, [{"name": "Ship IOS",
                                                                "projects": {"name": "IOS", "client": "Apple"}}])
    finally:
        http.delete("/tasks", params={"id": "eq.99"})


def test_logic_trees_on_embedded_resources(http: httpx.Client) -> None:
    got = get(http, "/clients", select="name,projects(name)", order="id",
              **{"projects.or": "(name.eq.IOS,name.like.*7)", "projects.order": "id"})
    assert got == [{"name": "Microsoft", "projects": [{"name": "Windows 7"}]}, {"name": "Apple",
                                                                              "projects": [{"name": "IOS"}]}]
    negated = get(http, "/clients", select="name,projects!inner(name)", order="id",
                  **{"projects.not.and": "(name.like.Windows*,id.lt.5)"})
    assert negated == [{"name": "Apple", "projects": [{"name": "IOS"}, {"name": "OSX"}]}]
    not_embedded = http.get("/clients", params={"select": "name", "projects.or": "(id.eq.1)"})
    assert (not_embedded.status_code, not_embedded.json()) == (400, {
        "code": "PGRST108", "details": None,
        "hint": "Verify that 'projects' is included in the 'select' query parameter.",
        "message": "'projects' is not an embedded resource in this request",
    })


# !inner / !left and filters on embedded resources ---------------------------------
def test_inner_and_left_embeds_with_filters(http: httpx.Client, sb: Client) -> None:
    inner = http.get("/projects", params={"select": "id,clients!inner(id)", "clients.id": "eq.1", "order": "id"},
                     headers={"Prefer": "count=exact"})
    assert inner.json() == [{"id": 1, "clients": {"id": 1}}, {"id": 2, "clients": {"id": 1}}]
    assert inner.headers["content-range"] == "0-1/2"
    left = get(http, "/projects", select="id,clients!left(id)", **{"clients.id": "eq.1"}, order="id")
    assert [r["clients"] for r in left] == [{"id": 1}, {"id": 1}, None, None, None]
    deep = http.head("/tasks", params={"select": "id,projects!inner(id,clients!inner(id))",
                                        "projects.clients.id": "eq.2"}, headers={"Prefer": "count=exact"})
    assert deep.headers["content-range"] == "0-3/4"
    # only the direct embed's join type filters the parent
    loose = http.head("/tasks", params={"select": "id,projects(id,clients!inner(id))", "projects.clients.id": "eq.2"},
                      headers={"Prefer": "count=exact"})
    assert loose.headers["content-range"] == "0-7/8"
    to_many = sb.table("clients").select("name,projects!inner(name)").eq("projects.name", "IOS").execute().data
    assert to_many == [{"name": "Apple", "projects": [{"name": "IOS"}]}]
    empty = get(http, "/clients", select="id,projects!inner()", **{"projects.name": "eq.Windows 7"})
    assert empty == [{"id": 1}]
    # `rel=is.null`: parents whose (filtered) embed is empty; the count agrees
    nulls = http.get("/clients", params={"select": "id,projects(id)", "projects": "is.null", "projects.name": "eq.IOS",
                                         "order": "id"}, headers={"Prefer": "count=exact"})
    assert nulls.json() == [{"id": 1, "projects": []}] and nulls.headers["content-range"] == "0-0/1"
    # not embedded: a filter on a column that does not exist, PostgreSQL's error
    unembedded = http.get("/clients", params={"select": "id", "projects": "not.is.null"})
    assert (unembedded.status_code, unembedded.json()) == (400, {
        "code": "42703", "details": None, "hint": None, "message": "column clients.projects does not exist",
    })


def test_related_order_and_embedded_limits(http: httpx.Client) -> None:
    ordered = get(http, "/projects", select="name,clients(name)", order="clients(name).desc,id", id="lt.5")
    assert [r["name"] for r in ordered] == ["Windows 7", "Windows 10", "IOS", "OSX"]
    not_to_one = http.get("/clients", params={"select": "name,projects(name)", "order": "projects(name)"})
    assert (not_to_one.status_code, not_to_one.json()) == (400, {
        "code": "PGRST118", "details": "'clients' and 'projects' do not form a many-to-one or one-to-one relationship",
        "hint": None, "message": "A related order on 'projects' is not possible",
    })
    limited = get(http, "/clients", select="id,projects(id)", order="id",
                  **{"projects.order": "id.desc", "projects.limit": "1", "projects.offset": "1"})
    assert limited == [{"id": 1, "projects": [{"id": 1}]}, {"id": 2, "projects": [{"id": 3}]}]


# spreads ---------------------------------------------------------------------------
def test_spread_to_one_and_nested(http: httpx.Client, sb: Client) -> None:
    assert get(http, "/projects", select="id,...clients(client_name:name)", order="id") == [
        {"id": 1, "client_name": "Microsoft"}, {"id": 2, "client_name": "Microsoft"}, {"id": 3, "client_name": "Apple"},
        {"id": 4, "client_name": "Apple"}, {"id": 5, "client_name": None},
    ]
    nested = sb.table("tasks").select("name,...projects(project:name,...clients(client:name))").eq("id", 5).execute()
    assert nested.data == [{"name": "Design IOS", "project": "IOS", "client": "Apple"}]
    # the junction's own columns beside the spread target's
    assert get(http, "/users", select="id,tasks:users_tasks(task_id,...tasks(name))", id="eq.3",
               **{"tasks.order": "task_id"}) == [
        {"id": 3, "tasks": [{"task_id": 1, "name": "Design w7"}, {"task_id": 5, "name": "Design IOS"}]}
    ]


def test_spread_to_many_as_arrays(http: httpx.Client, grammar_db: Crm) -> None:
    got = get(http, "/factories", select="factory:name,...processes(name,category_id)", order="name",
              **{"processes.order": "category_id.desc,name"})
    want = sql_json(grammar_db, """
        select f.name as factory,
               coalesce((select json_agg(p.name order by p.category_id desc, p.name) from grammar.processes p
                         where p.factory_id = f.id), '[]') as name,
               coalesce((select json_agg(p.category_id order by p.category_id desc, p.name) from grammar.processes p
                         where p.factory_id = f.id), '[]') as category_id
        from grammar.factories f order by f.name""")
    assert got == want
    assert got[-1] == {"factory": "Factory D", "name": [], "category_id": []}
    through_m2m = get(http, "/factories", select="name,...processes(process:name,...supervisors(supervisors:name))",
                      id="eq.2", **{"processes.order": "id", "processes.supervisors.order": "id"})
    assert through_m2m == [{"name": "Factory B", "process": ["Process B1", "Process B2"],
                            "supervisors": [["Peter"], ["Mary", "John"]]}]
    inner = get(http, "/factories", select="name,...processes!inner(id)", order="id")
    assert [r["name"] for r in inner] == ["Factory A", "Factory B", "Factory C"]


# JSON paths ------------------------------------------------------------------------
def test_json_paths_in_select_filter_and_order(http: httpx.Client, sb: Client) -> None:
    assert get(http, "/json_table", select="id,data->foo->>bar,settings->foo->int,numbers->0", order="id") == [
        {"id": 1, "bar": "baz", "int": 1, "numbers": 1},
        {"id": 2, "bar": None, "int": 2, "numbers": 11},
        {"id": 3, "bar": "qux", "int": None, "numbers": None},
    ]
    assert get(http, "/json_table", select="id,n:data->foo->n::int,second:data->list->>1", order="id") == [
        {"id": 1, "n": 3, "second": None}, {"id": 2, "n": None, "second": "20"}, {"id": 3, "n": 1, "second": None},
    ]
    assert get(http, "/json_table", select="id", **{"data->foo->>bar": "eq.baz"}) == [{"id": 1}]
    assert get(http, "/json_table", select="id", **{"data->foo": 'eq.{"n": 1, "bar": "qux"}'}) == [{"id": 3}]
    assert get(http, "/json_table", select="id", **{"data->>id": "gt.0"}, order="data->>id.desc") == [
        {"id": 3}, {"id": 1}]
    assert get(http, "/json_table", select="id", order="data->foo->>n.asc.nullsfirst") == [
        {"id": 2}, {"id": 3}, {"id": 1}]
    assert get(http, "/json_table", select="data->!@#$%^&*_d->>!@#$%^&*_e", id="eq.3") == [{"!@#$%^&*_e": "5"}]
    ored = sb.table("json_table").select("id").or_("data->foo->>bar.eq.qux,data->>id.eq.0").order("id").execute()
    assert ored.data == [{"id": 2}, {"id": 3}]
    # PostgreSQL's own error for an operator that does not apply (404 from 42883, as PostgREST maps it)
    bad = http.get("/json_table", params={"select": "data->>id->1"})
    assert bad.status_code == 404 and bad.json()["code"] == "42883"


# aggregates ------------------------------------------------------------------------
def test_aggregates(http: httpx.Client, sb: Client, grammar_db: Crm) -> None:
    assert get(http, "/projects", select="count()") == [{"count": 5}]
    assert get(http, "/projects", select="cnt:count()::text") == [{"cnt": "5"}]
    assert get(http, "/project_invoices", select="invoice_total.sum(),invoice_total.avg(),invoice_total.max()") == (
        sql_json(grammar_db, "select sum(invoice_total), avg(invoice_total), max(invoice_total) "
                             "from grammar.project_invoices"))
    grouped = get(http, "/project_invoices", select="total:invoice_total.sum()::text,pid:project_id",
                  order="project_id.desc")
    assert grouped == [{"total": "4100", "pid": 4}, {"total": "3200", "pid": 3}, {"total": "1200", "pid": 2},
                       {"total": "300", "pid": 1}]
    embedded = sb.table("projects").select("name,project_invoices(invoice_total.sum(),invoice_total.count())") \
        .order("id").execute().data
    assert embedded[0] == {"name": "Windows 7", "project_invoices": [{"sum": 300, "count": 2}]}
    assert embedded[-1] == {"name": "Orphan", "project_invoices": [{"sum": None, "count": 0}]}
    by_embed = get(http, "/project_invoices", select="project_id,total:invoice_total.sum(),projects(name)",
                   order="project_id")
    assert by_embed[0] == {"project_id": 1, "total": 300, "projects": {"name": "Windows 7"}}
    hoisted = get(http, "/processes", select="...process_costs(cost.sum()),...process_categories(name)",
                  order="process_categories(name)")
    assert hoisted == sql_json(grammar_db, """
        select sum(pc.cost) as sum, c.name from grammar.processes p
        left join grammar.process_costs pc on pc.process_id = p.id
        left join grammar.process_categories c on c.id = p.category_id group by c.name order by c.name""")
    counted = get(http, "/process_supervisor", select="supervisor_id,...processes(count())", order="supervisor_id")
    assert counted == sql_json(grammar_db, """
        select supervisor_id, count(*) as count from grammar.process_supervisor group by supervisor_id
        order by supervisor_id""")
    not_many = http.get("/factories", params={"select": "name,...processes(category_id,id.sum())"})
    assert (not_many.status_code, not_many.json()) == (400, {
        "code": "PGRST127", "details": "Aggregates are not implemented for one-to-many or many-to-many spreads.",
        "hint": None, "message": "Feature not implemented",
    })


def test_aggregates_off_by_default(sandbox_env: dict[str, str], grammar_db: Crm) -> None:
    with grammar_gateway(sandbox_env) as url:
        for select in ("invoice_total.sum()", "count()", "name,project_invoices(invoice_total.max())"):
            path = "/projects" if "project_invoices(" in select else "/project_invoices"
            resp = httpx.get(f"{url}{path}", params={"select": select})
            assert (resp.status_code, resp.json()) == (400, {
                "code": "PGRST123", "details": None, "hint": None, "message": "Use of aggregate functions is not allowed",
            }), select
        # `count` as a column name is PostgreSQL's `table.count`, not a PostgREST aggregate
        assert httpx.get(f"{url}/projects", params={"select": "count"}).json() == [{"count": 5}]


# Unicode ---------------------------------------------------------------------------
def test_unicode_table_and_columns(http: httpx.Client, sb: Client) -> None:
    assert get(http, "/موارد", select="هویت,نام", order="هویت") == [{"هویت": 1, "نام": "یک"}, {"هویت": 2, "نام": "دو"}]
    created = http.post("/موارد", json={"هویت": 3, "نام": "سه"}, headers={"Prefer": "return=representation"})
    assert (created.status_code, created.json()) == (201, [{"هویت": 3, "نام": "سه"}])
    assert sb.table("موارد").select("نام").eq("هویت", 3).execute().data == [{"نام": "سه"}]
    deleted = http.delete("/موارد", params={"هویت": "eq.3"})
    assert deleted.status_code == 204 and "content-type" not in deleted.headers


def test_supabase_py_error_for_ambiguity(sb: Client) -> None:
    with pytest.raises(APIError) as err:
        sb.table("agents").select("*,departments(*)").execute()
    assert err.value.code == "PGRST201"


def test_function_not_found_as_postgrest_words_it(http: httpx.Client) -> None:
    cases = [
        (http.get("/rpc/projects_off", params={"client": "1"}), {
            "code": "PGRST202",
            "details": "Searched for the function grammar.projects_off with parameter client, "
                       "but no matches were found in the schema cache.",
            "hint": "Perhaps you meant to call the function grammar.projects_of",
            "message": "Could not find the function grammar.projects_off(client) in the schema cache",
        }),
        (http.post("/rpc/projects_of", json={}), {
            "code": "PGRST202",
            "details": "Searched for the function grammar.projects_of without parameters or with a single unnamed "
                       "json/jsonb parameter, but no matches were found in the schema cache.",
            "hint": None,  # "()" has no letters to compare with "(client)"
            "message": "Could not find the function grammar.projects_of without parameters in the schema cache",
        }),
        (http.get("/rpc/projects_of", params={"client": "1", "nope": "x", "zzz": "y"}), {
            "code": "PGRST202",
            "details": "Searched for the function grammar.projects_of with parameters client, nope, zzz, "
                       "but no matches were found in the schema cache.",
            "hint": "Perhaps you meant to call the function grammar.projects_of(client)",
            "message": "Could not find the function grammar.projects_of(client, nope, zzz) in the schema cache",
        }),
    ]
    for resp, body in cases:
        assert (resp.status_code, resp.json()) == (404, body)
    # on GET, a value with an operator is a filter on the result, anything else an argument
    filtered = get(http, "/rpc/projects_of", client="2", id="gt.3", select="id")
    assert filtered == [{"id": 4}]


@pytest.mark.parametrize(
    ("path", "params", "sql"),
    [
        ("/projects", {"select": "id,nme"}, 'select "grammar"."projects"."nme" from "grammar"."projects"'),
        ("/projects", {"select": "id", "clent_id": "eq.1"},
         'select 1 from "grammar"."projects" where "grammar"."projects"."clent_id" = 1'),
        ("/projects", {"select": "id,tasks(nam)"},
         'select "tasks_1"."nam" from "grammar"."tasks" as "tasks_1"'),
        ("/orders", {"select": "billing_address"},
         'select "grammar"."orders"."billing_address" from "grammar"."orders"'),
        ("/projects", {"select": "zzzzzz"}, 'select "grammar"."projects"."zzzzzz" from "grammar"."projects"'),
        # an unknown column in an embed and in the root select: PostgreSQL meets the embed (FROM) first
        ("/projects", {"select": "nme,tasks(nam)"}, 'select "tasks_1"."nam" from "grammar"."tasks" as "tasks_1"'),
    ],
)
def test_unknown_columns_are_postgresqls_error(http: httpx.Client, grammar_db: Crm, path: str,
                                               params: dict[str, str], sql: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedColumn) as pg:
        grammar_db.sql(sql)
    resp = http.get(path, params=params)
    assert (resp.status_code, resp.json()) == (400, {
        "code": "42703", "details": None, "hint": pg.value.diag.message_hint,
        "message": pg.value.diag.message_primary,
    })
