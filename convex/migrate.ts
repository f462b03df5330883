// Internal mutations and queries the Supabase → Convex migration calls
// (`python -m seed migrate` / `seed verify`), see docs/formats.md.
//
// Rows arrive in Convex form with foreign keys given as the referenced row's
// Supabase uuid; each batch maps them to Convex ids through `by_supabase_id`
// (memoised per batch, since every lookup counts against Convex's 4,096
// index-range reads per transaction). Upserts are keyed by `supabaseId`, so a
// repeated batch changes nothing.
import { ConvexError, v, type Validator } from "convex/values";
import type { Doc, Id, TableNames } from "./_generated/dataModel";
import { internalMutation, internalQuery, type MutationCtx, type QueryCtx } from "./_generated/server";
import { canonicalJson, Digest } from "./lib/fingerprint";
import {
  contactFields,
  contactNoteFields,
  conversationFields,
  messageFields,
  workspaceFields,
  workspaceMemberFields,
} from "./schema";

type CrmTable = "workspaces" | "workspaceMembers" | "contacts" | "conversations" | "messages" | "contactNotes";

type TableSpec = {
  fields: Record<string, Validator<any, any, any>>;
  /** reference field → the table it points into */
  refs: Record<string, CrmTable>;
};

export const TABLES: Record<CrmTable, TableSpec> = {
  workspaces: { fields: workspaceFields, refs: {} },
  workspaceMembers: { fields: workspaceMemberFields, refs: { workspaceId: "workspaces" } },
  contacts: { fields: contactFields, refs: { workspaceId: "workspaces" } },
  conversations: { fields: conversationFields, refs: { workspaceId: "workspaces", contactId: "contacts" } },
  messages: { fields: messageFields, refs: { workspaceId: "workspaces", conversationId: "conversations" } },
  contactNotes: { fields: contactNoteFields, refs: { workspaceId: "workspaces", contactId: "contacts" } },
};

export const tableName = v.union(
  v.literal("workspaces"),
  v.literal("workspaceMembers"),
  v.literal("contacts"),
  v.literal("conversations"),
  v.literal("messages"),
  v.literal("contactNotes"),
);

/** The row validator of a batch: the table's fields, references as Supabase uuid strings. */
function incomingRow(table: CrmTable) {
  const { fields, refs } = TABLES[table];
  const row: Record<string, Validator<any, any, any>> = { ...fields };
  for (const field of Object.keys(refs)) row[field] = v.string();
  return v.object(row);
}

export type UpsertResult = { inserted: number; updated: number; unchanged: number };

/** Supabase uuid → Convex id, per referenced table, for the life of one batch. */
class ReferenceResolver {
  private cache = new Map<string, Id<TableNames>>();
  constructor(private ctx: QueryCtx) {}

  async resolve(table: CrmTable, supabaseId: string): Promise<Id<TableNames>> {
    const key = `${table}\u0000${supabaseId}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const row = await this.ctx.db
      .query(table)
      .withIndex("by_supabase_id", (q) => q.eq("supabaseId", supabaseId))
      .unique();
    if (row === null) throw new ConvexError({ code: "MissingReference", table, supabaseId });
    this.cache.set(key, row._id);
    return row._id;
  }
}

/** The document without its system fields, for comparing with an incoming row. */
function userFields(doc: Record<string, unknown>): Record<string, unknown> {
  const { _id, _creationTime, ...rest } = doc;
  return rest;
}

async function upsertBatch(ctx: MutationCtx, table: CrmTable, rows: Record<string, unknown>[]): Promise<UpsertResult> {
  const { refs } = TABLES[table];
  const resolver = new ReferenceResolver(ctx);
  const result: UpsertResult = { inserted: 0, updated: 0, unchanged: 0 };
  for (const row of rows) {
    const doc: Record<string, unknown> = { ...row };
    for (const [field, target] of Object.entries(refs)) {
      doc[field] = await resolver.resolve(target, row[field] as string);
    }
    const existing = await ctx.db
      .query(table)
      .withIndex("by_supabase_id", (q) => q.eq("supabaseId", row.supabaseId as string))
      .unique();
    if (existing === null) {
      await ctx.db.insert(table, doc as any);
      result.inserted += 1;
    } else if (canonicalJson(userFields(existing)) === canonicalJson(doc)) {
      result.unchanged += 1;
    } else {
      await ctx.db.replace(existing._id, doc as any);
      result.updated += 1;
    }
  }
  return result;
}

function upsertMutation(table: CrmTable) {
  return internalMutation({
    args: { rows: v.array(incomingRow(table)) },
    handler: async (ctx, { rows }): Promise<UpsertResult> => await upsertBatch(ctx, table, rows),
  });
}

export const upsertWorkspaces = upsertMutation("workspaces");
export const upsertWorkspaceMembers = upsertMutation("workspaceMembers");
export const upsertContacts = upsertMutation("contacts");
export const upsertConversations = upsertMutation("conversations");
export const upsertMessages = upsertMutation("messages");
export const upsertContactNotes = upsertMutation("contactNotes");

const DEFAULT_CLEAR_BATCH = 1000;
const MAX_CLEAR_BATCH = 4000;

/** Deletes up to batchSize rows of a table; call until hasMore is false. */
export const clearTable = internalMutation({
  args: { table: tableName, batchSize: v.optional(v.number()) },
  handler: async (ctx, { table, batchSize }): Promise<{ deleted: number; hasMore: boolean }> => {
    const size = batchSize ?? DEFAULT_CLEAR_BATCH;
    if (!Number.isInteger(size) || size < 1 || size > MAX_CLEAR_BATCH) {
      throw new ConvexError({ code: "BadRequest", message: `batchSize must be an integer from 1 to ${MAX_CLEAR_BATCH}` });
    }
    const rows = await ctx.db.query(table).take(size + 1);
    const doomed = rows.slice(0, size);
    for (const row of doomed) await ctx.db.delete(row._id);
    return { deleted: doomed.length, hasMore: rows.length > size };
  },
});

/** The canonical form of a row: schema fields only, references as Supabase uuids. */
async function canonicalRow(
  ctx: QueryCtx,
  table: CrmTable,
  doc: Doc<CrmTable>,
  supabaseIdOf: Map<string, string | null>,
): Promise<Record<string, unknown>> {
  const { fields, refs } = TABLES[table];
  const row: Record<string, unknown> = {};
  for (const field of Object.keys(fields)) {
    const value = (doc as Record<string, unknown>)[field];
    if (value === undefined || value === null) continue;
    if (field in refs) {
      const id = value as Id<CrmTable>;
      if (!supabaseIdOf.has(id)) {
        const target = await ctx.db.get(id);
        supabaseIdOf.set(id, target === null ? null : (target as { supabaseId: string }).supabaseId);
      }
      const supabaseId = supabaseIdOf.get(id);
      if (supabaseId !== null) row[field] = supabaseId;
    } else {
      row[field] = value;
    }
  }
  return row;
}

/**
 * One page of a table, fingerprinted: each document as `view` shows it (null
 * leaves it out). The caller sums pages (mod 2^64) until the page isDone.
 */
async function digestPage(
  ctx: QueryCtx,
  table: CrmTable,
  cursor: string | null,
  numItems: number,
  view: (doc: Doc<CrmTable>) => Promise<Doc<CrmTable> | null>,
) {
  checkPageSize(numItems);
  const page = await ctx.db.query(table).paginate({ cursor, numItems });
  const digest = new Digest();
  const supabaseIdOf = new Map<string, string | null>();
  for (const doc of page.page) {
    const shown = await view(doc);
    if (shown !== null) digest.addRow(await canonicalRow(ctx, table, shown, supabaseIdOf));
  }
  return { count: digest.count, digest: digest.hex, cursor: page.continueCursor, isDone: page.isDone };
}

/** Count and fingerprint of one page of a table; the caller sums pages (mod 2^64) until isDone. */
export const tableDigest = internalQuery({
  args: { table: tableName, cursor: v.union(v.string(), v.null()), numItems: v.number() },
  handler: async (ctx, { table, cursor, numItems }) => await digestPage(ctx, table, cursor, numItems, async (doc) => doc),
});

// ---------------------------------------------------------------------------
// The load tests' writes (messages with messageType "loadtest", and the
// conversation fields they touch) seen as if they had never happened, for
// parity checks after a run with writes. docs/formats.md, "Load-test rows".

export const LOADTEST_MESSAGE_TYPE = "loadtest";
const LOADTEST_PREVIEW_PREFIX = "loadtest ";
// The seed's rule for a conversation's preview: the first 100 characters of its newest message.
const RESTORED_PREVIEW_LENGTH = 100;

/** Whether the load tests' write path was the last to set this conversation's preview. */
export function touchedByLoadtest(conversation: { lastMessagePreview?: string }): boolean {
  return conversation.lastMessagePreview?.startsWith(LOADTEST_PREVIEW_PREFIX) ?? false;
}

/**
 * lastMessageAt / lastMessagePreview from the conversation's newest message that
 * is not a load-test one (both absent when there is none). Characters, not
 * UTF-16 units, as the seed counts them.
 */
export async function fieldsWithoutLoadtest(
  ctx: QueryCtx,
  conversationId: Id<"conversations">,
): Promise<{ lastMessageAt?: number; lastMessagePreview?: string }> {
  const newest = ctx.db
    .query("messages")
    .withIndex("by_conversation_created", (q) => q.eq("conversationId", conversationId))
    .order("desc");
  for await (const message of newest) {
    if (message.messageType !== LOADTEST_MESSAGE_TYPE) {
      return {
        lastMessageAt: message.createdAt,
        lastMessagePreview: Array.from(message.content).slice(0, RESTORED_PREVIEW_LENGTH).join(""),
      };
    }
  }
  return {};
}

function checkPageSize(numItems: number): void {
  if (!Number.isInteger(numItems) || numItems < 1 || numItems > 8192) {
    throw new ConvexError({ code: "BadRequest", message: "numItems must be an integer from 1 to 8192" });
  }
}

/**
 * Count and fingerprint of one page of a table as if the load tests had not
 * written: loadtest messages are skipped, and a conversation they touched is
 * fingerprinted with the fields of its newest other message. `touched` lists
 * those conversations (Supabase uuids) so a caller can leave their contacts
 * out of lookup comparisons.
 */
export const tableDigestWithoutLoadtest = internalQuery({
  args: { table: tableName, cursor: v.union(v.string(), v.null()), numItems: v.number() },
  handler: async (ctx, { table, cursor, numItems }) => {
    const touched: string[] = [];
    let skipped = 0;
    const page = await digestPage(ctx, table, cursor, numItems, async (doc) => {
      if (table === "messages" && (doc as Doc<"messages">).messageType === LOADTEST_MESSAGE_TYPE) {
        skipped += 1;
        return null;
      }
      if (table === "conversations" && touchedByLoadtest(doc as Doc<"conversations">)) {
        const { lastMessageAt: _at, lastMessagePreview: _preview, ...rest } = doc as Doc<"conversations">;
        touched.push((doc as Doc<"conversations">).supabaseId);
        return { ...rest, ...(await fieldsWithoutLoadtest(ctx, doc._id as Id<"conversations">)) } as Doc<CrmTable>;
      }
      return doc;
    });
    return { ...page, skipped, touched };
  },
});

/**
 * Rows of one page of a table that belong to the given workspaces (Supabase
 * uuids), loadtest messages left out. Counting reads every document of the
 * page: the run's data-parity check calls this until isDone.
 */
export const countRows = internalQuery({
  args: {
    table: tableName,
    workspaceIds: v.array(v.string()),
    cursor: v.union(v.string(), v.null()),
    numItems: v.number(),
  },
  handler: async (ctx, { table, workspaceIds, cursor, numItems }) => {
    checkPageSize(numItems);
    const wanted = new Set<string>();
    for (const supabaseId of workspaceIds) {
      const workspace = await ctx.db
        .query("workspaces")
        .withIndex("by_supabase_id", (q) => q.eq("supabaseId", supabaseId))
        .unique();
      if (workspace !== null) wanted.add(workspace._id);
    }
    if (table === "workspaces") return { count: wanted.size, cursor: "", isDone: true };
    const page = await ctx.db.query(table).paginate({ cursor, numItems });
    let count = 0;
    for (const doc of page.page) {
      const row = doc as Doc<Exclude<CrmTable, "workspaces">>;
      if (!wanted.has(row.workspaceId)) continue;
      if (table === "messages" && (row as Doc<"messages">).messageType === LOADTEST_MESSAGE_TYPE) continue;
      count += 1;
    }
    return { count, cursor: page.continueCursor, isDone: page.isDone };
  },
});
