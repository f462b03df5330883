// GET /api/contacts/by-phone?workspaceId=<uuid>&phone=<digits>
//
// The contact-context lookup as the app does it today: 4 sequential Supabase
// REST queries (contact + workspace, newest 3 conversations, their messages,
// newest 10 notes) with the service-role key, assembled into the canonical
// lookup shape. Guarded by the `x-api-key` header (CRM_API_KEY).
//
// Env: SUPABASE_URL (or NEXT_PUBLIC_SUPABASE_URL), SUPABASE_SERVICE_ROLE_KEY, CRM_API_KEY.
// Responses: 200 lookup, 400 bad input, 401 bad key, 404 {"error":"contact not found"},
// 500 misconfigured, 502 Supabase error. Errors are {"error": "<message>"}.
//
// To use it in an app: copy this file into its src/app/api/contacts/by-phone/,
// and src/lib/lookup-request.ts (the input and key checks both routes share).

import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { json, readLookupRequest } from "@/lib/lookup-request";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

const MESSAGE_LIMIT = 20;
const CONVERSATION_LIMIT = 3;
const NOTE_LIMIT = 10;

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

interface ContactRow {
  id: string;
  workspace_id: string;
  phone: string;
  name: string | null;
  email: string | null;
  tags: string[] | null;
  lead_status: string | null;
  lead_score: number | null;
  metadata: { [key: string]: Json } | null;
  created_at: string;
  updated_at: string;
  workspace: { id: string; name: string } | null;
}

interface ConversationRow {
  id: string;
  status: string;
  assigned_to: string | null;
  last_message_at: string | null;
  last_message_preview: string | null;
  unread_count: number;
  created_at: string;
}

interface MessageRow {
  id: string;
  conversation_id: string;
  direction: string;
  sender_type: string;
  content: string;
  message_type: string;
  created_at: string;
}

interface NoteRow {
  id: string;
  author_id: string | null;
  content: string;
  created_at: string;
}

// PostgREST renders timestamptz with microseconds ("2026-01-21T10:00:00.123456+00:00");
// the canonical shape is epoch milliseconds, truncated like the SQL RPC's floor().
function epochMs(value: string): number {
  const normalised = value.replace(/\.(\d{3})\d*/, ".$1").replace(" ", "T");
  const ms = Date.parse(normalised);
  if (Number.isNaN(ms)) throw new Error(`unparseable timestamp ${value}`);
  return ms;
}

function epochMsOrNull(value: string | null): number | null {
  return value === null ? null : epochMs(value);
}

let client: SupabaseClient | null = null;

// One client per server process: it keeps its HTTP connections alive between requests.
function supabase(): SupabaseClient | null {
  if (client) return client;
  const url = process.env.SUPABASE_URL ?? process.env.NEXT_PUBLIC_SUPABASE_URL;
  const key = process.env.SUPABASE_SERVICE_ROLE_KEY;
  if (!url || !key) return null;
  client = createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  return client;
}

class UpstreamError extends Error {}

function check<T>(result: { data: T | null; error: { message: string } | null }, what: string): T {
  if (result.error) throw new UpstreamError(`${what}: ${result.error.message}`);
  return result.data as T;
}

async function lookup(db: SupabaseClient, workspaceId: string, phone: string) {
  // Sequential on purpose: this is the app's current access pattern, the
  // baseline the load test measures (each await is one round trip).
  const contacts = check<ContactRow[]>(
    await db
      .from("contacts")
      .select(
        "id, workspace_id, phone, name, email, tags, lead_status, lead_score, metadata, created_at, updated_at, workspace:workspaces(id, name)",
      )
      .eq("workspace_id", workspaceId)
      .eq("phone", phone)
      .limit(1)
      .returns<ContactRow[]>(),
    "contacts",
  );
  const contact = contacts[0];
  if (!contact || !contact.workspace) return null;

  const conversations = check<ConversationRow[]>(
    await db
      .from("conversations")
      .select("id, status, assigned_to, last_message_at, last_message_preview, unread_count, created_at")
      .eq("contact_id", contact.id)
      .order("last_message_at", { ascending: false, nullsFirst: false })
      .limit(CONVERSATION_LIMIT)
      .returns<ConversationRow[]>(),
    "conversations",
  );

  const byConversation = new Map<string, MessageRow[]>(conversations.map((c) => [c.id, []]));
  if (conversations.length > 0) {
    // One query for all conversations (`conversation_id=in.(…)`), newest first;
    // each conversation then keeps its newest MESSAGE_LIMIT.
    const messages = check<MessageRow[]>(
      await db
        .from("messages")
        .select("id, conversation_id, direction, sender_type, content, message_type, created_at")
        .in(
          "conversation_id",
          conversations.map((c) => c.id),
        )
        .order("created_at", { ascending: false })
        .returns<MessageRow[]>(),
      "messages",
    );
    for (const m of messages) {
      const list = byConversation.get(m.conversation_id);
      if (list && list.length < MESSAGE_LIMIT) list.push(m);
    }
  }

  const notes = check<NoteRow[]>(
    await db
      .from("contact_notes")
      .select("id, author_id, content, created_at")
      .eq("contact_id", contact.id)
      .order("created_at", { ascending: false })
      .limit(NOTE_LIMIT)
      .returns<NoteRow[]>(),
    "contact_notes",
  );

  return {
    contact: {
      id: contact.id,
      workspaceId: contact.workspace_id,
      phone: contact.phone,
      name: contact.name,
      email: contact.email,
      tags: contact.tags ?? [],
      leadStatus: contact.lead_status,
      leadScore: contact.lead_score,
      metadata: contact.metadata,
      createdAt: epochMs(contact.created_at),
      updatedAt: epochMs(contact.updated_at),
    },
    workspace: { id: contact.workspace.id, name: contact.workspace.name },
    conversations: conversations.map((c) => ({
      id: c.id,
      status: c.status,
      assignedTo: c.assigned_to,
      lastMessageAt: epochMsOrNull(c.last_message_at),
      lastMessagePreview: c.last_message_preview,
      unreadCount: c.unread_count,
      createdAt: epochMs(c.created_at),
      messages: (byConversation.get(c.id) ?? []).map((m) => ({
        id: m.id,
        direction: m.direction,
        senderType: m.sender_type,
        content: m.content,
        messageType: m.message_type,
        createdAt: epochMs(m.created_at),
      })),
    })),
    notes: notes.map((n) => ({
      id: n.id,
      authorId: n.author_id,
      content: n.content,
      createdAt: epochMs(n.created_at),
    })),
  };
}

export async function GET(request: Request): Promise<Response> {
  const input = readLookupRequest(request);
  if (input instanceof Response) return input;

  const db = supabase();
  if (!db) return json(500, { error: "SUPABASE_URL or SUPABASE_SERVICE_ROLE_KEY is not set on the server" });

  try {
    const result = await lookup(db, input.workspaceId, input.phone);
    return result ? json(200, result) : json(404, { error: "contact not found" });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    console.error(`by-phone: ${message}`);
    return json(502, { error: err instanceof UpstreamError ? "supabase request failed" : "lookup failed" });
  }
}
