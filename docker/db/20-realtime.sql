-- Runs once, when the database volume is created (after 10-migrations.sh).
-- What the supabase/realtime image (docker-compose.yml `realtime`) needs from
-- the database, as Supabase's self-hosted stack provides it:
--   * supabase_admin, the role it connects as (DB_USER). On Supabase it is the
--     database's superuser, and Realtime relies on that: its migrations create
--     the `realtime` schema and the supabase_realtime_admin role and hand
--     objects to it, its poller reads the WAL through a logical replication
--     slot, and it checks each change against every subscriber's RLS by
--     switching to the subscriber's role. It logs in with POSTGRES_PASSWORD,
--     like the other roles here; its queries show in pg_stat_statements under
--     its own name, apart from PostgREST's and the seed's.
--   * the schema _realtime, owned by it: Realtime's own tables (tenants,
--     extensions, schema_migrations), found through DB_AFTER_CONNECT_QUERY's
--     search_path.
--   * the publication supabase_realtime: the tables whose changes it streams.
--     Hosted projects have it, empty, from the start; the project's migration
--     20260301000000_realtime_publication.sql adds the CRM tables to it.
--   * wal_level = logical, set on the server's command line
--     (docker-compose.yml); checked here so that a server started without it
--     fails at its first start, not at Realtime's first subscription.
\set ON_ERROR_STOP on
\set pw `printf '%s' "$POSTGRES_PASSWORD"`

do $$
begin
  if current_setting('wal_level') <> 'logical' then
    raise exception 'wal_level is %, Supabase Realtime needs logical (start postgres with -c wal_level=logical)',
      current_setting('wal_level');
  end if;
end
$$;

do $$
begin
  if not exists (select from pg_roles where rolname = 'supabase_admin') then
    create role supabase_admin;
  end if;
end
$$;
alter role supabase_admin with login superuser createdb createrole replication bypassrls password :'pw';

create schema if not exists _realtime authorization supabase_admin;
alter schema _realtime owner to supabase_admin;

do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
