-- Supabase Realtime `postgres_changes` for the CRM tables: an agent's inbox
-- subscribes to new messages and conversation updates of its workspace.
-- Realtime only streams tables in the `supabase_realtime` publication (hosted
-- projects have it, empty); RLS still decides what each subscriber receives.
-- Idempotent: tables already published are left as they are.
do $$
declare
  t text;
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  foreach t in array array['workspaces', 'workspace_members', 'contacts', 'conversations', 'messages', 'contact_notes'] loop
    if not exists (
      select from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = t
    ) then
      execute format('alter publication supabase_realtime add table public.%I', t);
    end if;
  end loop;
end
$$;
