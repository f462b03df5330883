"""A small PostgREST client over httpx for the seed's bulk reads and writes.

Reads use keyset pagination on ``id`` (``id=gt.<last>&order=id.asc``): each page
is an index range scan, where growing offsets would rescan every earlier row.
Every failure becomes a :class:`SeedError` naming its cause in one line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from harness.settings import url_host

from . import retry
from .errors import SeedError
from .tables import TABLES, Table

PAGE_SIZE = 1000  # hosted PostgREST caps responses at db-max-rows=1000 by default


def _error_fields(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return {"message": resp.text[:200]}
    return body if isinstance(body, dict) else {"message": str(body)[:200]}


class SupabaseRest:
    def __init__(self, url: str, key: str, *, timeout: float = 60.0, attempts: int = 6) -> None:
        self.url = url.rstrip("/")
        self.host = url_host(self.url)
        self.attempts = attempts
        self.client = httpx.Client(
            base_url=self.url + "/rest/v1",
            timeout=timeout,
            headers={
                "apikey": key,
                "Authorization": f"Bearer {key}",
                "Accept": "application/json",
                "Accept-Profile": "public",
                "Content-Profile": "public",
            },
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SupabaseRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transport -----------------------------------------------------------------
    def request(self, method: str, path: str, *, attempts: int | None = None, **kw: Any) -> httpx.Response:
        last: str = ""
        for pause in [*retry.delays(attempts or self.attempts), None]:
            try:
                resp = self.client.request(method, path, **kw)
            except httpx.TransportError as exc:
                last = f"cannot reach SUPABASE_URL {self.host}: {type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if resp.status_code not in retry.RETRY_STATUS:
                    if resp.is_success:
                        return resp
                    raise self._error(resp, path)
                last = f"Supabase at {self.host} answered {resp.status_code} repeatedly"
                hinted = retry.retry_after(resp.headers.get("retry-after"))
                if hinted is not None and pause is not None:
                    pause = max(pause, hinted)
            if pause is None:
                break
            time.sleep(pause)
        raise SeedError(last)

    def _error(self, resp: httpx.Response, path: str) -> SeedError:
        f = _error_fields(resp)
        code = str(f.get("code") or "")
        message = str(f.get("message") or resp.reason_phrase)
        table = path.strip("/").split("?")[0]
        if resp.status_code in (401, 403) and code not in ("42501",):
            return SeedError(
                f"SUPABASE_SERVICE_ROLE_KEY was rejected by {self.host} ({resp.status_code}: {message})"
            )
        if code in ("PGRST205", "42P01", "PGRST202", "42883") or (resp.status_code == 404 and not code):
            return SeedError(
                f"Supabase schema mismatch at {self.host}: {message} (apply supabase/migrations first)"
            )
        if code in ("42703", "PGRST204", "PGRST200"):
            return SeedError(f"Supabase schema mismatch at {self.host} ({table}): {message}")
        if code == "42501":
            return SeedError(
                f"Supabase refused access to {table} at {self.host} ({message}); "
                "SUPABASE_SERVICE_ROLE_KEY must be the service_role key"
            )
        return SeedError(
            f"Supabase at {self.host} answered {resp.status_code} for {table}: {message} {code}".rstrip()
        )

    # reads ---------------------------------------------------------------------
    def page(
        self,
        table: Table,
        after: str | None,
        limit: int = PAGE_SIZE,
        columns: str | None = None,
        attempts: int | None = None,
    ) -> list[dict]:
        params: dict[str, str] = {
            "select": columns or ",".join(table.column_names),
            "order": "id.asc",
            "limit": str(limit),
        }
        if after is not None:
            params["id"] = f"gt.{after}"
        resp = self.request("GET", f"/{table.name}", params=params, attempts=attempts)
        rows = orjson.loads(resp.content)
        if not isinstance(rows, list):
            raise SeedError(f"Supabase at {self.host} returned a non-list for {table.name}")
        return rows

    def scan(
        self, table: Table, after: str | None = None, limit: int = PAGE_SIZE, columns: str | None = None
    ) -> Iterator[list[dict]]:
        """Every row of ``table`` in id order, page by page; stops at the first empty page
        (a short page is not the end: the server may cap ``limit``)."""
        while True:
            rows = self.page(table, after, limit, columns)
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    def count(self, table: Table) -> int:
        resp = self.request(
            "GET",
            f"/{table.name}",
            params={"select": "id", "limit": "1"},
            headers={"Prefer": "count=exact"},
        )
        rng = resp.headers.get("content-range", "")
        try:
            return int(rng.split("/")[1])
        except (IndexError, ValueError):
            raise SeedError(f"Supabase at {self.host} sent no row count for {table.name}") from None

    def check_schema(self) -> None:
        """One request per table naming every column the seed reads: a missing
        table or column fails here, before anything is written."""
        for t in TABLES:
            # two attempts: an unreachable URL should fail in seconds, not after the full backoff
            self.page(t, None, 1, attempts=2)

    def rpc(self, name: str, args: dict[str, Any]) -> Any:
        resp = self.request(
            "POST", f"/rpc/{name}", content=orjson.dumps(args), headers={"Content-Type": "application/json"}
        )
        return orjson.loads(resp.content) if resp.content else None

    # writes --------------------------------------------------------------------
    def upsert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self.request(
            "POST",
            f"/{table.name}",
            params={"on_conflict": "id"},
            content=orjson.dumps(rows),
            headers={
                "Content-Type": "application/json",
                "Prefer": "resolution=merge-duplicates,return=minimal",
            },
        )

    def delete_in(self, table: Table, column: str, values: list[str]) -> None:
        if not values:
            return
        self.request(
            "DELETE",
            f"/{table.name}",
            params={column: "in.(" + ",".join(values) + ")"},
            headers={"Prefer": "return=minimal"},
        )

    def truncate_all(self) -> None:
        """Delete every row of the six tables (children first); sandbox/--reset only."""
        for t in reversed(TABLES):
            # PostgREST refuses an unfiltered DELETE; "id is not null" matches every row.
            self.request(
                "DELETE", f"/{t.name}", params={"id": "not.is.null"}, headers={"Prefer": "return=minimal"}
            )
