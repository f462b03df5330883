// Wire-level behaviour of the sandbox runtime that the mock cannot show:
// Convex's HTTP envelopes and status codes, value formats, visibility of
// internal functions, JWT checks, argument and transaction limits.
import { beforeAll, describe, expect, inject, test } from "vitest";
import { loadFixtures, PHONE, USER_A, W1, workspaces } from "./fixtures.data";
import { makeFunctionReference } from "convex/server";
import { client, mintJwt, runtimeBackend } from "./runtime.helper";

const api = () => inject("convexUrl");
const adminHeader = () => ({ Authorization: `Convex ${inject("adminKey")}` });
const JSON_TYPE = { "Content-Type": "application/json" };

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${api()}${path}`, {
    method: "POST",
    headers: { ...JSON_TYPE, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, json, text, headers: response.headers };
}

const lookupArgs = { workspaceId: W1, phone: PHONE };

beforeAll(async () => {
  await loadFixtures(await runtimeBackend());
});

describe("HTTP API envelopes", () => {
  test("GET /version is the health check", async () => {
    const response = await fetch(`${api()}/version`);
    expect(response.status).toBe(200);
  });

  test("a body without the JSON content type is 400 BadJsonBody", async () => {
    const response = await fetch(`${api()}/api/query`, { method: "POST", body: JSON.stringify({ path: "contacts:getByPhone", args: {} }) });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ code: "BadJsonBody", message: "Expected request with `Content-Type: application/json`" });
    const bad = await post("/api/query", "{nope");
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe("BadJsonBody");
  });

  test("internal and unknown functions are not found without the admin key (HTTP 200, status error)", async () => {
    const internal = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args: lookupArgs, format: "json" });
    expect(internal.status).toBe(200);
    expect(internal.json).toEqual({ status: "error", errorMessage: "Could not find public function for 'contacts:getContextByPhoneInternal'." });
    const unknown = await post("/api/query", { path: "contacts:nope", args: {}, format: "json" });
    expect(unknown.json).toEqual({ status: "error", errorMessage: "Could not find public function for 'contacts:nope'." });
  });

  test("the admin key runs internal functions on /api/query, /api/run and /api/function", async () => {
    const query = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args: lookupArgs, format: "json" }, adminHeader());
    expect(query.json.status).toBe("success");
    expect(query.json.value.contact.phone).toBe(PHONE);
    expect(query.json).not.toHaveProperty("logLines");
    expect(query.headers.get("server-timing")).toMatch(/^exec;dur=\d/);
    const run = await post("/api/run/contacts/getContextByPhoneInternal", { args: lookupArgs }, adminHeader());
    expect(run.json.value.contact.phone).toBe(PHONE);
    const fn = await post("/api/function", { path: "contacts:getContextByPhoneInternal", args: lookupArgs, format: "json" }, adminHeader());
    expect(fn.json.value.contact.phone).toBe(PHONE);
    const legacyArgs = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args: [lookupArgs] }, adminHeader());
    expect(legacyArgs.json.value.contact.phone).toBe(PHONE);
  });

  test("/api/function needs an admin key; a wrong key is 403 BadDeployKey", async () => {
    const anonymous = await post("/api/function", { path: "contacts:getByPhone", args: lookupArgs });
    expect(anonymous.status).toBe(403);
    expect(anonymous.json.code).toBe("BadDeployKey");
    const wrong = await post("/api/query", { path: "contacts:getByPhone", args: lookupArgs }, { Authorization: "Convex not-the-key" });
    expect(wrong.status).toBe(403);
    expect(wrong.json.code).toBe("BadDeployKey");
  });

  test("ConvexHttpClient.consistentQuery works (query_ts, then query_at_ts)", async () => {
    const admin = client({ admin: true });
    const ref = makeFunctionReference<"query">("contacts:getContextByPhoneInternal");
    const first = await admin.consistentQuery(ref, lookupArgs);
    const second = await admin.consistentQuery(ref, lookupArgs);
    expect((first as any).contact.phone).toBe(PHONE);
    expect(second).toEqual(first);
  });

  test("calling a function as the wrong kind is a function error", async () => {
    const result = await post("/api/query", { path: "migrate:clearTable", args: { table: "messages" } }, adminHeader());
    expect(result.status).toBe(200);
    expect(result.json.status).toBe("error");
    expect(result.json.errorMessage).toContain("Trying to execute migrate:clearTable as Query, but it is defined as Mutation.");
  });

  test("ConvexError data comes back as errorData, in the requested format", async () => {
    const result = await post("/api/query", { path: "contacts:getContextByPhone", args: lookupArgs, format: "json" });
    expect(result.json.status).toBe("error");
    expect(result.json.errorData).toEqual({ code: "Unauthenticated", message: "sign in with a Supabase access token" });
    expect(result.json.errorMessage).toMatch(/Uncaught ConvexError/);
  });

  test("int64 values are strings in clean JSON and $integer in encoded JSON", async () => {
    const five = Buffer.alloc(8);
    five.writeBigInt64LE(5n);
    const row = {
      supabaseId: "00000000-0000-4000-8000-00000000beef", workspaceId: W1, phone: "6287777777777", tags: [],
      metadata: { count: { $integer: five.toString("base64") } }, createdAt: 1, updatedAt: 1,
    };
    const upsert = await post("/api/mutation", { path: "migrate:upsertContacts", args: { rows: [row] }, format: "json" }, adminHeader());
    expect(upsert.json).toEqual({ status: "success", value: { inserted: 1, updated: 0, unchanged: 0 } });
    const args = { workspaceId: W1, phone: "6287777777777" };
    const clean = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args, format: "json" }, adminHeader());
    expect(clean.json.value.contact.metadata).toEqual({ count: "5" });
    const encoded = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args, format: "convex_encoded_json" }, adminHeader());
    expect(encoded.json.value.contact.metadata).toEqual({ count: { $integer: five.toString("base64") } });
    const noFormat = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args }, adminHeader());
    expect(noFormat.json.value.contact.metadata).toEqual({ count: "5" });
    const badFormat = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args, format: "yaml" }, adminHeader());
    expect(badFormat.status).toBe(400);
  });

  test("HTTP actions are also served under /http/ on the API port", async () => {
    const response = await fetch(`${api()}/http/contacts/by-phone?workspaceId=${W1}&phone=${PHONE}`, {
      headers: { "x-api-key": inject("crmApiKey") },
    });
    expect(response.status).toBe(200);
    expect((await response.json()).contact.phone).toBe(PHONE);
    const unrouted = await fetch(`${inject("siteUrl")}/nowhere`);
    expect(unrouted.status).toBe(404);
  });

  test("function calls and HTTP actions carry Server-Timing exec (ms, one decimal); requests that ran none do not", async () => {
    const timing = (response: { headers: Headers }) => response.headers.get("server-timing");
    const query = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args: lookupArgs, format: "json" }, adminHeader());
    const mutation = await post("/api/mutation", { path: "migrate:clearTable", args: { table: "contactNotes", batchSize: 1 }, format: "json" }, adminHeader());
    const failed = await post("/api/query", { path: "contacts:nope", args: {}, format: "json" });
    const action = await fetch(`${inject("siteUrl")}/contacts/by-phone?workspaceId=${W1}&phone=${PHONE}`, {
      headers: { "x-api-key": inject("crmApiKey") },
    });
    for (const response of [query, mutation, failed, action]) expect(timing(response)).toMatch(/^exec;dur=\d+\.\d$/);
    expect(timing(await fetch(`${inject("siteUrl")}/nowhere`))).toBeNull();
    expect(timing(await post("/api/query", "{nope"))).toBeNull();
  });
});

describe("authentication", () => {
  const asToken = (token: string) => ({ Authorization: `Bearer ${token}` });
  const query = (headers: Record<string, string>) =>
    post("/api/query", { path: "contacts:getContextByPhone", args: lookupArgs, format: "json" }, headers);

  test("a valid Supabase-shaped ES256 token is a member's identity", async () => {
    const ok = await query(asToken(mintJwt(USER_A)));
    expect(ok.json.status).toBe("success");
    expect(ok.json.value.contact.phone).toBe(PHONE);
  });

  test("bad tokens are 401", async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases = [
      mintJwt(USER_A, { exp: now - 60 }), // expired
      mintJwt(USER_A, { aud: "anon" }), // wrong audience
      mintJwt(USER_A, { iss: "https://elsewhere.example/auth/v1" }), // unknown issuer
      mintJwt(USER_A, {}, { kid: "unknown-kid" }),
      mintJwt(USER_A, {}, { alg: "HS256" }),
      mintJwt(USER_A).replace(/\.[^.]+$/, ".AAAA"), // bad signature
      "not-a-jwt",
    ];
    for (const token of cases) {
      const result = await query(asToken(token));
      expect(result.status, token).toBe(401);
      expect(typeof result.json.code).toBe("string");
    }
    const basic = await query({ Authorization: "Basic abc" });
    expect(basic.status).toBe(401);
    expect(basic.json.code).toBe("InvalidAuthHeader");
  });

  test("an admin key can act as a user (Convex <key>:<base64 identity>)", async () => {
    const identity = Buffer.from(JSON.stringify({ subject: USER_A, issuer: inject("jwtIssuer") })).toString("base64");
    const result = await query({ Authorization: `Convex ${inject("adminKey")}:${identity}` });
    expect(result.json.status).toBe("success");
  });
});

describe("limits", () => {
  test("an argument array over 8192 items is rejected", async () => {
    const rows = Array.from({ length: 8193 }, (_, i) => ({ ...workspaces[0], supabaseId: `ws-${i}`, slug: `s${i}` }));
    const result = await post("/api/mutation", { path: "migrate:upsertWorkspaces", args: { rows }, format: "json" }, adminHeader());
    expect(result.status).toBe(200);
    expect(result.json.status).toBe("error");
    expect(result.json.errorMessage).toMatch(/ArgumentValidationError: Array length is too long \(8193 > maximum length 8192\)/);
  });

  test("a batch reading more than 4096 index ranges fails as on Convex, and writes nothing", async () => {
    const rows = Array.from({ length: 4097 }, (_, i) => ({ ...workspaces[0], supabaseId: `big-${i}`, slug: `big${i}` }));
    const result = await post("/api/mutation", { path: "migrate:upsertWorkspaces", args: { rows }, format: "json" }, adminHeader());
    expect(result.json.status).toBe("error");
    expect(result.json.errorMessage).toMatch(/Too many reads in a single function execution \(limit: 4096\)/);
    const digest = await post("/api/query", { path: "migrate:tableDigest", args: { table: "workspaces", cursor: null, numItems: 8192 } }, adminHeader());
    expect(digest.json.value.count).toBe(2);
  });

  test("concurrent mutations are serialised and all land", async () => {
    const calls = Array.from({ length: 25 }, (_, i) =>
      fetch(`${inject("siteUrl")}/messages/outbound`, {
        method: "POST",
        headers: { "x-api-key": inject("crmApiKey"), ...JSON_TYPE },
        body: JSON.stringify({ workspaceId: W1, phone: PHONE, content: `concurrent ${i}` }),
      }),
    );
    const statuses = (await Promise.all(calls)).map((r) => r.status);
    expect(statuses).toEqual(Array(25).fill(201));
    const context = await post("/api/query", { path: "contacts:getContextByPhoneInternal", args: { ...lookupArgs, messageLimit: 100 } }, adminHeader());
    const contents = context.json.value.conversations[0].messages.map((m: any) => m.content);
    expect(contents.filter((c: string) => c.startsWith("concurrent ")).length).toBe(25);
  });
});
