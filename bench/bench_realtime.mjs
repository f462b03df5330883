#!/usr/bin/env node
// Realtime fan-out on the two sandbox stand-ins: 1,000 concurrent
// subscriptions to workspaces' inboxes, a writer appending at a fixed rate,
// and for every update each subscriber receives, the time from the write's
// commit (and from the write request) to its arrival.
//
//  - Convex: the sandbox runtime's sync protocol (/api/sync). Each subscriber
//    is a workspace member (ES256 JWT) subscribed to conversations:inbox; the
//    writer sends messages:appendOutbound as a Mutation over its own admin
//    socket, whose MutationResponse carries the commit timestamp.
//  - Supabase: the sandbox gateway's Realtime (/realtime/v1/websocket, vsn
//    2.0.0). Each subscriber is a member (HS256 JWT) with a postgres_changes
//    UPDATE binding on conversations filtered by its workspace (RLS applies);
//    the writer PATCHes the conversation through /rest/v1 (service role), and
//    the event's commit_timestamp (milliseconds) is the commit time.
//
// Subscribers are raw protocol clients in this process (one socket each), so
// the client side costs little; they share the machine with the servers.
//
// A scenario "F:M" puts F subscribers on each workspace, signed in as M
// distinct members (F/M subscriptions per member, as an agent with several
// tabs or devices); workspaces = subscriptions / F. Writes go round-robin over
// the workspaces. Both stand-ins run at once, each with its subscribers; the
// writes come in rounds of --round seconds, in interleaved pairs (Convex,
// Supabase, Supabase, Convex, ...), so both see the same background load.
// The first --warmup writes on each are not counted.
//
//   flock /tmp/sandbox-tests.lock node bench/bench_realtime.mjs
//     [--pairs 10] [--round 1] [--subscriptions 1000] [--scenarios 5:5,100:5,100:100] [--rate 20]
//     [--warmup 20] [--targets convex,supabase] [--json FILE]
//
// With --json, each round's percentiles go to FILE for `python -m bench.node
// realtime`, which computes the intervals and writes docs/benchmarks.md.
import { spawn, spawnSync } from "node:child_process";
import { createHmac, generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const ROOT = resolve(new URL("..", import.meta.url).pathname);
const { values: opts } = parseArgs({
  options: {
    subscriptions: { type: "string", default: "1000" },
    scenarios: { type: "string", default: "5:5,100:5,100:100" },
    warmup: { type: "string", default: "20" },
    rate: { type: "string", default: "20" },
    pairs: { type: "string", default: "10" },
    round: { type: "string", default: "1" },
    targets: { type: "string", default: "convex,supabase" },
    json: { type: "string" },
    python: { type: "string", default: join(ROOT, ".venv", "bin", "python") },
  },
});
const SUBSCRIPTIONS = Number(opts.subscriptions);
const SCENARIOS = opts.scenarios.split(",").map((s) => s.split(":").map(Number));
const WARMUP = Number(opts.warmup);
const RATE = Number(opts.rate);
const PAIRS = Number(opts.pairs);
const ROUND = Number(opts.round);
const SETTLE_MS = 750; // after a round's last write: updates still on their way
const TARGETS = opts.targets.split(",");
const PHONE = "6281200000001";

const wallMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64url = (v) => Buffer.from(v).toString("base64url");
let uuidCounter = 0;
const uuid = (kind) => `${kind.toString(16).padStart(8, "0")}-0000-4000-8000-${(++uuidCounter).toString(16).padStart(12, "0")}`;
const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : NaN);
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : "-");

/** Opens sockets a few at a time (a burst of 1,000 handshakes only measures the accept queue). */
async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

function httpJson(port, method, path, headers, body) {
  return new Promise((resolvePromise, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      { host: "127.0.0.1", port, method, path, agent: httpAgent, headers: { "content-type": "application/json", ...(payload ? { "content-length": payload.length } : {}), ...headers } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`));
          else resolvePromise(text ? JSON.parse(text) : null);
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** Workspaces of `memberCount` members each, one contact and ten conversations per workspace. */
function dataset(workspaceCount, memberCount) {
  const workspaces = [];
  for (let w = 0; w < workspaceCount; w++) {
    const id = uuid(1);
    const members = Array.from({ length: memberCount }, () => uuid(2));
    const contact = uuid(3);
    const conversations = Array.from({ length: 10 }, () => uuid(4));
    workspaces.push({ id, members, contact, conversations });
  }
  return workspaces;
}

class Results {
  constructor() {
    this.received = []; // [marker, receivedAt, commitMs from the update itself, or null]
    this.writes = new Map(); // marker → {sentAt, commitMs, counted}
  }

  record(marker, receivedAt, commitMs) {
    this.received.push([marker, receivedAt, commitMs]);
  }

  /** commit→update and write→update latencies (ms) of the counted writes, and the updates missed. */
  latencies(fanout) {
    const fromCommit = [];
    const fromWrite = [];
    for (const [marker, receivedAt, commitMs] of this.received) {
      const write = this.writes.get(marker);
      if (!write?.counted) continue;
      fromWrite.push(receivedAt - write.sentAt);
      fromCommit.push(receivedAt - (commitMs ?? write.commitMs));
    }
    const counted = [...this.writes.values()].filter((w) => w.counted).length;
    return { fromCommit, fromWrite, counted, missed: counted * fanout - fromCommit.length };
  }

  row(target, workspaces, fanout, members) {
    const fromCommit = [];
    const fromWrite = [];
    for (const [marker, receivedAt, commitMs] of this.received) {
      const write = this.writes.get(marker);
      if (!write?.counted) continue;
      fromWrite.push(receivedAt - write.sentAt);
      fromCommit.push(receivedAt - (commitMs ?? write.commitMs));
    }
    const a = Float64Array.from(fromCommit).sort();
    const b = Float64Array.from(fromWrite).sort();
    const counted = [...this.writes.values()].filter((w) => w.counted).length;
    const expected = counted * fanout;
    return `| ${target} | ${workspaces * fanout} | ${workspaces} × ${fanout} (${members}) | ${RATE} | ${counted} | ${a.length} | ${expected - a.length} | ` +
      `${fmt(quantile(a, 0.5))} | ${fmt(quantile(a, 0.95))} | ${fmt(quantile(a, 0.99))} | ${fmt(a[a.length - 1])} | ` +
      `${fmt(quantile(b, 0.5))} | ${fmt(quantile(b, 0.95))} | ${fmt(quantile(b, 0.99))} |`;
  }
}

/** Fires `write(seq)` RATE times a second for seq in [from, from + count) (open loop), then waits for stragglers. */
async function writeLoop(write, from, count) {
  const started = performance.now();
  const pending = [];
  for (let k = 0; k < count; k++) {
    const due = started + (k * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(write(from + k));
  }
  await Promise.all(pending);
  await sleep(SETTLE_MS);
}

/** A scenario's rounds on one stand-in: each round's writes are recorded in a Results of its own. */
function rounds(write, close) {
  const state = { results: new Results(), next: 0 };
  return {
    record: (...args) => state.results.record(...args),
    writes: () => state.results.writes,
    async round(count, counted) {
      state.results = new Results();
      state.counted = counted;
      await writeLoop((seq) => write(seq, counted), state.next, count);
      state.next += count;
      return state.results;
    },
    close,
  };
}

// ---------------------------------------------------------------- Convex

async function startConvex() {
  const dir = mkdtempSync(join(tmpdir(), "bench-realtime-convex-"));
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const kid = randomUUID();
  const issuer = "https://bench.supabase.co/auth/v1";
  const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid, alg: "ES256", use: "sig" }] });
  writeFileSync(join(dir, "env.json"), JSON.stringify({
    CRM_API_KEY: "bench", SUPABASE_JWT_ISSUER: issuer, SUPABASE_JWKS_URL: `data:text/plain;charset=utf-8;base64,${Buffer.from(jwks).toString("base64")}`,
  }));
  const adminKey = `bench|${randomUUID()}`;
  const child = spawn(process.execPath, [
    join(ROOT, "sandbox/convex_runtime/bin/convex-sandbox.mjs"), "--port", "0", "--site-port", "0",
    "--functions", join(ROOT, "convex"), "--data-dir", join(dir, "data"), "--env-file", join(dir, "env.json"), "--no-persist",
  ], { env: { ...process.env, CONVEX_ADMIN_KEY: adminKey }, stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolvePromise, reject) => {
    let out = "";
    child.on("exit", (code) => reject(new Error(`the runtime exited (${code})`)));
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /API http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (match) resolvePromise(Number(match[1]));
    });
  });
  const mint = (sub) => {
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid }));
    const body = b64url(JSON.stringify({ iss: issuer, sub, aud: "authenticated", role: "authenticated", iat: now, exp: now + 3600 }));
    return `${head}.${body}.${b64url(sign("sha256", Buffer.from(`${head}.${body}`), { key: privateKey, dsaEncoding: "ieee-p1363" }))}`;
  };
  return {
    port, adminKey, mint, pid: child.pid,
    stop: () => { child.kill("SIGTERM"); rmSync(dir, { recursive: true, force: true }); },
  };
}

async function convexScenario(convex, workspaceCount, fanout, memberCount) {
  const workspaces = dataset(workspaceCount, memberCount);
  const admin = { Authorization: `Convex ${convex.adminKey}` };
  const upsert = async (path, rows) => {
    for (let i = 0; i < rows.length; i += 1000) {
      const result = await httpJson(convex.port, "POST", "/api/mutation", admin, { path, args: { rows: rows.slice(i, i + 1000) }, format: "json" });
      if (result.status !== "success") throw new Error(`${path}: ${result.errorMessage}`);
    }
  };
  const t = 1_737_453_600_000;
  await upsert("migrate:upsertWorkspaces", workspaces.map((w, i) => ({ supabaseId: w.id, name: `W${i}`, slug: `w-${w.id}`, createdAt: t })));
  await upsert("migrate:upsertWorkspaceMembers", workspaces.flatMap((w) => w.members.map((m) => ({ supabaseId: uuid(5), workspaceId: w.id, userId: m, role: "agent", createdAt: t }))));
  await upsert("migrate:upsertContacts", workspaces.map((w) => ({ supabaseId: w.contact, workspaceId: w.id, phone: PHONE, name: "Budi", tags: [], createdAt: t, updatedAt: t })));
  await upsert("migrate:upsertConversations", workspaces.flatMap((w) => w.conversations.map((c, k) => ({
    supabaseId: c, workspaceId: w.id, contactId: w.contact, status: "open", unreadCount: 0, createdAt: t, lastMessageAt: t + k, lastMessagePreview: "seed",
  }))));

  let run = null; // the rounds, once the subscribers are in
  const url = `ws://127.0.0.1:${convex.port}/api/sync`;
  const subscribers = await inBatches(Array.from({ length: workspaceCount * fanout }, (_, i) => i), 50, (i) => new Promise((ready, fail) => {
    const workspace = workspaces[i % workspaceCount];
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let initial = true;
    ws.on("error", fail);
    ws.on("open", () => {
      ws.send(JSON.stringify({ type: "Connect", sessionId: randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect", clientTs: Date.now() }));
      ws.send(JSON.stringify({ type: "Authenticate", tokenType: "User", value: convex.mint(workspace.members[Math.floor(i / workspaceCount) % memberCount]), baseVersion: 0 }));
      ws.send(JSON.stringify({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [{ type: "Add", queryId: 0, udfPath: "conversations:inbox", args: [{ workspaceId: workspace.id }] }] }));
    });
    ws.on("message", (data) => {
      const receivedAt = wallMs();
      const message = JSON.parse(data);
      if (message.type !== "Transition") return;
      for (const m of message.modifications) {
        if (m.type === "QueryFailed") fail(new Error(m.errorMessage));
        if (m.type !== "QueryUpdated") continue;
        if (initial) {
          initial = false;
          ready(ws);
        } else {
          run?.record(m.value[0].lastMessagePreview, receivedAt, null);
        }
      }
    });
  }));

  const writer = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((r) => writer.once("open", r));
  writer.send(JSON.stringify({ type: "Connect", sessionId: randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect", clientTs: Date.now() }));
  writer.send(JSON.stringify({ type: "Authenticate", tokenType: "Admin", value: convex.adminKey, baseVersion: 0 }));
  const responses = new Map();
  writer.on("message", (data) => {
    const message = JSON.parse(data);
    if (message.type === "MutationResponse") responses.get(message.requestId)?.(message);
  });
  run = rounds((seq, counted) => new Promise((done) => {
    const marker = `bench ${seq}`;
    const workspace = workspaces[seq % workspaceCount];
    const write = { sentAt: wallMs(), commitMs: null, counted };
    run.writes().set(marker, write);
    responses.set(seq, (response) => {
      if (!response.success) throw new Error(response.result);
      write.commitMs = Number(Buffer.from(response.ts, "base64").readBigUInt64LE()) / 1e6;
      done();
    });
    writer.send(JSON.stringify({ type: "Mutation", requestId: seq, udfPath: "messages:appendOutbound", args: [{ workspaceId: workspace.id, phone: PHONE, content: marker }] }));
  }), () => { for (const ws of [...subscribers, writer]) ws.terminate(); });
  return run;
}

// ---------------------------------------------------------------- Supabase

function startSupabase() {
  const state = mkdtempSync(join(tmpdir(), "bench-realtime-supabase-"));
  const env = { ...process.env, SANDBOX_DIR: state };
  const up = spawnSync(opts.python, ["-m", "sandbox", "up", "--services", "postgres,supabase"], { cwd: ROOT, env, encoding: "utf8" });
  if (up.status !== 0) throw new Error(`sandbox up failed: ${up.stderr}`);
  const vars = Object.fromEntries(up.stdout.trim().split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
  const gatewayPid = Number(spawnSync("cat", [join(state, "supabase.pid")], { encoding: "utf8" }).stdout.trim());
  return {
    vars, gatewayPid,
    stop: () => {
      spawnSync(opts.python, ["-m", "sandbox", "down"], { cwd: ROOT, env, encoding: "utf8" });
      rmSync(state, { recursive: true, force: true });
    },
  };
}

function hs256(secret, claims) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  return `${head}.${body}.${createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url")}`;
}

async function supabaseScenario(supabase, workspaceCount, fanout, memberCount) {
  const { vars } = supabase;
  const port = Number(new URL(vars.SUPABASE_URL).port);
  const service = { apikey: vars.SUPABASE_SERVICE_ROLE_KEY, Authorization: `Bearer ${vars.SUPABASE_SERVICE_ROLE_KEY}`, Prefer: "return=minimal" };
  const workspaces = dataset(workspaceCount, memberCount);
  const insert = (table, rows) => httpJson(port, "POST", `/rest/v1/${table}`, service, rows);
  await insert("workspaces", workspaces.map((w, i) => ({ id: w.id, name: `W${i}`, slug: `w-${w.id}` })));
  await insert("workspace_members", workspaces.flatMap((w) => w.members.map((m) => ({ workspace_id: w.id, user_id: m, role: "agent" }))));
  await insert("contacts", workspaces.map((w) => ({ id: w.contact, workspace_id: w.id, phone: PHONE, name: "Budi" })));
  await insert("conversations", workspaces.flatMap((w) => w.conversations.map((c) => ({ id: c, workspace_id: w.id, contact_id: w.contact, last_message_preview: "seed" }))));

  let run = null; // the rounds, once the subscribers are in
  const url = `ws://127.0.0.1:${port}/realtime/v1/websocket?apikey=${vars.SUPABASE_ANON_KEY}&vsn=2.0.0`;
  const now = Math.floor(Date.now() / 1000);
  const subscribers = await inBatches(Array.from({ length: workspaceCount * fanout }, (_, i) => i), 50, (i) => new Promise((ready, fail) => {
    const workspace = workspaces[i % workspaceCount];
    const user = workspace.members[Math.floor(i / workspaceCount) % memberCount];
    const token = hs256(vars.SUPABASE_JWT_SECRET, { iss: "bench", sub: user, aud: "authenticated", role: "authenticated", iat: now, exp: now + 3600 });
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on("error", fail);
    ws.on("open", () => {
      const config = {
        broadcast: { ack: false, self: false }, presence: { key: "", enabled: false }, private: false,
        postgres_changes: [{ event: "UPDATE", schema: "public", table: "conversations", filter: `workspace_id=eq.${workspace.id}` }],
      };
      ws.send(JSON.stringify(["1", "1", "realtime:inbox", "phx_join", { config, access_token: token }]));
    });
    ws.on("message", (data) => {
      const receivedAt = wallMs();
      const [, , , event, payload] = JSON.parse(data);
      if (event === "system") {
        if (payload.status !== "ok") fail(new Error(payload.message));
        else ready(ws);
      } else if (event === "phx_reply" && payload.status !== "ok") {
        fail(new Error(JSON.stringify(payload.response)));
      } else if (event === "postgres_changes") {
        const { record, commit_timestamp: commit } = payload.data;
        run?.record(record.last_message_preview, receivedAt, Date.parse(commit));
      }
    });
  }));

  run = rounds(async (seq, counted) => {
    const marker = `bench ${seq}`;
    const workspace = workspaces[seq % workspaceCount];
    run.writes().set(marker, { sentAt: wallMs(), commitMs: null, counted });
    await httpJson(port, "PATCH", `/rest/v1/conversations?id=eq.${workspace.conversations[0]}`, service, {
      last_message_preview: marker, last_message_at: new Date().toISOString(),
    });
  }, () => { for (const ws of subscribers) ws.terminate(); });
  return run;
}

// ---------------------------------------------------------------- main

const LABEL = { convex: "Convex sync (runtime)", supabase: "Supabase Realtime (gateway)" };
const SHORT = { convex: "Convex", supabase: "Supabase" };
const p95 = (xs) => quantile(Float64Array.from(xs).sort(), 0.95);
const servers = {};
const rows = [];
const notes = [];
const comparisons = [];
const checks = [];
const perRound = [];
const perRoundWrites = Math.round(RATE * ROUND);
try {
  for (const target of TARGETS) servers[target] = target === "convex" ? await startConvex() : startSupabase();
  for (const [fanout, memberCount] of SCENARIOS) {
    const workspaceCount = Math.max(1, Math.floor(SUBSCRIPTIONS / fanout));
    const scenario = `${workspaceCount} × ${fanout} (${memberCount})`;
    const started = performance.now();
    const runs = {};
    for (const target of TARGETS) {
      runs[target] = await (target === "convex" ? convexScenario : supabaseScenario)(servers[target], workspaceCount, fanout, memberCount);
      await runs[target].round(WARMUP, false);
    }
    const pooled = Object.fromEntries(TARGETS.map((t) => [t, new Results()]));
    const p95s = Object.fromEntries(TARGETS.map((t) => [t, []]));
    for (let i = 0; i < PAIRS; i++) {
      // pairs alternate which stand-in goes first: A B, B A, ...
      for (const target of i % 2 === 0 ? TARGETS : [...TARGETS].reverse()) {
        const results = await runs[target].round(perRoundWrites, true);
        const lat = results.latencies(fanout);
        p95s[target].push(p95(lat.fromCommit));
        perRound.push({ scenario, target, pair: i, p95: p95(lat.fromCommit), n: lat.fromCommit.length, missed: lat.missed });
        for (const [k, v] of results.writes) pooled[target].writes.set(k, v);
        pooled[target].received.push(...results.received);
      }
    }
    for (const target of TARGETS) {
      runs[target].close();
      rows.push(pooled[target].row(LABEL[target], workspaceCount, fanout, memberCount));
      checks.push({ name: `${SHORT[target]}, ${scenario}: commit→update P95 per round`, values: p95s[target], unit: "ms", spec: ".1f",
        goal: { label: "P95 on loopback", threshold: 50, at_least: false } });
    }
    if (TARGETS.length === 2) {
      comparisons.push({ name: `${scenario}: commit→update P95`, a_label: SHORT[TARGETS[0]], b_label: SHORT[TARGETS[1]],
        a: p95s[TARGETS[0]], b: p95s[TARGETS[1]], unit: "ms", spec: ".1f" });
    }
    notes.push(`${scenario}: ${((performance.now() - started) / 1000).toFixed(1)} s including setup (load ${loadavg()[0].toFixed(2)})`);
    console.log(`  ${scenario}: ` + TARGETS.map((t) => `${SHORT[t]} P95 per round ${p95s[t].map((x) => x.toFixed(1)).join(" ")}`).join("; "));
  }
} finally {
  for (const server of Object.values(servers)) server.stop();
}
const table = [
  "| stand-in | subscriptions | workspaces × subscribers (members) | writes/s | writes | updates received | missed | commit→update p50 ms | p95 | p99 | max | write sent→update p50 ms | p95 | p99 |",
  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...rows,
].join("\n");
const setup = `${SUBSCRIPTIONS} subscriptions per stand-in, ${RATE} writes/s in rounds of ${ROUND} s (${perRoundWrites} writes) after ` +
  `${WARMUP} warm-up writes each, ${PAIRS} pairs of rounds per scenario; both stand-ins up at once; Node ${process.versions.node}. ` +
  "The P95 check is absolute by nature (a latency budget on loopback), not a ratio: it is decided on the median of the rounds' P95 with its interval.";
if (opts.json) {
  writeFileSync(opts.json, JSON.stringify({ pairs: PAIRS, setup, comparisons, checks, markdown: `All rounds pooled:\n\n${table}`, notes, rounds: perRound }));
} else {
  console.log(setup);
  console.log("");
  console.log(table);
  console.log("");
  for (const note of notes) console.log(`- ${note}`);
}
