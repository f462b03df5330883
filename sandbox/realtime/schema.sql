-- Sandbox-only: the database side of the sandbox's Supabase Realtime.
-- Idempotent; applied by `python -m sandbox up` after supabase/sandbox/bootstrap.sql
-- and before the migrations. Never pushed to a hosted project.
--
-- Hosted Realtime reads changes from a logical replication slot on the
-- `supabase_realtime` publication. Here, a deferred constraint trigger on each
-- table of that publication captures every row change at commit time and
-- sends it with NOTIFY on the channel `realtime_sandbox`, which PostgreSQL
-- delivers to the listening gateway once (and only if) the transaction
-- commits, in commit order. Adding a table to the publication
-- (`alter publication supabase_realtime add table ...`) installs its trigger;
-- removing it removes the trigger.

create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role, authenticator;

-- Hosted projects start with this publication, empty.
do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

-- A change too large for a NOTIFY payload (8000 bytes) waits here for the
-- gateway, which reads and deletes it.
create unlogged table if not exists realtime.sandbox_changes (
  id bigint generated always as identity primary key,
  payload text not null,
  created_at timestamptz not null default now()
);
grant select, delete on realtime.sandbox_changes to authenticator;

-- One row change: schema, table, type, commit_timestamp (the first change's
-- time at commit, shared by the transaction's changes, UTC, milliseconds as
-- Realtime formats it), seq (the change's place in its transaction), and the
-- whole new and old rows as to_jsonb renders them. The gateway keeps what each
-- subscriber may see (replica identity, column privileges, RLS).
create or replace function realtime.sandbox_capture() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  commit_ts text := nullif(current_setting('realtime.sandbox_commit_ts', true), '');
  seq integer := coalesce(nullif(current_setting('realtime.sandbox_seq', true), ''), '0')::integer + 1;
  payload text;
  ref bigint;
begin
  if commit_ts is null then
    commit_ts := to_char(clock_timestamp() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    perform set_config('realtime.sandbox_commit_ts', commit_ts, true);
  end if;
  perform set_config('realtime.sandbox_seq', seq::text, true);
  payload := json_build_object(
    'schema', tg_table_schema,
    'table', tg_table_name,
    'type', tg_op,
    'commit_timestamp', commit_ts,
    'seq', seq,
    'record', case when tg_op <> 'DELETE' then to_jsonb(new) end,
    'old_record', case when tg_op <> 'INSERT' then to_jsonb(old) end
  )::text;
  if octet_length(payload) < 7900 then
    perform pg_notify('realtime_sandbox', payload);
  else
    insert into realtime.sandbox_changes (payload) values (payload) returning id into ref;
    perform pg_notify('realtime_sandbox', json_build_object('ref', ref)::text);
  end if;
  return null;
end
$$;

-- Makes the capture triggers match the publication's tables.
create or replace function realtime.sandbox_sync_triggers() returns void
language plpgsql
set search_path = ''
as $$
declare
  rel regclass;
begin
  for rel in
    select format('%I.%I', p.schemaname, p.tablename)::regclass
    from pg_catalog.pg_publication_tables p
    where p.pubname = 'supabase_realtime'
      and not exists (
        select from pg_catalog.pg_trigger t
        where t.tgrelid = format('%I.%I', p.schemaname, p.tablename)::regclass
          and t.tgname = 'realtime_sandbox_capture'
      )
  loop
    execute format(
      'create constraint trigger realtime_sandbox_capture after insert or update or delete on %s '
      'deferrable initially deferred for each row execute function realtime.sandbox_capture()', rel);
  end loop;
  for rel in
    select t.tgrelid::regclass
    from pg_catalog.pg_trigger t
    where t.tgname = 'realtime_sandbox_capture'
      and t.tgrelid not in (
        select format('%I.%I', p.schemaname, p.tablename)::regclass
        from pg_catalog.pg_publication_tables p
        where p.pubname = 'supabase_realtime'
      )
  loop
    execute format('drop trigger realtime_sandbox_capture on %s', rel);
  end loop;
end
$$;

create or replace function realtime.sandbox_publication_watch() returns event_trigger
language plpgsql
as $$
begin
  perform realtime.sandbox_sync_triggers();
end
$$;

do $$
begin
  if not exists (select from pg_event_trigger where evtname = 'realtime_sandbox_publication') then
    create event trigger realtime_sandbox_publication on ddl_command_end
      when tag in ('CREATE PUBLICATION', 'ALTER PUBLICATION')
      execute procedure realtime.sandbox_publication_watch();
  end if;
exception when insufficient_privilege then
  raise notice 'event triggers need a superuser; run select realtime.sandbox_sync_triggers() after changing the publication';
end
$$;

-- Which of the given subscribers may see a row, as Realtime's apply_rls
-- decides it: for each subscriber's JWT claims, its role and claims are set
-- and the row is looked up by primary key under the table's RLS, with a
-- statement prepared once per table and session (apply_rls: walrus_rls_stmt).
create or replace function realtime.sandbox_visible(entity regclass, pk jsonb, claims jsonb[])
returns boolean[]
language plpgsql
set search_path = ''
as $$
declare
  stmt text := 'realtime_sandbox_rls_' || entity::oid;
  pk_match text;
  result boolean[] := '{}';
  c jsonb;
  visible boolean;
begin
  if not exists (select from pg_catalog.pg_prepared_statements where name = stmt) then
    pk_match := (
      select string_agg(format('t.%1$I = k.%1$I', a.attname), ' and ')
      from pg_catalog.pg_index i
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
      where i.indrelid = entity and i.indisprimary
    );
    execute format(
      'prepare %I(jsonb) as select exists (select 1 from %s t, jsonb_populate_record(null::%s, $1) k where %s)',
      stmt, entity, entity, pk_match);
  end if;
  foreach c in array claims loop
    perform set_config('role', c ->> 'role', true), set_config('request.jwt.claims', c::text, true);
    execute format('execute %I(%L)', stmt, pk) into visible;
    perform set_config('role', null, true);
    result := result || visible;
  end loop;
  return result;
end
$$;
grant execute on function realtime.sandbox_visible(regclass, jsonb, jsonb[]) to authenticator;

select realtime.sandbox_sync_triggers();
