// The agent's inbox: a workspace's conversations, newest activity first.
// Written to be subscribed to (ConvexClient.onUpdate / useQuery): it reads
// one index range plus one contact per row, so a new message elsewhere in
// the deployment does not re-run it, and one in this workspace does.
import { ConvexError, v } from "convex/values";
import { query } from "./_generated/server";
import { requireWorkspaceMembership } from "./lib/auth";

export const DEFAULT_INBOX_LIMIT = 20;
export const MAX_INBOX_LIMIT = 100;

export type InboxRow = {
  id: string;
  status: string;
  assignedTo: string | null;
  lastMessageAt: number | null;
  lastMessagePreview: string | null;
  unreadCount: number;
  /** null only if the contact was deleted without its conversations. */
  contact: { id: string; name: string | null; phone: string } | null;
};

function checkInboxLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_INBOX_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_INBOX_LIMIT) {
    throw new ConvexError({ code: "BadRequest", message: `limit must be an integer from 1 to ${MAX_INBOX_LIMIT}` });
  }
  return limit;
}

/**
 * The workspace's newest conversations by lastMessageAt (nulls last), each
 * with its last message preview, unread count and contact; null when the
 * workspace does not exist. Members only.
 */
export const inbox = query({
  args: {
    workspaceId: v.string(), // the Supabase workspace uuid
    limit: v.optional(v.number()),
  },
  handler: async (ctx, { workspaceId, limit }): Promise<InboxRow[] | null> => {
    const take = checkInboxLimit(limit);
    const access = await requireWorkspaceMembership(ctx, workspaceId);
    if (access === null) return null;
    const conversations = await ctx.db
      .query("conversations")
      .withIndex("by_workspace_last_message", (q) => q.eq("workspaceId", access.workspace._id))
      .order("desc")
      .take(take);
    return await Promise.all(
      conversations.map(async (conversation): Promise<InboxRow> => {
        const contact = await ctx.db.get(conversation.contactId);
        return {
          id: conversation.supabaseId,
          status: conversation.status,
          assignedTo: conversation.assignedTo ?? null,
          lastMessageAt: conversation.lastMessageAt ?? null,
          lastMessagePreview: conversation.lastMessagePreview ?? null,
          unreadCount: conversation.unreadCount,
          contact: contact === null ? null : { id: contact.supabaseId, name: contact.name ?? null, phone: contact.phone },
        };
      }),
    );
  },
});
