// The table fingerprint against fixed vectors: FNV-1a 64's published values
// and one CRM row whose hash seed/fingerprint.py (the Python side of
// `seed verify`) computes as 854eb2b8fab34c23.
import { expect, test } from "vitest";
import { canonicalJson, Digest, fnv1a64 } from "../lib/fingerprint";

const hex = (h: bigint) => h.toString(16).padStart(16, "0");

test("FNV-1a 64 matches the reference values", () => {
  expect(hex(fnv1a64(""))).toBe("cbf29ce484222325");
  expect(hex(fnv1a64("a"))).toBe("af63dc4c8601ec8c");
  expect(hex(fnv1a64("foobar"))).toBe("85944171f73967e8");
});

test("a row's canonical JSON and hash agree with the Python implementation", () => {
  const row = {
    supabaseId: "00000000-0000-4000-8000-000000000100", workspaceId: "00000000-0000-4000-8000-000000000001",
    phone: "6281234567890", name: "Budi Santoso", email: "budi@example.com", tags: ["vip", "wa"], leadStatus: "hot",
    leadScore: 42, metadata: { source: "wa", nested: { b: 1, a: "ü" } }, createdAt: 1737453600000, updatedAt: 1737453605,
  };
  expect(canonicalJson(row)).toBe(
    '{"createdAt":1737453600000,"email":"budi@example.com","leadScore":42,"leadStatus":"hot",' +
      '"metadata":{"nested":{"a":"ü","b":1},"source":"wa"},"name":"Budi Santoso","phone":"6281234567890",' +
      '"supabaseId":"00000000-0000-4000-8000-000000000100","tags":["vip","wa"],"updatedAt":1737453605,' +
      '"workspaceId":"00000000-0000-4000-8000-000000000001"}',
  );
  expect(hex(fnv1a64(canonicalJson(row)))).toBe("854eb2b8fab34c23");
});

test("the digest is an order-independent sum mod 2^64", () => {
  const rows = [{ a: 1 }, { b: "x" }, { c: [1, 2] }];
  const forward = new Digest();
  const backward = new Digest();
  for (const row of rows) forward.addRow(row);
  for (const row of [...rows].reverse()) backward.addRow(row);
  expect(forward.hex).toBe(backward.hex);
  expect(forward.count).toBe(3);
  expect(new Digest().hex).toBe("0000000000000000");
});
