// The behaviour of every Convex function, written once and run against both
// backends (mock.test.ts: convex-test; runtime.test.ts: the sandbox runtime
// over HTTP), so the runtime is checked against the official mock.
import { describe, expect, test } from "vitest";
import { api, internal } from "../_generated/api";
import type { Backend } from "./backend.helper";
import {
  C1, C2, contacts, conversations, loadFixtures, members, messages, notes, PHONE, PHONE_BARE, T0, USER_A, USER_B,
  uuid, V1, V2, V3, V4, V5, W1, W2, workspaces,
} from "./fixtures.data";

async function thrown(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

async function expectConvexError(promise: Promise<unknown>, data: Record<string, unknown>) {
  const error = await thrown(promise);
  expect(error.data, String(error)).toMatchObject(data);
}

// An independent (BigInt, byte-at-a-time) implementation of the table
// fingerprint of docs/formats.md, to check migrate:tableDigest against.
function referenceDigest(rows: object[]): string {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sortKeys)
      : v !== null && typeof v === "object"
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as any)[k])]))
        : v;
  let total = 0n;
  for (const row of rows) {
    let h = 0xcbf29ce484222325n;
    for (const byte of new TextEncoder().encode(JSON.stringify(sortKeys(row)))) {
      h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
    }
    total = (total + h) & 0xffffffffffffffffn;
  }
  return total.toString(16).padStart(16, "0");
}

const expectedContext = {
  contact: {
    id: C1, workspaceId: W1, phone: PHONE, name: "Budi Santoso", email: "budi@example.com", tags: ["vip", "wa"],
    leadStatus: "hot", leadScore: 42, metadata: { source: "wa", nested: { b: 1, a: "ü" } }, createdAt: T0, updatedAt: T0 + 5,
  },
  workspace: { id: W1, name: "Eagle Overseas" },
  conversations: [
    {
      id: V2, status: "pending", assignedTo: USER_A, lastMessageAt: T0 + 3000, lastMessagePreview: `preview ${T0 + 3000}`,
      unreadCount: 2, createdAt: T0,
      messages: Array.from({ length: 20 }, (_, k) => {
        const i = 24 - k;
        return {
          id: uuid(0x1000 + i), direction: i % 2 ? "outbound" : "inbound", senderType: i % 2 ? "agent" : "contact",
          content: `message ${i}`, messageType: "text", createdAt: T0 + 10_000 + i * 1000,
        };
      }),
    },
    {
      id: V3, status: "open", assignedTo: null, lastMessageAt: T0 + 2000, lastMessagePreview: `preview ${T0 + 2000}`,
      unreadCount: 0, createdAt: T0,
      messages: [1, 0].map((i) => ({
        id: uuid(0x2000 + i), direction: "inbound", senderType: "contact", content: `v3 ${i}`, messageType: "text",
        createdAt: T0 + 500 + i,
      })),
    },
    {
      id: V1, status: "open", assignedTo: null, lastMessageAt: T0 + 1000, lastMessagePreview: `preview ${T0 + 1000}`,
      unreadCount: 0, createdAt: T0, messages: [],
    },
  ],
  notes: Array.from({ length: 10 }, (_, k) => {
    const i = 11 - k;
    return { id: uuid(0x3000 + i), authorId: i % 2 === 0 ? USER_A : null, content: `note ${i}`, createdAt: T0 + 100 + i };
  }),
};

const TABLE_ROWS = {
  workspaces, workspaceMembers: members, contacts, conversations, messages, contactNotes: notes,
} as const;

export function functionSuite(makeBackend: () => Promise<Backend>) {
  async function loaded(): Promise<Backend> {
    const backend = await makeBackend();
    await loadFixtures(backend);
    return backend;
  }

  describe("contacts:getContextByPhone", () => {
    test("a member gets the canonical lookup: newest 3 conversations, 20 messages, 10 notes", async () => {
      const b = await loaded();
      const context = await b.asUser(USER_A).query(api.contacts.getContextByPhone, { workspaceId: W1, phone: PHONE });
      expect(context).toEqual(expectedContext);
    });

    test("nullable columns come back as null", async () => {
      const b = await loaded();
      const context = await b.asUser(USER_A).query(api.contacts.getContextByPhone, { workspaceId: W1, phone: PHONE_BARE });
      expect(context).toEqual({
        contact: {
          id: C2, workspaceId: W1, phone: PHONE_BARE, name: null, email: null, tags: [], leadStatus: null,
          leadScore: null, metadata: null, createdAt: T0, updatedAt: T0,
        },
        workspace: { id: W1, name: "Eagle Overseas" },
        conversations: [],
        notes: [],
      });
    });

    test("messageLimit picks how many messages per conversation, within 1..100", async () => {
      const b = await loaded();
      const user = b.asUser(USER_A);
      const context = await user.query(api.contacts.getContextByPhone, { workspaceId: W1, phone: PHONE, messageLimit: 3 });
      expect(context!.conversations.map((c) => c.messages.length)).toEqual([3, 2, 0]);
      for (const messageLimit of [0, 101, 2.5]) {
        await expectConvexError(
          user.query(api.contacts.getContextByPhone, { workspaceId: W1, phone: PHONE, messageLimit }),
          { code: "BadRequest" },
        );
      }
    });

    test("unknown phone or workspace is null", async () => {
      const b = await loaded();
      const user = b.asUser(USER_A);
      expect(await user.query(api.contacts.getContextByPhone, { workspaceId: W1, phone: "6280000000000" })).toBeNull();
      expect(await user.query(api.contacts.getContextByPhone, { workspaceId: uuid(0xdead), phone: PHONE })).toBeNull();
    });

    test("needs an identity", async () => {
      const b = await loaded();
      await expectConvexError(b.anonymous.query(api.contacts.getContextByPhone, { workspaceId: W1, phone: PHONE }), {
        code: "Unauthenticated",
      });
    });

    test("a non-member is refused, and each member sees only their workspace's contact", async () => {
      const b = await loaded();
      await expectConvexError(b.asUser(USER_B).query(api.contacts.getContextByPhone, { workspaceId: W1, phone: PHONE }), {
        code: "Forbidden",
      });
      const other = await b.asUser(USER_B).query(api.contacts.getContextByPhone, { workspaceId: W2, phone: PHONE });
      expect(other!.contact.name).toBe("Other Budi");
      expect(other!.workspace).toEqual({ id: W2, name: "Falcon Trading" });
    });

    test("arguments are validated", async () => {
      const b = await loaded();
      const error = await thrown(b.asUser(USER_A).query(api.contacts.getContextByPhone, { workspaceId: W1, phone: 6281234567890 } as any));
      expect(String(error.message)).toMatch(/Validator|validator/);
    });
  });

  describe("conversations:inbox", () => {
    const contactC1 = { id: C1, name: "Budi Santoso", phone: PHONE };
    const row = (id: string, lastMessageAt: number | null, extra: object = {}) => ({
      id, status: "open", assignedTo: null, lastMessageAt, lastMessagePreview: lastMessageAt === null ? null : `preview ${lastMessageAt}`,
      unreadCount: 0, contact: contactC1, ...extra,
    });
    const expectedInbox = [
      row(V2, T0 + 3000, { status: "pending", assignedTo: USER_A, unreadCount: 2 }),
      row(V3, T0 + 2000),
      row(V1, T0 + 1000),
      row(V5, T0 + 500),
      row(V4, null),
    ];

    test("a member gets the workspace's conversations, newest activity first, nulls last", async () => {
      const b = await loaded();
      expect(await b.asUser(USER_A).query(api.conversations.inbox, { workspaceId: W1 })).toEqual(expectedInbox);
      expect(await b.asUser(USER_B).query(api.conversations.inbox, { workspaceId: W2 })).toEqual([]);
    });

    test("limit picks how many, within 1..100", async () => {
      const b = await loaded();
      const user = b.asUser(USER_A);
      expect(await user.query(api.conversations.inbox, { workspaceId: W1, limit: 2 })).toEqual(expectedInbox.slice(0, 2));
      for (const limit of [0, 101, 1.5]) {
        await expectConvexError(user.query(api.conversations.inbox, { workspaceId: W1, limit }), { code: "BadRequest" });
      }
      const error = await thrown(user.query(api.conversations.inbox, { workspaceId: W1, limit: "2" } as any));
      expect(String(error.message)).toMatch(/Validator|validator/);
    });

    test("members only; an unknown workspace is null", async () => {
      const b = await loaded();
      await expectConvexError(b.anonymous.query(api.conversations.inbox, { workspaceId: W1 }), { code: "Unauthenticated" });
      await expectConvexError(b.asUser(USER_B).query(api.conversations.inbox, { workspaceId: W1 }), { code: "Forbidden" });
      expect(await b.asUser(USER_A).query(api.conversations.inbox, { workspaceId: uuid(0xdead) })).toBeNull();
    });

    test("an appended message moves its conversation's preview", async () => {
      const b = await loaded();
      const user = b.asUser(USER_A);
      await user.mutation(api.messages.append, { workspaceId: W1, phone: PHONE, content: "new message" });
      const inbox = await user.query(api.conversations.inbox, { workspaceId: W1, limit: 3 });
      expect(inbox![0]).toMatchObject({ id: V2, lastMessagePreview: "new message" });
      expect(inbox![0].lastMessageAt).toBeGreaterThan(T0 + 3000);
      expect(inbox!.map((r) => r.id)).toEqual([V2, V3, V1]);
    });
  });

  describe("contacts:getByPhone", () => {
    test("members get the contact, others are refused", async () => {
      const b = await loaded();
      expect(await b.asUser(USER_A).query(api.contacts.getByPhone, { workspaceId: W1, phone: PHONE })).toEqual(expectedContext.contact);
      expect(await b.asUser(USER_A).query(api.contacts.getByPhone, { workspaceId: W1, phone: "6280000000000" })).toBeNull();
      await expectConvexError(b.asUser(USER_B).query(api.contacts.getByPhone, { workspaceId: W1, phone: PHONE }), { code: "Forbidden" });
      await expectConvexError(b.anonymous.query(api.contacts.getByPhone, { workspaceId: W1, phone: PHONE }), { code: "Unauthenticated" });
    });
  });

  describe("contacts:getContextByPhoneInternal", () => {
    test("returns the same lookup without a user", async () => {
      const b = await loaded();
      expect(await b.admin.query(internal.contacts.getContextByPhoneInternal, { workspaceId: W1, phone: PHONE })).toEqual(expectedContext);
      expect(await b.admin.query(internal.contacts.getContextByPhoneInternal, { workspaceId: W1, phone: "6280000000000" })).toBeNull();
    });
  });

  describe("HTTP actions", () => {
    const key = (b: Backend) => ({ "x-api-key": b.crmApiKey });
    const lookupPath = `/contacts/by-phone?workspaceId=${W1}&phone=${PHONE}`;

    test("GET /contacts/by-phone returns the canonical lookup", async () => {
      const b = await loaded();
      const response = await b.fetch(lookupPath, { headers: key(b) });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/application\/json/);
      expect(await response.json()).toEqual(expectedContext);
    });

    test("POST /contacts/by-phone takes a JSON body", async () => {
      const b = await loaded();
      const response = await b.fetch("/contacts/by-phone", {
        method: "POST",
        headers: { ...key(b), "content-type": "application/json" },
        body: JSON.stringify({ workspaceId: W1, phone: PHONE }),
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual(expectedContext);
    });

    test("a missing or wrong key is 401", async () => {
      const b = await loaded();
      for (const headers of <Record<string, string>[]>[{}, { "x-api-key": "wrong" }, { "x-api-key": `${b.crmApiKey}x` }, { "x-api-key": "" }]) {
        const response = await b.fetch(lookupPath, { headers });
        expect(response.status).toBe(401);
        expect(await response.json()).toEqual({ error: "missing or invalid x-api-key" });
      }
    });

    test("bad input is 400, an unknown contact 404, a wrong method 405", async () => {
      const b = await loaded();
      const bad = await b.fetch(`/contacts/by-phone?workspaceId=${W1}&phone=%2B62812`, { headers: key(b) });
      expect(bad.status).toBe(400);
      expect((await bad.json()).error).toMatch(/phone/);
      const badJson = await b.fetch("/contacts/by-phone", { method: "POST", headers: key(b), body: "{not json" });
      expect(badJson.status).toBe(400);
      const missing = await b.fetch(`/contacts/by-phone?workspaceId=${W1}&phone=6280000000000`, { headers: key(b) });
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: "contact not found" });
      const put = await b.fetch(lookupPath, { method: "PUT", headers: key(b) });
      expect(put.status).toBe(405);
      expect(await put.json()).toEqual({ error: "method not allowed" });
    });

    test("POST /messages/outbound appends a loadtest message to the newest conversation", async () => {
      const b = await loaded();
      const response = await b.fetch("/messages/outbound", {
        method: "POST",
        headers: { ...key(b), "content-type": "application/json" },
        body: JSON.stringify({ workspaceId: W1, phone: PHONE, content: "hello from the load test" }),
      });
      expect(response.status).toBe(201);
      const created = await response.json();
      expect(created.conversationId).toBe(V2);
      expect(created.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

      const context = await b.admin.query(internal.contacts.getContextByPhoneInternal, { workspaceId: W1, phone: PHONE });
      const newest = context!.conversations[0];
      expect(newest.id).toBe(V2);
      expect(newest.lastMessagePreview).toBe("hello from the load test");
      expect(newest.messages[0]).toMatchObject({
        id: created.id, direction: "outbound", senderType: "ai", content: "hello from the load test", messageType: "loadtest",
      });

      const unknown = await b.fetch("/messages/outbound", {
        method: "POST",
        headers: { ...key(b), "content-type": "application/json" },
        body: JSON.stringify({ workspaceId: W1, phone: "6280000000000", content: "x" }),
      });
      expect(unknown.status).toBe(404);
      const noConversation = await b.fetch("/messages/outbound", {
        method: "POST",
        headers: { ...key(b), "content-type": "application/json" },
        body: JSON.stringify({ workspaceId: W1, phone: PHONE_BARE, content: "x" }),
      });
      expect(noConversation.status).toBe(404);
      const empty = await b.fetch("/messages/outbound", {
        method: "POST",
        headers: { ...key(b), "content-type": "application/json" },
        body: JSON.stringify({ workspaceId: W1, phone: PHONE, content: "" }),
      });
      expect(empty.status).toBe(400);
    });
  });

  describe("messages:append", () => {
    test("a member appends; a non-member cannot", async () => {
      const b = await loaded();
      const result = await b.asUser(USER_A).mutation(api.messages.append, { workspaceId: W1, phone: PHONE, content: "hi" });
      expect(result.conversationId).toBe(V2);
      const context = await b.asUser(USER_A).query(api.contacts.getContextByPhone, { workspaceId: W1, phone: PHONE, messageLimit: 1 });
      expect(context!.conversations[0].messages[0]).toMatchObject({ id: result.id, senderType: "agent", messageType: "text", content: "hi" });
      await expectConvexError(b.asUser(USER_B).mutation(api.messages.append, { workspaceId: W1, phone: PHONE, content: "hi" }), {
        code: "Forbidden",
      });
    });
  });

  describe("migrate", () => {
    test("upserts count inserted, and a repeated batch changes nothing", async () => {
      const b = await makeBackend();
      expect(await b.admin.mutation(internal.migrate.upsertWorkspaces, { rows: workspaces })).toEqual({ inserted: 2, updated: 0, unchanged: 0 });
      expect(await b.admin.mutation(internal.migrate.upsertWorkspaces, { rows: workspaces })).toEqual({ inserted: 0, updated: 0, unchanged: 2 });
      await b.admin.mutation(internal.migrate.upsertWorkspaceMembers, { rows: members });
      await b.admin.mutation(internal.migrate.upsertContacts, { rows: contacts });
      expect(await b.admin.mutation(internal.migrate.upsertContacts, { rows: contacts })).toEqual({ inserted: 0, updated: 0, unchanged: 3 });
    });

    test("a changed row is updated in place, including a column that became null", async () => {
      const b = await loaded();
      const { name: _dropped, ...withoutName } = contacts[0];
      const changed = [{ ...withoutName, leadScore: 7 }, contacts[1]];
      expect(await b.admin.mutation(internal.migrate.upsertContacts, { rows: changed })).toEqual({ inserted: 0, updated: 1, unchanged: 1 });
      const contact = await b.admin.query(internal.contacts.getContextByPhoneInternal, { workspaceId: W1, phone: PHONE });
      expect(contact!.contact).toMatchObject({ id: C1, name: null, leadScore: 7 });
      expect(contact!.conversations).toHaveLength(3);
    });

    test("a missing reference fails the whole batch with MissingReference and writes nothing", async () => {
      const b = await loaded();
      const before = await b.admin.query(internal.migrate.tableDigest, { table: "contacts", cursor: null, numItems: 100 });
      const batch = [
        { supabaseId: uuid(0x900), workspaceId: W1, phone: "6281111111111", tags: [], createdAt: T0, updatedAt: T0 },
        { supabaseId: uuid(0x901), workspaceId: uuid(0x999), phone: "6282222222222", tags: [], createdAt: T0, updatedAt: T0 },
      ];
      await expectConvexError(b.admin.mutation(internal.migrate.upsertContacts, { rows: batch }), {
        code: "MissingReference", table: "workspaces", supabaseId: uuid(0x999),
      });
      const after = await b.admin.query(internal.migrate.tableDigest, { table: "contacts", cursor: null, numItems: 100 });
      expect(after).toEqual(before);
    });

    test("rows are validated against the table's fields", async () => {
      const b = await loaded();
      const error = await thrown(
        b.admin.mutation(internal.migrate.upsertWorkspaces, { rows: [{ ...workspaces[0], extra: 1 }] } as any),
      );
      expect(String(error.message)).toMatch(/extra/);
      const badRole = await thrown(
        b.admin.mutation(internal.migrate.upsertWorkspaceMembers, { rows: [{ ...members[0], role: "root" }] } as any),
      );
      expect(String(badRole.message)).toMatch(/role|Validator/);
    });

    test("tableDigest matches the reference fingerprint, page by page", async () => {
      const b = await loaded();
      for (const [table, rows] of Object.entries(TABLE_ROWS)) {
        const whole = await b.admin.query(internal.migrate.tableDigest, { table: table as any, cursor: null, numItems: 8192 });
        expect(whole, table).toMatchObject({ count: rows.length, digest: referenceDigest(rows), isDone: true });
      }
      // Pages sum (mod 2^64) to the whole.
      let cursor: string | null = null;
      let count = 0;
      let sum = 0n;
      for (let pages = 0; pages < 20; pages++) {
        const page: any = await b.admin.query(internal.migrate.tableDigest, { table: "messages", cursor, numItems: 4 });
        count += page.count;
        sum = (sum + BigInt(`0x${page.digest}`)) & 0xffffffffffffffffn;
        cursor = page.cursor;
        if (page.isDone) break;
      }
      expect(count).toBe(messages.length);
      expect(sum.toString(16).padStart(16, "0")).toBe(referenceDigest(messages));
    });

    test("clearTable deletes in batches", async () => {
      const b = await loaded();
      expect(await b.admin.mutation(internal.migrate.clearTable, { table: "messages", batchSize: 20 })).toEqual({ deleted: 20, hasMore: true });
      expect(await b.admin.mutation(internal.migrate.clearTable, { table: "messages", batchSize: 20 })).toEqual({ deleted: 7, hasMore: false });
      expect(await b.admin.mutation(internal.migrate.clearTable, { table: "messages" })).toEqual({ deleted: 0, hasMore: false });
      const digest = await b.admin.query(internal.migrate.tableDigest, { table: "messages", cursor: null, numItems: 10 });
      expect(digest).toMatchObject({ count: 0, digest: "0000000000000000", isDone: true });
      await expectConvexError(b.admin.mutation(internal.migrate.clearTable, { table: "messages", batchSize: 0 }), { code: "BadRequest" });
    });
  });

  describe("load-test rows", () => {
    // Two writes through the load tests' write path, to C1's newest conversation (V2).
    async function written(): Promise<Backend> {
      const b = await loaded();
      for (const content of ["loadtest 0123456789ab", "loadtest ba9876543210"]) {
        const response = await b.fetch("/messages/outbound", {
          method: "POST",
          headers: { "x-api-key": b.crmApiKey, "content-type": "application/json" },
          body: JSON.stringify({ workspaceId: W1, phone: PHONE, content }),
        });
        expect(response.status).toBe(201);
      }
      return b;
    }
    // V2 as the seed's rule gives it without the writes: its newest other message, "message 24".
    const restoredConversations = conversations.map((c) =>
      c.supabaseId === V2 ? { ...c, lastMessageAt: T0 + 10_000 + 24 * 1000, lastMessagePreview: "message 24" } : c,
    );

    test("tableDigestWithoutLoadtest sees the tables as if the writes had not happened", async () => {
      const b = await written();
      const raw = await b.admin.query(internal.migrate.tableDigest, { table: "messages", cursor: null, numItems: 8192 });
      expect(raw.count).toBe(messages.length + 2);
      const msgs = await b.admin.query(internal.migrate.tableDigestWithoutLoadtest, { table: "messages", cursor: null, numItems: 8192 });
      expect(msgs).toMatchObject({ count: messages.length, digest: referenceDigest(messages), skipped: 2, touched: [], isDone: true });
      const convs = await b.admin.query(internal.migrate.tableDigestWithoutLoadtest, { table: "conversations", cursor: null, numItems: 8192 });
      expect(convs).toMatchObject({
        count: conversations.length, digest: referenceDigest(restoredConversations), skipped: 0, touched: [V2], isDone: true,
      });
      const notesDigest = await b.admin.query(internal.migrate.tableDigestWithoutLoadtest, { table: "contactNotes", cursor: null, numItems: 3 });
      expect(notesDigest).toMatchObject({ count: 3, skipped: 0, touched: [], isDone: false });
    });

    test("countRows counts one workspace's rows page by page, loadtest messages left out", async () => {
      const b = await written();
      async function count(table: string, workspaceIds: string[], numItems = 8192): Promise<number> {
        let cursor: string | null = null;
        let total = 0;
        for (let pages = 0; pages < 50; pages++) {
          const page: any = await b.admin.query(internal.migrate.countRows, { table: table as any, workspaceIds, cursor, numItems });
          total += page.count;
          if (page.isDone) return total;
          cursor = page.cursor;
        }
        throw new Error("countRows never finished");
      }
      expect(await count("workspaces", [W1, W2, uuid(0xdead)])).toBe(2);
      expect(await count("contacts", [W1])).toBe(2);
      expect(await count("contacts", [W2])).toBe(1);
      expect(await count("contacts", [W1, W2], 1)).toBe(3);
      expect(await count("messages", [W1], 5)).toBe(messages.length);
      expect(await count("messages", [W2])).toBe(0);
      expect(await count("workspaceMembers", [W2])).toBe(1);
      expect(await count("contactNotes", [uuid(0xdead)])).toBe(0);
      await expectConvexError(
        b.admin.query(internal.migrate.countRows, { table: "contacts", workspaceIds: [W1], cursor: null, numItems: 0 }),
        { code: "BadRequest" },
      );
    });

    test("cleanupPage deletes the loadtest messages and restores their conversations; a rerun changes nothing", async () => {
      const b = await written();
      let cursor: string | null = null;
      let deleted = 0;
      let restored = 0;
      for (let pages = 0; pages < 50; pages++) {
        const page: any = await b.admin.mutation(internal.loadtest.cleanupPage, { cursor, numItems: 4 });
        deleted += page.deleted;
        restored += page.restored;
        if (page.isDone) break;
        cursor = page.cursor;
      }
      expect({ deleted, restored }).toEqual({ deleted: 2, restored: 1 });
      const msgs = await b.admin.query(internal.migrate.tableDigest, { table: "messages", cursor: null, numItems: 8192 });
      expect(msgs).toMatchObject({ count: messages.length, digest: referenceDigest(messages) });
      const convs = await b.admin.query(internal.migrate.tableDigest, { table: "conversations", cursor: null, numItems: 8192 });
      expect(convs).toMatchObject({ count: conversations.length, digest: referenceDigest(restoredConversations) });
      expect(await b.admin.mutation(internal.loadtest.cleanupPage, { cursor: null, numItems: 4000 })).toMatchObject({
        deleted: 0, restored: 0, isDone: true,
      });
      expect(await b.admin.mutation(internal.loadtest.restoreConversationsPage, { cursor: null })).toMatchObject({
        restored: 0, isDone: true,
      });
    });

    test("restoreConversationsPage repairs a conversation whose loadtest messages are already gone", async () => {
      const b = await written();
      await b.admin.mutation(internal.migrate.clearTable, { table: "messages", batchSize: 4000 });
      await b.admin.mutation(internal.migrate.upsertMessages, { rows: messages });
      expect(await b.admin.mutation(internal.loadtest.restoreConversationsPage, { cursor: null })).toMatchObject({
        restored: 1, isDone: true,
      });
      const convs = await b.admin.query(internal.migrate.tableDigest, { table: "conversations", cursor: null, numItems: 8192 });
      expect(convs.digest).toBe(referenceDigest(restoredConversations));
    });
  });
}
