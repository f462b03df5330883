// Removing what the load tests' write path left behind (`python -m seed cleanup`):
// messages marked messageType "loadtest", and the lastMessageAt /
// lastMessagePreview they set on their conversations, restored from each
// conversation's newest remaining message (the seed's rule). docs/formats.md,
// "Load-test rows".
import { ConvexError, v } from "convex/values";
import type { Id } from "./_generated/dataModel";
import { internalMutation } from "./_generated/server";
import { fieldsWithoutLoadtest, LOADTEST_MESSAGE_TYPE, touchedByLoadtest } from "./migrate";

const MAX_PAGE = 4000;

function pageSize(numItems: number | undefined): number {
  const size = numItems ?? 1000;
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE) {
    throw new ConvexError({ code: "BadRequest", message: `numItems must be an integer from 1 to ${MAX_PAGE}` });
  }
  return size;
}

/**
 * One page of the messages table: deletes its loadtest messages and restores
 * every conversation they belonged to, in one transaction (a page is either
 * cleaned whole or not at all). Call with the returned cursor until isDone.
 */
export const cleanupPage = internalMutation({
  args: { cursor: v.union(v.string(), v.null()), numItems: v.optional(v.number()) },
  handler: async (ctx, { cursor, numItems }) => {
    const size = pageSize(numItems);
    const page = await ctx.db.query("messages").paginate({ cursor, numItems: size });
    const conversations = new Set<Id<"conversations">>();
    let deleted = 0;
    for (const message of page.page) {
      if (message.messageType !== LOADTEST_MESSAGE_TYPE) continue;
      await ctx.db.delete(message._id);
      conversations.add(message.conversationId);
      deleted += 1;
    }
    let restored = 0;
    for (const id of conversations) {
      const conversation = await ctx.db.get(id);
      if (conversation === null || !touchedByLoadtest(conversation)) continue;
      const { lastMessageAt: _at, lastMessagePreview: _preview, _id, _creationTime, ...rest } = conversation;
      await ctx.db.replace(id, { ...rest, ...(await fieldsWithoutLoadtest(ctx, id)) });
      restored += 1;
    }
    return { deleted, restored, cursor: page.continueCursor, isDone: page.isDone };
  },
});

/**
 * Conversations whose preview still shows a load-test write though their
 * loadtest messages are gone (e.g. removed by hand): restored one page at a time.
 */
export const restoreConversationsPage = internalMutation({
  args: { cursor: v.union(v.string(), v.null()), numItems: v.optional(v.number()) },
  handler: async (ctx, { cursor, numItems }) => {
    const size = pageSize(numItems);
    const page = await ctx.db.query("conversations").paginate({ cursor, numItems: size });
    let restored = 0;
    for (const conversation of page.page) {
      if (!touchedByLoadtest(conversation)) continue;
      const { lastMessageAt: _at, lastMessagePreview: _preview, _id, _creationTime, ...rest } = conversation;
      await ctx.db.replace(_id, { ...rest, ...(await fieldsWithoutLoadtest(ctx, _id)) });
      restored += 1;
    }
    return { restored, cursor: page.continueCursor, isDone: page.isDone };
  },
});
