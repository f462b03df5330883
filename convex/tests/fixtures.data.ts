// A small CRM dataset in the migration's row form (docs/formats.md), with
// the orderings the lookup must get right: conversations with and without
// lastMessageAt, more messages and notes than the lookup returns, and the
// same phone in two workspaces.
import { internal } from "../_generated/api";
import type { Backend } from "./backend.helper";

export const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;

export const W1 = uuid(1);
export const W2 = uuid(2);
export const USER_A = uuid(0xa); // member of W1
export const USER_B = uuid(0xb); // member of W2 only
export const PHONE = "6281234567890";
export const PHONE_BARE = "6289999999999";
export const C1 = uuid(0x100);
export const C2 = uuid(0x101);
export const C3 = uuid(0x102);
export const V1 = uuid(0x200);
export const V2 = uuid(0x201);
export const V3 = uuid(0x202);
export const V4 = uuid(0x203);
export const V5 = uuid(0x204);
export const T0 = 1_737_453_600_000;

export const workspaces = [
  { supabaseId: W1, name: "Eagle Overseas", slug: "eagle", createdAt: T0 },
  { supabaseId: W2, name: "Falcon Trading", slug: "falcon", createdAt: T0 + 1 },
];
export const members = [
  { supabaseId: uuid(0x10), workspaceId: W1, userId: USER_A, role: "owner" as const, createdAt: T0 },
  { supabaseId: uuid(0x11), workspaceId: W2, userId: USER_B, role: "agent" as const, createdAt: T0 },
];
export const contacts = [
  {
    supabaseId: C1, workspaceId: W1, phone: PHONE, name: "Budi Santoso", email: "budi@example.com",
    tags: ["vip", "wa"], leadStatus: "hot", leadScore: 42, metadata: { source: "wa", nested: { b: 1, a: "ü" } },
    createdAt: T0, updatedAt: T0 + 5,
  },
  { supabaseId: C2, workspaceId: W1, phone: PHONE_BARE, tags: [], createdAt: T0, updatedAt: T0 },
  { supabaseId: C3, workspaceId: W2, phone: PHONE, name: "Other Budi", tags: [], createdAt: T0, updatedAt: T0 },
];
const conversation = (supabaseId: string, lastMessageAt: number | undefined, extra: object = {}) => ({
  supabaseId, workspaceId: W1, contactId: C1, status: "open" as const, unreadCount: 0, createdAt: T0,
  ...(lastMessageAt === undefined ? {} : { lastMessageAt, lastMessagePreview: `preview ${lastMessageAt}` }),
  ...extra,
});
export const conversations = [
  conversation(V1, T0 + 1000),
  conversation(V2, T0 + 3000, { status: "pending", assignedTo: USER_A, unreadCount: 2 }),
  conversation(V3, T0 + 2000),
  conversation(V4, undefined),
  conversation(V5, T0 + 500),
];
export const messages = [
  ...Array.from({ length: 25 }, (_, i) => ({
    supabaseId: uuid(0x1000 + i), workspaceId: W1, conversationId: V2,
    direction: (i % 2 ? "outbound" : "inbound") as "inbound" | "outbound",
    senderType: (i % 2 ? "agent" : "contact") as "agent" | "contact",
    content: `message ${i}`, messageType: "text", createdAt: T0 + 10_000 + i * 1000,
  })),
  ...Array.from({ length: 2 }, (_, i) => ({
    supabaseId: uuid(0x2000 + i), workspaceId: W1, conversationId: V3, direction: "inbound" as const,
    senderType: "contact" as const, content: `v3 ${i}`, messageType: "text", createdAt: T0 + 500 + i,
  })),
];
export const notes = Array.from({ length: 12 }, (_, i) => ({
  supabaseId: uuid(0x3000 + i), workspaceId: W1, contactId: C1, content: `note ${i}`, createdAt: T0 + 100 + i,
  ...(i % 2 === 0 ? { authorId: USER_A } : {}),
}));

/** Loads the dataset through the migration mutations, parents first. */
export async function loadFixtures(backend: Backend): Promise<void> {
  const admin = backend.admin;
  await admin.mutation(internal.migrate.upsertWorkspaces, { rows: workspaces });
  await admin.mutation(internal.migrate.upsertWorkspaceMembers, { rows: members });
  await admin.mutation(internal.migrate.upsertContacts, { rows: contacts });
  await admin.mutation(internal.migrate.upsertConversations, { rows: conversations });
  await admin.mutation(internal.migrate.upsertMessages, { rows: messages });
  await admin.mutation(internal.migrate.upsertContactNotes, { rows: notes });
}
