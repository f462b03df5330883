-- Sandbox-only bootstrap: what a hosted Supabase project already has before
-- any migration runs (API roles, the auth schema helpers, default grants, the
-- migration history table). Idempotent: applied on every `python -m sandbox up`.
-- Never pushed to a hosted project.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

-- Supabase switched the API roles to inherit (20230529180330_alter_api_roles_for_inherit.sql).
alter role anon inherit;
alter role authenticated inherit;
alter role service_role inherit;
grant anon, authenticated, service_role to authenticator;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

-- Same definitions as supabase/auth 20220224000811_update_auth_functions.up.sql.
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on all functions in schema auth to anon, authenticated, service_role;

grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to postgres, anon, authenticated, service_role;

-- Supabase CLI's migration history table (`supabase migration list` reads it).
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  statements text[],
  name text
);

-- Hosted Supabase reloads PostgREST's schema cache on DDL through event
-- triggers (supabase/postgres `pgrst_ddl_watch` / `pgrst_drop_watch`); the
-- sandbox gateway listens on the same channel.
create schema if not exists extensions;

create or replace function extensions.pgrst_ddl_watch() returns event_trigger
language plpgsql
as $$
begin
  notify pgrst, 'reload schema';
end;
$$;

do $$
begin
  if not exists (select from pg_event_trigger where evtname = 'pgrst_ddl_watch') then
    create event trigger pgrst_ddl_watch on ddl_command_end execute procedure extensions.pgrst_ddl_watch();
  end if;
  if not exists (select from pg_event_trigger where evtname = 'pgrst_drop_watch') then
    create event trigger pgrst_drop_watch on sql_drop execute procedure extensions.pgrst_ddl_watch();
  end if;
exception when insufficient_privilege then
  raise notice 'event triggers need a superuser; reload the gateway with NOTIFY pgrst, ''reload schema''';
end
$$;

-- pg_stat_statements, as every Supabase project has it: in schema `extensions`
-- (what `supabase inspect db outliers|calls` query). The sandbox's PostgreSQL
-- preloads the library; on a DATABASE_URL server without the preload or a
-- superuser this is skipped with a notice. Other roles' statement texts need
-- pg_read_all_stats, which Supabase's docs grant to `postgres`.
do $$
begin
  if not exists (select from pg_extension where extname = 'pg_stat_statements') then
    create extension pg_stat_statements with schema extensions;
  end if;
  grant usage on schema extensions to postgres, anon, authenticated, service_role;
  grant pg_read_all_stats to postgres;
exception when insufficient_privilege or undefined_file or feature_not_supported then
  raise notice 'pg_stat_statements not set up: %', sqlerrm;
end
$$;
