// Benchmark of the sandbox Convex runtime: `contacts:getContextByPhone`
// through the HTTP action (`GET /contacts/by-phone` on the site port) and
// through `POST /api/query` (Bearer JWT, as a workspace member), with a CRM
// dataset loaded through the migration mutations. Reports server-side time
// per lookup (the runtime's Server-Timing header), client latency and
// lookups/s at several concurrencies, the runtime's memory, and the same
// lookup under convex-test (the official mock) in the same run.
//
//   node bench/bench_convex.mjs [--contacts 10000] [--conversations 3]
//        [--messages 10] [--seconds 5] [--clients 1,8,32] [--mock-lookups 20]
//
// Everything runs on 127.0.0.1, bounded in time; the runtime is started and
// stopped by this script with a throwaway data directory.
import { spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID, createPrivateKey, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";

const ROOT = resolve(new URL("..", import.meta.url).pathname);
const { values: opts } = parseArgs({
  options: {
    contacts: { type: "string", default: "10000" },
    conversations: { type: "string", default: "3" },
    messages: { type: "string", default: "10" },
    notes: { type: "string", default: "2" },
    pairs: { type: "string", default: "10" },
    slice: { type: "string", default: "1" },
    clients: { type: "string", default: "1,8,32" },
    "mock-lookups": { type: "string", default: "3" },
    batch: { type: "string", default: "1000" },
    json: { type: "string" },
  },
});
const N_CONTACTS = Number(opts.contacts);
const CONV_PER_CONTACT = Number(opts.conversations);
const MSG_PER_CONV = Number(opts.messages);
const NOTES_PER_CONTACT = Number(opts.notes);
const PAIRS = Number(opts.pairs);
const SLICE = Number(opts.slice);
const CLIENTS = opts.clients.split(",").map(Number);
const MOCK_LOOKUPS = Number(opts["mock-lookups"]);
const BATCH = Number(opts.batch);

// ------------------------------------------------------------------ dataset
const uuid = (kind, n) => `${kind.toString(16).padStart(8, "0")}-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const T0 = 1_737_453_600_000;
const WORKSPACE = uuid(1, 1);
const MEMBER = uuid(2, 1);
const phoneOf = (i) => String(6281200000000 + i);

function* dataset() {
  yield ["workspaces", [{ supabaseId: WORKSPACE, name: "Eagle Overseas", slug: "eagle", createdAt: T0 }]];
  yield ["workspaceMembers", [{ supabaseId: uuid(3, 1), workspaceId: WORKSPACE, userId: MEMBER, role: "agent", createdAt: T0 }]];
  const batches = (rows) => {
    const out = [];
    for (let i = 0; i < rows.length; i += BATCH) out.push(rows.slice(i, i + BATCH));
    return out;
  };
  const contacts = [];
  for (let i = 0; i < N_CONTACTS; i++) {
    contacts.push({
      supabaseId: uuid(4, i), workspaceId: WORKSPACE, phone: phoneOf(i), name: `Contact ${i}`, email: `c${i}@example.com`,
      tags: ["lead", i % 7 === 0 ? "vip" : "wa"], leadStatus: "warm", leadScore: i % 100, metadata: { source: "whatsapp", campaign: `c${i % 13}` },
      createdAt: T0 + i, updatedAt: T0 + i,
    });
  }
  for (const b of batches(contacts)) yield ["contacts", b];
  const conversations = [];
  for (let i = 0; i < N_CONTACTS; i++) {
    for (let c = 0; c < CONV_PER_CONTACT; c++) {
      const at = T0 + 1_000_000 + i * 100 + c * 10;
      conversations.push({
        supabaseId: uuid(5, i * CONV_PER_CONTACT + c), workspaceId: WORKSPACE, contactId: uuid(4, i), status: "open",
        lastMessageAt: at, lastMessagePreview: `last message of conversation ${c}`, unreadCount: c, createdAt: T0 + i,
      });
    }
  }
  for (const b of batches(conversations)) yield ["conversations", b];
  let batch = [];
  for (let v = 0; v < N_CONTACTS * CONV_PER_CONTACT; v++) {
    for (let m = 0; m < MSG_PER_CONV; m++) {
      batch.push({
        supabaseId: uuid(6, v * MSG_PER_CONV + m), workspaceId: WORKSPACE, conversationId: uuid(5, v),
        direction: m % 2 ? "outbound" : "inbound", senderType: m % 2 ? "agent" : "contact",
        content: `Hello, this is message ${m} of conversation ${v}, about the shipment schedule.`, messageType: "text",
        createdAt: T0 + 2_000_000 + v * 100 + m,
      });
      if (batch.length === BATCH) {
        yield ["messages", batch];
        batch = [];
      }
    }
  }
  if (batch.length) yield ["messages", batch];
  const notes = [];
  for (let i = 0; i < N_CONTACTS; i++) {
    for (let n = 0; n < NOTES_PER_CONTACT; n++) {
      notes.push({ supabaseId: uuid(7, i * NOTES_PER_CONTACT + n), workspaceId: WORKSPACE, contactId: uuid(4, i), authorId: MEMBER, content: `note ${n}`, createdAt: T0 + i + n });
    }
  }
  for (const b of batches(notes)) yield ["contactNotes", b];
}

const UPSERT = {
  workspaces: "migrate:upsertWorkspaces", workspaceMembers: "migrate:upsertWorkspaceMembers", contacts: "migrate:upsertContacts",
  conversations: "migrate:upsertConversations", messages: "migrate:upsertMessages", contactNotes: "migrate:upsertContactNotes",
};

// ------------------------------------------------------------------ helpers
function request(agent, { port, method, path, headers, body }) {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const timing = /dur=([\d.]+)/.exec(res.headers["server-timing"] ?? "");
        resolvePromise({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8"), clientMs: performance.now() - started, serverMs: timing ? Number(timing[1]) : NaN });
      });
    });
    req.on("error", reject);
    if (body) req.end(body);
    else req.end();
  });
}

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : NaN);
const sortNum = (xs) => Float64Array.from(xs).sort();
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "-");

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const get = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return { rss: get("VmRSS"), peak: get("VmHWM") };
}

function mintJwt(privateKey, kid, issuer, sub) {
  const b64 = (v) => Buffer.from(v).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = b64(JSON.stringify({ alg: "ES256", typ: "JWT", kid }));
  const body = b64(JSON.stringify({ iss: issuer, sub, aud: "authenticated", role: "authenticated", iat: now, exp: now + 3600 }));
  const sig = sign("sha256", Buffer.from(`${head}.${body}`), { key: privateKey, dsaEncoding: "ieee-p1363" });
  return `${head}.${body}.${b64(sig)}`;
}

// ------------------------------------------------------------------ runtime
async function startRuntime(dir) {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const kid = randomUUID();
  const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid, alg: "ES256" }] });
  const jwksServer = http.createServer((_q, r) => r.end(jwks));
  await new Promise((ok) => jwksServer.listen(0, "127.0.0.1", ok));
  const issuer = `http://127.0.0.1:${jwksServer.address().port}/auth/v1`;
  const envFile = join(dir, "env.json");
  writeFileSync(envFile, JSON.stringify({ CRM_API_KEY: "bench-key", SUPABASE_JWT_ISSUER: issuer, SUPABASE_JWKS_URL: `${issuer}/.well-known/jwks.json` }));
  const adminKey = `bench|${randomBytes(16).toString("hex")}`;
  const child = spawn(process.execPath, [
    join(ROOT, "sandbox/convex_runtime/bin/convex-sandbox.mjs"), "--port", "0", "--site-port", "0",
    "--functions", join(ROOT, "convex"), "--data-dir", join(dir, "data"), "--env-file", envFile, "--no-persist",
  ], { env: { ...process.env, CONVEX_ADMIN_KEY: adminKey }, stdio: ["ignore", "pipe", "inherit"] });
  const ports = await new Promise((ok, fail) => {
    let out = "";
    child.on("exit", (code) => fail(new Error(`runtime exited ${code}`)));
    child.stdout.on("data", (c) => {
      out += c;
      const m = /API http:\/\/127\.0\.0\.1:(\d+), HTTP actions http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) ok({ api: Number(m[1]), site: Number(m[2]) });
    });
  });
  child.stdout.resume();
  return { child, jwksServer, ports, adminKey, token: mintJwt(privateKey, kid, issuer, MEMBER) };
}

async function load(rt) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const started = performance.now();
  let rows = 0;
  const counts = {};
  // Parents before children: each table's batches finish before the next
  // table starts; within a table, up to 4 batches are in flight.
  const inFlight = new Set();
  let currentTable = null;
  for (const [table, batch] of dataset()) {
    if (table !== currentTable) {
      await Promise.all(inFlight);
      currentTable = table;
    }
    while (inFlight.size >= 4) await Promise.race(inFlight);
    const body = JSON.stringify({ path: UPSERT[table], args: { rows: batch }, format: "json" });
    const headers = { "content-type": "application/json", authorization: `Convex ${rt.adminKey}` };
    const call = request(agent, { port: rt.ports.api, method: "POST", path: "/api/mutation", headers, body }).then((r) => {
      const parsed = JSON.parse(r.body);
      if (parsed.status !== "success") throw new Error(`${table}: ${parsed.errorMessage}`);
      rows += batch.length;
      counts[table] = (counts[table] ?? 0) + batch.length;
    });
    const tracked = call.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  }
  await Promise.all(inFlight);
  agent.destroy();
  return { rows, counts, seconds: (performance.now() - started) / 1000 };
}

function lookupRequest(rt, path, phone) {
  if (path === "http action") {
    return { port: rt.ports.site, method: "GET", path: `/contacts/by-phone?workspaceId=${WORKSPACE}&phone=${phone}`, headers: { "x-api-key": "bench-key" } };
  }
  return {
    port: rt.ports.api, method: "POST", path: "/api/query",
    headers: { "content-type": "application/json", authorization: `Bearer ${rt.token}` },
    body: JSON.stringify({ path: "contacts:getContextByPhone", args: { workspaceId: WORKSPACE, phone }, format: "json" }),
  };
}

async function measure(rt, path, clients, seconds) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const server = [];
  const client = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  let seed = clients * 7919;
  const nextPhone = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return phoneOf(seed % N_CONTACTS);
  };
  const worker = async () => {
    while (performance.now() < deadline) {
      const r = await request(agent, lookupRequest(rt, path, nextPhone()));
      const ok = r.status === 200 && (path === "http action" || r.body.startsWith('{"status":"success"'));
      if (!ok) errors++;
      else {
        server.push(r.serverMs);
        client.push(r.clientMs);
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, worker));
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  const s = sortNum(server);
  const c = sortNum(client);
  return { path, clients, n: server.length, errors, rps: server.length / elapsed, s50: quantile(s, 0.5), s95: quantile(s, 0.95), c50: quantile(c, 0.5), c95: quantile(c, 0.95) };
}

// ------------------------------------------------------------------ convex-test
async function mockLookups() {
  const { loadProject } = await import(join(ROOT, "sandbox/convex_runtime/src/modules.mjs"));
  const buildDir = mkdtempSync(join(tmpdir(), "convex-bench-mock-"));
  try {
    const project = await loadProject(join(ROOT, "convex"), buildDir);
    const { convexTest } = await import("convex-test");
    const { anyApi } = await import("convex/server");
    const modules = { "/bench/_generated/api.js": async () => ({}) };
    for (const [path, exports] of project.modules) modules[`/bench/${path}.js`] = async () => exports;
    const t = convexTest(project.schema, modules);
    const started = performance.now();
    // Inserted directly (not through migrate): convex-test's index reads scan
    // whole tables, so upserting row by row would be quadratic.
    await t.run(async (ctx) => {
      const ids = new Map();
      for (const [table, batch] of dataset()) {
        for (const row of batch) {
          const doc = { ...row };
          for (const field of ["workspaceId", "contactId", "conversationId"]) if (field in doc) doc[field] = ids.get(doc[field]);
          ids.set(row.supabaseId, await ctx.db.insert(table, doc));
        }
      }
    });
    const loadSeconds = (performance.now() - started) / 1000;
    const times = [];
    for (let i = 0; i < MOCK_LOOKUPS; i++) {
      const phone = phoneOf((i * 7919) % N_CONTACTS);
      const t0 = performance.now();
      const result = await t.query(anyApi.contacts.getContextByPhoneInternal, { workspaceId: WORKSPACE, phone });
      times.push(performance.now() - t0);
      if (!result) throw new Error("mock lookup found nothing");
    }
    const s = sortNum(times);
    return { n: times.length, p50: quantile(s, 0.5), p95: quantile(s, 0.95), loadSeconds };
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ main
const PATHS = ["http action", "api/query"];
const median = (xs) => quantile(sortNum(xs), 0.5);
const dir = mkdtempSync(join(tmpdir(), "convex-bench-"));
const rt = await startRuntime(dir);
try {
  const loaded = await load(rt);
  console.log(`loaded ${loaded.rows.toLocaleString()} rows in ${loaded.seconds.toFixed(1)} s (${Math.round(loaded.rows / loaded.seconds).toLocaleString()} rows/s): ${JSON.stringify(loaded.counts)}`);
  await new Promise((ok) => setTimeout(ok, 2000));
  const memory = rssMiB(rt.child.pid);
  // Warm-up: first calls compile and fill caches.
  for (const path of PATHS) await measure(rt, path, 4, 1);
  const cells = [];
  for (const clients of CLIENTS) {
    const got = { "http action": [], "api/query": [] };
    for (let i = 0; i < PAIRS; i++) {
      // pairs alternate which path goes first: A B, B A, ...
      for (const path of i % 2 === 0 ? PATHS : [...PATHS].reverse()) got[path].push(await measure(rt, path, clients, SLICE));
    }
    cells.push({ clients, got });
    const [a, b] = PATHS.map((p) => got[p]);
    console.log(`  ${clients} clients: http action / api/query lookups/s ${median(a.map((x, i) => x.rps / b[i].rps)).toFixed(2)}, ` +
      `server p50 ${fmt(median(a.map((x) => x.s50)), 3)} / ${fmt(median(b.map((x) => x.s50)), 3)} ms (load ${loadavg()[0].toFixed(2)})`);
  }
  const memoryAfter = rssMiB(rt.child.pid);
  const mock = MOCK_LOOKUPS > 0 ? await mockLookups() : null;
  const errors = cells.reduce((n, c) => n + PATHS.reduce((m, p) => m + c.got[p].reduce((k, x) => k + x.errors, 0), 0), 0);

  const comparisons = [];
  for (const { clients, got } of cells) {
    const [a, b] = PATHS.map((p) => got[p]);
    const label = `${clients} client${clients > 1 ? "s" : ""}`;
    comparisons.push({ name: `${label}: lookups/s`, a_label: "http action", b_label: "api/query", a: a.map((x) => x.rps), b: b.map((x) => x.rps) });
    comparisons.push({ name: `${label}: server p50`, a_label: "http action", b_label: "api/query", a: a.map((x) => x.s50), b: b.map((x) => x.s50), unit: "ms", spec: ".3f" });
    comparisons.push({ name: `${label}: client p50`, a_label: "http action", b_label: "api/query", a: a.map((x) => x.c50), b: b.map((x) => x.c50), unit: "ms", spec: ".2f" });
  }
  const notes = [
    `runtime memory: RSS ${memory.rss.toFixed(0)} MiB after loading (peak ${memory.peak.toFixed(0)} MiB), ${memoryAfter.rss.toFixed(0)} MiB after the lookups`,
    `load: ${loaded.rows.toLocaleString("en-US")} rows through the migrate:upsert* mutations in ${loaded.seconds.toFixed(1)} s (${Math.round(loaded.rows / loaded.seconds).toLocaleString("en-US")} rows/s)`,
    `${errors} failed lookups`,
  ];
  if (mock) notes.push(`convex-test (the official mock, in process, same internal query and dataset): ${mock.n} lookups, p50 ${fmt(mock.p50, 1)} ms, p95 ${fmt(mock.p95, 1)} ms (its indexes are table scans); inserting the dataset took ${mock.loadSeconds.toFixed(1)} s`);
  const setup = `Dataset: ${N_CONTACTS.toLocaleString("en-US")} contacts, ${(N_CONTACTS * CONV_PER_CONTACT).toLocaleString("en-US")} conversations, ` +
    `${(N_CONTACTS * CONV_PER_CONTACT * MSG_PER_CONV).toLocaleString("en-US")} messages, ${(N_CONTACTS * NOTES_PER_CONTACT).toLocaleString("en-US")} notes; ` +
    `closed-loop clients on keep-alive connections, slices of ${SLICE} s per path, Node ${process.versions.node}.`;
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ pairs: PAIRS, setup, comparisons, checks: [], notes, cells }));
  else {
    for (const c of comparisons) console.log(`${c.name}: http action ${fmt(median(c.a), 3)}, api/query ${fmt(median(c.b), 3)} (medians over ${PAIRS} pairs)`);
    for (const n of notes) console.log(n);
  }
} finally {
  rt.child.kill("SIGTERM");
  rt.jwksServer.close();
  await new Promise((ok) => rt.child.once("exit", ok));
  rmSync(dir, { recursive: true, force: true });
}
