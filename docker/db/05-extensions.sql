-- Runs once, when the database volume is created (after 00-bootstrap.sql).
-- pg_stat_statements where a Supabase project has it: in schema `extensions`
-- (Supabase's docs: `create extension pg_stat_statements with schema
-- extensions`). Its view needs the library loaded at server start:
-- docker-compose.yml starts postgres with shared_preload_libraries.
create schema if not exists extensions;
create extension if not exists pg_stat_statements with schema extensions;
grant usage on schema extensions to anon, authenticated, service_role;
