// The CRM tables in Convex form (see docs/formats.md): camelCase fields,
// epoch-millisecond numbers for times, nullable Supabase columns as optional
// fields, and every row keeping the Supabase uuid it came from in `supabaseId`.
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export const memberRole = v.union(v.literal("owner"), v.literal("admin"), v.literal("agent"));
export const conversationStatus = v.union(v.literal("open"), v.literal("pending"), v.literal("closed"));
export const messageDirection = v.union(v.literal("inbound"), v.literal("outbound"));
export const senderType = v.union(v.literal("contact"), v.literal("agent"), v.literal("ai"));

export const workspaceFields = {
  supabaseId: v.string(),
  name: v.string(),
  slug: v.string(),
  createdAt: v.number(),
};

export const workspaceMemberFields = {
  supabaseId: v.string(),
  workspaceId: v.id("workspaces"),
  userId: v.string(), // the Supabase auth user uuid, matched against the JWT `sub`
  role: memberRole,
  createdAt: v.number(),
};

export const contactFields = {
  supabaseId: v.string(),
  workspaceId: v.id("workspaces"),
  phone: v.string(),
  name: v.optional(v.string()),
  email: v.optional(v.string()),
  tags: v.array(v.string()),
  leadStatus: v.optional(v.string()),
  leadScore: v.optional(v.number()),
  metadata: v.optional(v.any()),
  createdAt: v.number(),
  updatedAt: v.number(),
};

export const conversationFields = {
  supabaseId: v.string(),
  workspaceId: v.id("workspaces"),
  contactId: v.id("contacts"),
  status: conversationStatus,
  assignedTo: v.optional(v.string()),
  lastMessageAt: v.optional(v.number()),
  lastMessagePreview: v.optional(v.string()),
  unreadCount: v.number(),
  createdAt: v.number(),
};

export const messageFields = {
  supabaseId: v.string(),
  workspaceId: v.id("workspaces"),
  conversationId: v.id("conversations"),
  direction: messageDirection,
  senderType: senderType,
  content: v.string(),
  messageType: v.string(),
  createdAt: v.number(),
};

export const contactNoteFields = {
  supabaseId: v.string(),
  workspaceId: v.id("workspaces"),
  contactId: v.id("contacts"),
  authorId: v.optional(v.string()),
  content: v.string(),
  createdAt: v.number(),
};

export default defineSchema({
  workspaces: defineTable(workspaceFields).index("by_supabase_id", ["supabaseId"]).index("by_slug", ["slug"]),
  workspaceMembers: defineTable(workspaceMemberFields)
    .index("by_supabase_id", ["supabaseId"])
    .index("by_user_workspace", ["userId", "workspaceId"])
    .index("by_workspace", ["workspaceId"]),
  contacts: defineTable(contactFields)
    .index("by_supabase_id", ["supabaseId"])
    .index("by_workspace_phone", ["workspaceId", "phone"]),
  // A missing lastMessageAt sorts first ascending, so a descending scan of
  // this index gives "newest first, nulls last" like the Postgres index.
  conversations: defineTable(conversationFields)
    .index("by_supabase_id", ["supabaseId"])
    .index("by_contact_last_message", ["contactId", "lastMessageAt"])
    .index("by_workspace_last_message", ["workspaceId", "lastMessageAt"]),
  messages: defineTable(messageFields)
    .index("by_supabase_id", ["supabaseId"])
    .index("by_conversation_created", ["conversationId", "createdAt"]),
  contactNotes: defineTable(contactNoteFields)
    .index("by_supabase_id", ["supabaseId"])
    .index("by_contact_created", ["contactId", "createdAt"]),
});
