// Workspace authorisation for Supabase-authenticated users: the replacement
// for the Supabase RLS policies ("members read their workspace's rows").
import { ConvexError } from "convex/values";
import type { UserIdentity } from "convex/server";
import type { Doc } from "../_generated/dataModel";
import type { QueryCtx } from "../_generated/server";

/** The caller's identity; throws ConvexError {code: "Unauthenticated"} without one. */
export async function requireAuthentication(ctx: { auth: QueryCtx["auth"] }): Promise<UserIdentity> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null) {
    throw new ConvexError({ code: "Unauthenticated", message: "sign in with a Supabase access token" });
  }
  return identity;
}

/**
 * The caller's membership of the workspace (by the workspace's Supabase uuid).
 * The JWT `sub` is the Supabase user uuid, stored as workspaceMembers.userId.
 * Returns null when the workspace does not exist; throws ConvexError
 * {code: "Forbidden"} when the caller is not a member.
 */
export async function requireWorkspaceMembership(
  ctx: QueryCtx,
  workspaceSupabaseId: string,
): Promise<{ identity: UserIdentity; workspace: Doc<"workspaces">; membership: Doc<"workspaceMembers"> } | null> {
  const identity = await requireAuthentication(ctx);
  const workspace = await ctx.db
    .query("workspaces")
    .withIndex("by_supabase_id", (q) => q.eq("supabaseId", workspaceSupabaseId))
    .unique();
  if (workspace === null) return null;
  const membership = await ctx.db
    .query("workspaceMembers")
    .withIndex("by_user_workspace", (q) => q.eq("userId", identity.subject).eq("workspaceId", workspace._id))
    .unique();
  if (membership === null) {
    throw new ConvexError({ code: "Forbidden", message: "not a member of this workspace" });
  }
  return { identity, workspace, membership };
}
