-- CRM data model, RLS and the one-call lookup RPC.
-- Applies unchanged to a hosted Supabase project (`supabase db push`) and to
-- the local sandbox (after supabase/sandbox/bootstrap.sql).

create table public.workspaces (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  slug text not null unique,
  created_at timestamptz not null default now()
);

create table public.workspace_members (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  user_id uuid not null,
  role text not null default 'agent' check (role in ('owner', 'admin', 'agent')),
  created_at timestamptz not null default now(),
  unique (workspace_id, user_id)
);

create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  phone text not null check (phone ~ '^[1-9][0-9]{5,14}$'),
  name text,
  email text,
  tags text[] not null default '{}',
  lead_status text,
  lead_score integer,
  metadata jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- also the hot-path index for the phone lookup
  constraint contacts_workspace_id_phone_key unique (workspace_id, phone)
);

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  contact_id uuid not null references public.contacts (id) on delete cascade,
  status text not null default 'open' check (status in ('open', 'pending', 'closed')),
  assigned_to uuid,
  last_message_at timestamptz,
  last_message_preview text,
  unread_count integer not null default 0 check (unread_count >= 0),
  created_at timestamptz not null default now()
);

create table public.messages (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  direction text not null check (direction in ('inbound', 'outbound')),
  sender_type text not null check (sender_type in ('contact', 'agent', 'ai')),
  content text not null,
  message_type text not null default 'text',
  created_at timestamptz not null default now()
);

create table public.contact_notes (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  contact_id uuid not null references public.contacts (id) on delete cascade,
  author_id uuid,
  content text not null,
  created_at timestamptz not null default now()
);

-- Hot paths: lookup by phone (the unique constraint above), newest
-- conversations / messages / notes of one parent, membership by user.
create index conversations_contact_id_last_message_at_idx
  on public.conversations (contact_id, last_message_at desc nulls last);
create index messages_conversation_id_created_at_idx
  on public.messages (conversation_id, created_at desc);
create index contact_notes_contact_id_created_at_idx
  on public.contact_notes (contact_id, created_at desc);
create index workspace_members_user_id_workspace_id_idx
  on public.workspace_members (user_id, workspace_id);
-- FK indexes so workspace deletes (cascade) and per-workspace scans stay cheap.
create index conversations_workspace_id_idx on public.conversations (workspace_id);
create index messages_workspace_id_idx on public.messages (workspace_id);
create index contact_notes_workspace_id_idx on public.contact_notes (workspace_id);
-- The load tests' rows are removed with `where message_type = 'loadtest'`.
create index messages_loadtest_idx on public.messages (id) where message_type = 'loadtest';

-- Row level security: members read (and the app's agents write) their
-- workspace's rows; service_role bypasses RLS; anon has no policy, so sees nothing.
-- `(select auth.uid())` is evaluated once per statement, not once per row.
alter table public.workspaces enable row level security;
alter table public.workspace_members enable row level security;
alter table public.contacts enable row level security;
alter table public.conversations enable row level security;
alter table public.messages enable row level security;
alter table public.contact_notes enable row level security;

create policy "members read their memberships" on public.workspace_members
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy "members read their workspaces" on public.workspaces
  for select to authenticated
  using (id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));

create policy "members read contacts" on public.contacts
  for select to authenticated
  using (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));
create policy "members write contacts" on public.contacts
  for insert to authenticated
  with check (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));
create policy "members update contacts" on public.contacts
  for update to authenticated
  using (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())))
  with check (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));

create policy "members read conversations" on public.conversations
  for select to authenticated
  using (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));
create policy "members write conversations" on public.conversations
  for insert to authenticated
  with check (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));
create policy "members update conversations" on public.conversations
  for update to authenticated
  using (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())))
  with check (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));

create policy "members read messages" on public.messages
  for select to authenticated
  using (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));
create policy "members write messages" on public.messages
  for insert to authenticated
  with check (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));

create policy "members read notes" on public.contact_notes
  for select to authenticated
  using (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));
create policy "members write notes" on public.contact_notes
  for insert to authenticated
  with check (workspace_id in (select wm.workspace_id from public.workspace_members wm where wm.user_id = (select auth.uid())));

-- Hosted Supabase grants these through default privileges; stated here so the
-- schema does not depend on them.
grant usage on schema public to anon, authenticated, service_role;
grant select on all tables in schema public to anon;
grant select, insert, update, delete on all tables in schema public to authenticated, service_role;

-- The canonical lookup (docs/formats.md) in one statement: contact + workspace,
-- newest 3 conversations (nulls last) with their newest N messages, newest 10
-- notes. Times are epoch milliseconds (floor of the microsecond timestamp).
-- Returns null when the phone is not in the workspace. Security invoker: RLS
-- of the caller applies.
create or replace function public.get_contact_context(
  p_workspace_id uuid,
  p_phone text,
  p_message_limit integer default 20
)
returns json
language sql
stable
security invoker
set search_path = ''
as $$
  select json_build_object(
    'contact', json_build_object(
      'id', c.id,
      'workspaceId', c.workspace_id,
      'phone', c.phone,
      'name', c.name,
      'email', c.email,
      'tags', to_json(c.tags),
      'leadStatus', c.lead_status,
      'leadScore', c.lead_score,
      'metadata', c.metadata,
      'createdAt', floor(extract(epoch from c.created_at) * 1000)::bigint,
      'updatedAt', floor(extract(epoch from c.updated_at) * 1000)::bigint
    ),
    'workspace', json_build_object('id', w.id, 'name', w.name),
    'conversations', coalesce((
      select json_agg(json_build_object(
        'id', cv.id,
        'status', cv.status,
        'assignedTo', cv.assigned_to,
        'lastMessageAt', floor(extract(epoch from cv.last_message_at) * 1000)::bigint,
        'lastMessagePreview', cv.last_message_preview,
        'unreadCount', cv.unread_count,
        'createdAt', floor(extract(epoch from cv.created_at) * 1000)::bigint,
        'messages', coalesce((
          select json_agg(json_build_object(
            'id', m.id,
            'direction', m.direction,
            'senderType', m.sender_type,
            'content', m.content,
            'messageType', m.message_type,
            'createdAt', floor(extract(epoch from m.created_at) * 1000)::bigint
          ) order by m.created_at desc)
          from (
            select mm.id, mm.direction, mm.sender_type, mm.content, mm.message_type, mm.created_at
            from public.messages mm
            where mm.conversation_id = cv.id
            order by mm.created_at desc
            limit least(greatest(coalesce(p_message_limit, 20), 1), 100)
          ) m
        ), '[]'::json)
      ) order by cv.last_message_at desc nulls last)
      from (
        select cc.id, cc.status, cc.assigned_to, cc.last_message_at, cc.last_message_preview,
               cc.unread_count, cc.created_at
        from public.conversations cc
        where cc.contact_id = c.id
        order by cc.last_message_at desc nulls last
        limit 3
      ) cv
    ), '[]'::json),
    'notes', coalesce((
      select json_agg(json_build_object(
        'id', n.id,
        'authorId', n.author_id,
        'content', n.content,
        'createdAt', floor(extract(epoch from n.created_at) * 1000)::bigint
      ) order by n.created_at desc)
      from (
        select nn.id, nn.author_id, nn.content, nn.created_at
        from public.contact_notes nn
        where nn.contact_id = c.id
        order by nn.created_at desc
        limit 10
      ) n
    ), '[]'::json)
  )
  from public.contacts c
  join public.workspaces w on w.id = c.workspace_id
  where c.workspace_id = p_workspace_id
    and c.phone = p_phone
$$;

revoke execute on function public.get_contact_context(uuid, text, integer) from public, anon;
grant execute on function public.get_contact_context(uuid, text, integer) to authenticated, service_role;
