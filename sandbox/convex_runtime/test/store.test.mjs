// The runtime's storage building blocks: the ordered key list, ids, index
// range queries in both orders, rollback, and snapshots.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { newId, tableNumberOfId } from "../src/ids.mjs";
import { QueryStream, paginate } from "../src/query.mjs";
import { SortedList } from "../src/sorted_list.mjs";
import { Database } from "../src/storage.mjs";
import { TransactionMetrics } from "../src/execution.mjs";
import { compareValues } from "../src/values.mjs";

function seeded(seed) {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

describe("SortedList", () => {
  test("matches a sorted array under random inserts and deletes", () => {
    const random = seeded(7);
    const list = new SortedList((a, b) => a - b);
    const reference = [];
    for (let i = 0; i < 20_000; i++) {
      const x = Math.floor(random() * 3000);
      if (random() < 0.3) {
        const at = reference.indexOf(x);
        expect(list.delete(x)).toBe(at >= 0);
        if (at >= 0) reference.splice(at, 1);
      } else {
        list.insert(x);
        reference.push(x);
      }
    }
    reference.sort((a, b) => a - b);
    expect([...list.all()]).toEqual(reference);
    expect(list.size).toBe(reference.length);
  });

  test("a seek costs O(log n) comparisons", () => {
    let comparisons = 0;
    const list = new SortedList((a, b) => {
      comparisons++;
      return a - b;
    });
    for (let i = 0; i < 300_000; i++) list.insert(i);
    comparisons = 0;
    const position = list.seek(123_456, false);
    expect(list.entryAt(position)).toBe(123_456);
    expect(comparisons).toBeLessThan(2 * Math.ceil(Math.log2(300_000)) + 4);
  });
});

describe("ids", () => {
  test("encode their table number and reject corruption", () => {
    const id = newId(10_003);
    expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{32}$/);
    expect(tableNumberOfId(id)).toBe(10_003);
    // The checksum catches (nearly) every single-character change.
    const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    let detected = 0;
    for (let i = 0; i < 32; i++) {
      const replacement = alphabet[(alphabet.indexOf(id[i]) + 1) % 32];
      if (tableNumberOfId(id.slice(0, i) + replacement + id.slice(i + 1)) !== 10_003) detected++;
    }
    expect(detected).toBeGreaterThanOrEqual(30);
    expect(tableNumberOfId(id.slice(0, 31))).toBeNull();
    expect(tableNumberOfId("not an id")).toBeNull();
  });
});

const schema = {
  schemaValidation: true,
  tables: [
    {
      tableName: "messages",
      indexes: [{ indexDescriptor: "by_conversation_created", fields: ["conversationId", "createdAt"] }],
      documentType: { type: "any" },
    },
  ],
};

function loadMessages(db) {
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 10; i++) db.insert("messages", { conversationId: `c${c}`, createdAt: i * 10 });
  }
  db.insert("messages", { createdAt: 5 }); // no conversationId: sorts first
}

const range = (order, ...range) => ({
  source: { type: "IndexRange", indexName: "messages.by_conversation_created", range, order },
  operators: [],
});
const eq = (fieldPath, value) => ({ type: "Eq", fieldPath, value });

function collect(db, query) {
  const stream = new QueryStream(db, query, new TransactionMetrics());
  const out = [];
  for (let r = stream.next(); r; r = stream.next()) out.push(r.value);
  return out;
}

describe("index range queries", () => {
  test("eq prefix with bounds, ascending and descending", () => {
    const db = new Database(schema);
    loadMessages(db);
    const asc = collect(db, range("asc", eq("conversationId", "c1"), { type: "Gt", fieldPath: "createdAt", value: 20 }, { type: "Lte", fieldPath: "createdAt", value: 60 }));
    expect(asc.map((d) => d.createdAt)).toEqual([30, 40, 50, 60]);
    const desc = collect(db, range("desc", eq("conversationId", "c1"), { type: "Gte", fieldPath: "createdAt", value: 20 }, { type: "Lt", fieldPath: "createdAt", value: 60 }));
    expect(desc.map((d) => d.createdAt)).toEqual([50, 40, 30, 20]);
    expect(collect(db, range("desc", eq("conversationId", "c2"))).map((d) => d.createdAt)).toEqual([90, 80, 70, 60, 50, 40, 30, 20, 10, 0]);
    expect(collect(db, range("asc", eq("conversationId", "zz")))).toEqual([]);
    expect(collect(db, range("asc", eq("conversationId", { $undefined: null })))).toHaveLength(1);
  });

  test("filters and limits apply in order; the scan stops at the limit", () => {
    const db = new Database(schema);
    loadMessages(db);
    const metrics = new TransactionMetrics();
    const query = range("desc", eq("conversationId", "c0"));
    query.operators = [{ filter: { $gte: [{ $field: "createdAt" }, { $literal: 30 }] } }, { limit: 2 }];
    const stream = new QueryStream(db, query, metrics);
    const out = [];
    for (let r = stream.next(); r; r = stream.next()) out.push(r.value.createdAt);
    expect(out).toEqual([90, 80]);
    expect(metrics.documentsRead).toBeLessThanOrEqual(3);
  });

  test("a stream re-seeks after writes to its index", () => {
    const db = new Database(schema);
    loadMessages(db);
    const stream = new QueryStream(db, range("asc", eq("conversationId", "c0")), new TransactionMetrics());
    expect(stream.next().value.createdAt).toBe(0);
    db.insert("messages", { conversationId: "c0", createdAt: 5 });
    expect(stream.next().value.createdAt).toBe(5);
    expect(stream.next().value.createdAt).toBe(10);
  });

  test("pagination pages cover the range exactly once", () => {
    const db = new Database(schema);
    loadMessages(db);
    const seen = [];
    let cursor = null;
    for (let pages = 0; pages < 20; pages++) {
      const page = paginate(db, new TransactionMetrics(), { query: range("desc", eq("conversationId", "c1")), cursor, pageSize: 3 });
      seen.push(...page.page.map((r) => r.value.createdAt));
      cursor = page.continueCursor;
      if (page.isDone) break;
    }
    expect(seen).toEqual([90, 80, 70, 60, 50, 40, 30, 20, 10, 0]);
  });
});

describe("transactions and snapshots", () => {
  test("rollback undoes inserts, replaces and deletes, indexes included", () => {
    const db = new Database(schema);
    loadMessages(db);
    const before = collect(db, range("asc", eq("conversationId", "c0")));
    db.beginTransaction();
    const inserted = db.insert("messages", { conversationId: "c0", createdAt: 1 });
    db.replace(before[0]._id, { conversationId: "c9", createdAt: 0 });
    db.delete(before[1]._id);
    expect(db.get(inserted.id)).toBeDefined();
    db.rollback();
    expect(db.get(inserted.id)).toBeUndefined();
    expect(collect(db, range("asc", eq("conversationId", "c0")))).toEqual(before);
    expect(collect(db, range("asc", eq("conversationId", "c9")))).toEqual([]);
  });

  test("a snapshot reloads the same documents, ids and order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "convex-store-"));
    try {
      const db = new Database(schema);
      loadMessages(db);
      db.insert("messages", { conversationId: "c1", createdAt: 15, text: "naïve ✓", n: 5n, bytes: new Uint8Array([1, 2]).buffer });
      expect(await db.save(dir)).toBe(db.documents.size);
      const reloaded = new Database(schema);
      expect(reloaded.load(dir)).toBe(db.documents.size);
      const a = collect(db, range("asc", eq("conversationId", "c1")));
      const b = collect(reloaded, range("asc", eq("conversationId", "c1")));
      expect(b.map((d) => d._id)).toEqual(a.map((d) => d._id));
      expect(compareValues(b[2], a[2])).toBe(0);
      expect(reloaded.isIdOfTable("messages", a[0]._id)).toBe(true);
      const next = reloaded.insert("messages", { createdAt: 0 });
      expect(next.value._creationTime).toBeGreaterThan(a[a.length - 1]._creationTime);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
