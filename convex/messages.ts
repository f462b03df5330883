// Appending a message to a contact's newest conversation, and keeping that
// conversation's lastMessageAt / lastMessagePreview in step with it.
import { ConvexError, v } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import { internalMutation, mutation, type MutationCtx } from "./_generated/server";
import { requireWorkspaceMembership } from "./lib/auth";
import { findContact, findWorkspace } from "./lib/lookup";
import { messageDirection, senderType } from "./schema";

const PREVIEW_LENGTH = 120;
export const MAX_CONTENT_LENGTH = 16_384;

export type AppendResult = { id: string; conversationId: string };

function checkContent(content: string): void {
  if (content.length === 0 || content.length > MAX_CONTENT_LENGTH) {
    throw new ConvexError({ code: "BadRequest", message: `content must be 1 to ${MAX_CONTENT_LENGTH} characters` });
  }
}

async function appendToNewestConversation(
  ctx: MutationCtx,
  workspace: Doc<"workspaces">,
  phone: string,
  message: { direction: "inbound" | "outbound"; senderType: "contact" | "agent" | "ai"; content: string; messageType: string },
): Promise<AppendResult> {
  const contact = await findContact(ctx, workspace, phone);
  if (contact === null) throw new ConvexError({ code: "NotFound", message: "contact not found" });
  const conversation = await ctx.db
    .query("conversations")
    .withIndex("by_contact_last_message", (q) => q.eq("contactId", contact._id))
    .order("desc")
    .first();
  if (conversation === null) throw new ConvexError({ code: "NotFound", message: "conversation not found" });

  const createdAt = Date.now();
  // The row gets a Supabase-style uuid so it reads like every migrated row.
  const supabaseId = crypto.randomUUID();
  await ctx.db.insert("messages", {
    supabaseId,
    workspaceId: workspace._id,
    conversationId: conversation._id,
    ...message,
    createdAt,
  });
  await ctx.db.patch(conversation._id, {
    lastMessageAt: Math.max(createdAt, conversation.lastMessageAt ?? 0),
    lastMessagePreview: message.content.slice(0, PREVIEW_LENGTH),
  });
  return { id: supabaseId, conversationId: conversation.supabaseId };
}

/**
 * The load tests' write path (docs/formats.md): an outbound AI message marked
 * messageType "loadtest", so every row it writes can be found and removed.
 * Throws ConvexError {code: "NotFound"} for an unknown workspace, contact or
 * a contact without conversations.
 */
export const appendOutbound = internalMutation({
  args: { workspaceId: v.string(), phone: v.string(), content: v.string() },
  handler: async (ctx, { workspaceId, phone, content }): Promise<AppendResult> => {
    checkContent(content);
    const workspace = await findWorkspace(ctx, workspaceId);
    if (workspace === null) throw new ConvexError({ code: "NotFound", message: "contact not found" });
    return await appendToNewestConversation(ctx, workspace, phone, {
      direction: "outbound",
      senderType: "ai",
      content,
      messageType: "loadtest",
    });
  },
});

/** A workspace member appends a message to the contact's newest conversation. */
export const append = mutation({
  args: {
    workspaceId: v.string(),
    phone: v.string(),
    content: v.string(),
    direction: v.optional(messageDirection),
    senderType: v.optional(senderType),
    messageType: v.optional(v.string()),
  },
  handler: async (ctx, args): Promise<AppendResult> => {
    checkContent(args.content);
    const access = await requireWorkspaceMembership(ctx, args.workspaceId);
    if (access === null) throw new ConvexError({ code: "NotFound", message: "contact not found" });
    return await appendToNewestConversation(ctx, access.workspace, args.phone, {
      direction: args.direction ?? "outbound",
      senderType: args.senderType ?? "agent",
      content: args.content,
      messageType: args.messageType ?? "text",
    });
  },
});
