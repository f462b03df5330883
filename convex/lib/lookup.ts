// The canonical contact-context lookup (docs/formats.md), shared by the
// member-checked public queries and the API-key (internal) path.
import { ConvexError } from "convex/values";
import type { Doc } from "../_generated/dataModel";
import type { QueryCtx } from "../_generated/server";

export const CONVERSATION_LIMIT = 3;
export const DEFAULT_MESSAGE_LIMIT = 20;
export const MAX_MESSAGE_LIMIT = 100;
export const NOTE_LIMIT = 10;

export type ContactView = {
  id: string;
  workspaceId: string;
  phone: string;
  name: string | null;
  email: string | null;
  tags: string[];
  leadStatus: string | null;
  leadScore: number | null;
  metadata: unknown;
  createdAt: number;
  updatedAt: number;
};

export type MessageView = {
  id: string;
  direction: string;
  senderType: string;
  content: string;
  messageType: string;
  createdAt: number;
};

export type ConversationView = {
  id: string;
  status: string;
  assignedTo: string | null;
  lastMessageAt: number | null;
  lastMessagePreview: string | null;
  unreadCount: number;
  createdAt: number;
  messages: MessageView[];
};

export type NoteView = { id: string; authorId: string | null; content: string; createdAt: number };

export type ContactContext = {
  contact: ContactView;
  workspace: { id: string; name: string };
  conversations: ConversationView[];
  notes: NoteView[];
};

/** 1..100, default 20; anything else is the caller's mistake. */
export function checkMessageLimit(messageLimit: number | undefined): number {
  if (messageLimit === undefined) return DEFAULT_MESSAGE_LIMIT;
  if (!Number.isInteger(messageLimit) || messageLimit < 1 || messageLimit > MAX_MESSAGE_LIMIT) {
    throw new ConvexError({ code: "BadRequest", message: `messageLimit must be an integer from 1 to ${MAX_MESSAGE_LIMIT}` });
  }
  return messageLimit;
}

export async function findWorkspace(ctx: QueryCtx, workspaceSupabaseId: string): Promise<Doc<"workspaces"> | null> {
  return await ctx.db
    .query("workspaces")
    .withIndex("by_supabase_id", (q) => q.eq("supabaseId", workspaceSupabaseId))
    .unique();
}

export async function findContact(
  ctx: QueryCtx,
  workspace: Doc<"workspaces">,
  phone: string,
): Promise<Doc<"contacts"> | null> {
  return await ctx.db
    .query("contacts")
    .withIndex("by_workspace_phone", (q) => q.eq("workspaceId", workspace._id).eq("phone", phone))
    .unique();
}

export function contactView(contact: Doc<"contacts">, workspace: Doc<"workspaces">): ContactView {
  return {
    id: contact.supabaseId,
    workspaceId: workspace.supabaseId,
    phone: contact.phone,
    name: contact.name ?? null,
    email: contact.email ?? null,
    tags: contact.tags,
    leadStatus: contact.leadStatus ?? null,
    leadScore: contact.leadScore ?? null,
    metadata: contact.metadata ?? null,
    createdAt: contact.createdAt,
    updatedAt: contact.updatedAt,
  };
}

function messageView(message: Doc<"messages">): MessageView {
  return {
    id: message.supabaseId,
    direction: message.direction,
    senderType: message.senderType,
    content: message.content,
    messageType: message.messageType,
    createdAt: message.createdAt,
  };
}

export async function contactContext(
  ctx: QueryCtx,
  workspace: Doc<"workspaces">,
  phone: string,
  messageLimit: number,
): Promise<ContactContext | null> {
  const contact = await findContact(ctx, workspace, phone);
  if (contact === null) return null;

  const conversations = await ctx.db
    .query("conversations")
    .withIndex("by_contact_last_message", (q) => q.eq("contactId", contact._id))
    .order("desc")
    .take(CONVERSATION_LIMIT);

  const conversationViews = await Promise.all(
    conversations.map(async (conversation): Promise<ConversationView> => {
      const messages = await ctx.db
        .query("messages")
        .withIndex("by_conversation_created", (q) => q.eq("conversationId", conversation._id))
        .order("desc")
        .take(messageLimit);
      return {
        id: conversation.supabaseId,
        status: conversation.status,
        assignedTo: conversation.assignedTo ?? null,
        lastMessageAt: conversation.lastMessageAt ?? null,
        lastMessagePreview: conversation.lastMessagePreview ?? null,
        unreadCount: conversation.unreadCount,
        createdAt: conversation.createdAt,
        messages: messages.map(messageView),
      };
    }),
  );

  const notes = await ctx.db
    .query("contactNotes")
    .withIndex("by_contact_created", (q) => q.eq("contactId", contact._id))
    .order("desc")
    .take(NOTE_LIMIT);

  return {
    contact: contactView(contact, workspace),
    workspace: { id: workspace.supabaseId, name: workspace.name },
    conversations: conversationViews,
    notes: notes.map((note) => ({
      id: note.supabaseId,
      authorId: note.authorId ?? null,
      content: note.content,
      createdAt: note.createdAt,
    })),
  };
}
