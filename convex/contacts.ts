// Contact lookups by phone. The public queries are for Supabase-authenticated
// workspace members; the internal one serves the API-key HTTP action.
import { v } from "convex/values";
import { internalQuery, query } from "./_generated/server";
import { requireWorkspaceMembership } from "./lib/auth";
import { checkMessageLimit, contactContext, contactView, findContact, findWorkspace } from "./lib/lookup";

const lookupArgs = {
  workspaceId: v.string(), // the Supabase workspace uuid
  phone: v.string(), // E.164 digits without "+"
  messageLimit: v.optional(v.number()),
};

/** The canonical lookup for a workspace member, or null when not found. */
export const getContextByPhone = query({
  args: lookupArgs,
  handler: async (ctx, { workspaceId, phone, messageLimit }) => {
    const limit = checkMessageLimit(messageLimit);
    const access = await requireWorkspaceMembership(ctx, workspaceId);
    if (access === null) return null;
    return await contactContext(ctx, access.workspace, phone, limit);
  },
});

/** The contact alone (the `contact` part of the lookup), or null. */
export const getByPhone = query({
  args: { workspaceId: v.string(), phone: v.string() },
  handler: async (ctx, { workspaceId, phone }) => {
    const access = await requireWorkspaceMembership(ctx, workspaceId);
    if (access === null) return null;
    const contact = await findContact(ctx, access.workspace, phone);
    return contact === null ? null : contactView(contact, access.workspace);
  },
});

/** The same lookup without a user: only callable by the HTTP action (API key) or an admin. */
export const getContextByPhoneInternal = internalQuery({
  args: lookupArgs,
  handler: async (ctx, { workspaceId, phone, messageLimit }) => {
    const limit = checkMessageLimit(messageLimit);
    const workspace = await findWorkspace(ctx, workspaceId);
    if (workspace === null) return null;
    return await contactContext(ctx, workspace, phone, limit);
  },
});
