// The sync protocol on the wire, message by message, against a runtime
// assembled in process around a small project: versions, query set changes,
// read sets (which commits re-run which subscriptions), mutation responses
// and their Transitions, re-sent mutations, auth and protocol errors.
import { actionGeneric, defineSchema, defineTable, makeFunctionReference, mutationGeneric, queryGeneric } from "convex/server";
import { ConvexError, v } from "convex/values";
import { afterAll, beforeAll, expect, test } from "vitest";
import WebSocket from "ws";
import { Authenticator } from "../src/auth.mjs";
import { Executor } from "../src/executor.mjs";
import { Project } from "../src/modules.mjs";
import { ConvexHttpServer } from "../src/server.mjs";
import { Database } from "../src/storage.mjs";
import { decodeTs, encodeTs, SyncServer } from "../src/sync.mjs";
import { installSyscalls } from "../src/syscalls.mjs";

const ADMIN_KEY = "sync-test|0123456789abcdef";

const schema = defineSchema({
  items: defineTable({ group: v.string(), n: v.number() }).index("by_group", ["group", "n"]),
  counters: defineTable({ name: v.string(), value: v.number() }),
});

const items = {
  // The two highest n of a group: reads the group's range down to the second document.
  top2: queryGeneric({
    args: { group: v.string() },
    handler: async (ctx, { group }) =>
      (await ctx.db.query("items").withIndex("by_group", (q) => q.eq("group", group)).order("desc").take(2)).map((d) => d.n),
  }),
  count: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.query("counters").collect()).length }),
  whoami: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.auth.getUserIdentity())?.subject ?? null }),
  fails: queryGeneric({ args: {}, handler: async () => { throw new ConvexError({ code: "Nope" }); } }),
  add: mutationGeneric({
    args: { group: v.string(), n: v.number() },
    handler: async (ctx, args) => {
      await ctx.db.insert("items", args);
      return args.n;
    },
  }),
  // An action that writes through a mutation, as HTTP actions do.
  addTwice: actionGeneric({
    args: { group: v.string(), n: v.number() },
    handler: async (ctx, { group, n }) => {
      const add = makeFunctionReference("items:add");
      await ctx.runMutation(add, { group, n });
      await ctx.runMutation(add, { group, n: n + 1 });
      return "added";
    },
  }),
  bump: mutationGeneric({
    args: {},
    handler: async (ctx) => {
      await ctx.db.insert("counters", { name: "c", value: 1 });
      return null;
    },
  }),
};

let db;
let executor;
let sync;
let server;
let url;

beforeAll(async () => {
  const project = new Project(new Map([["items", items]]), schema, null);
  db = new Database(project.schemaJson);
  executor = new Executor({ db, project, deploymentName: "sync-test" });
  installSyscalls({
    db,
    deploymentName: "sync-test",
    runNested: (parent, args) => executor.runNested(parent, args),
    runFromAction: (parent, kind, args) => executor.runFromAction(parent, kind, args),
  });
  const authenticator = new Authenticator({ adminKey: ADMIN_KEY, providers: [], deploymentName: "sync-test" });
  sync = new SyncServer({ executor, authenticator, db });
  server = new ConvexHttpServer({ executor, authenticator, project, host: "127.0.0.1", port: 0, sitePort: 0, deploymentName: "sync-test", sync });
  await server.listen();
  url = `ws://127.0.0.1:${server.port}/api/sync`;
});

afterAll(async () => {
  await server.close();
});

/** A raw protocol client: sends objects, hands back parsed messages in order. */
class Peer {
  constructor(path = url) {
    this.ws = new WebSocket(path);
    this.queue = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => this.ws.on("close", (code) => resolve(code)));
    this.ws.on("message", (data) => {
      const message = JSON.parse(data.toString());
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.queue.push(message);
    });
    this.open = new Promise((resolve, reject) => this.ws.once("open", resolve).once("error", reject));
    this.querySet = 0;
  }

  async send(message) {
    await this.open;
    this.ws.send(JSON.stringify(message));
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Connect, then an Add for each [queryId, udfPath, args]; resolves to the first Transition. */
  async start(queries, { sessionId = crypto.randomUUID() } = {}) {
    await this.send({ type: "Connect", sessionId, connectionCount: 0, lastCloseReason: "InitialConnect", clientTs: Date.now() });
    return await this.modify(queries.map(([queryId, udfPath, args]) => ({ type: "Add", queryId, udfPath, args: [args] })));
  }

  async modify(modifications) {
    await this.send({ type: "ModifyQuerySet", baseVersion: this.querySet, newVersion: this.querySet + 1, modifications });
    this.querySet++;
    return await this.next();
  }

  close() {
    this.ws.close();
  }
}

/** Lets the runtime finish whatever a commit scheduled (the refresh runs after the current turn). */
const settle = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

const write = (path, argsJson) => executor.call({ path, argsJson });

test("the first Transition carries the initial results and the client's new query set version", async () => {
  await write("items:add", { group: "g1", n: 1 });
  const peer = new Peer();
  const transition = await peer.start([[0, "items:top2", { group: "g1" }], [1, "items.js:count", {}]]);
  expect(transition.type).toBe("Transition");
  expect(transition.startVersion).toEqual({ querySet: 0, identity: 0, ts: "AAAAAAAAAAA=" });
  expect(transition.endVersion).toMatchObject({ querySet: 1, identity: 0 });
  expect(decodeTs(transition.endVersion.ts)).toBe(db.ts);
  expect(transition.modifications).toEqual([
    { type: "QueryUpdated", queryId: 0, value: [1], logLines: [], journal: null },
    { type: "QueryUpdated", queryId: 1, value: 0, logLines: [], journal: null },
  ]);
  expect(typeof transition.serverTs).toBe("number");
  expect(typeof transition.clientClockSkew).toBe("number");
  peer.close();
});

test("a commit re-runs only the subscriptions whose index range it touched", async () => {
  for (const n of [10, 20, 30]) await write("items:add", { group: "g2", n });
  const peer = new Peer();
  const first = await peer.start([[0, "items:top2", { group: "g2" }]]);
  expect(first.modifications[0].value).toEqual([30, 20]);
  let version = first.endVersion;

  // Another group, and this group below the two documents read: nothing to send.
  await write("items:add", { group: "g3", n: 100 });
  await write("items:add", { group: "g2", n: 5 });
  await settle();
  // This group above them: one Transition with the new result, from the last version.
  const { ts } = await write("items:add", { group: "g2", n: 40 });
  const next = await peer.next();
  expect(next.type).toBe("Transition");
  expect(next.startVersion).toEqual(version);
  expect(next.endVersion).toEqual({ querySet: 1, identity: 0, ts: encodeTs(ts) });
  expect(next.modifications).toEqual([{ type: "QueryUpdated", queryId: 0, value: [40, 30], logLines: [], journal: null }]);
  version = next.endVersion;

  // A whole-table read (collect) is re-run by any write to that table.
  await peer.modify([{ type: "Add", queryId: 1, udfPath: "items:count", args: [{}] }]);
  await write("items:bump", {});
  const bumped = await peer.next();
  expect(bumped.modifications).toEqual([{ type: "QueryUpdated", queryId: 1, value: 1, logLines: [], journal: null }]);
  peer.close();
});

test("Remove answers QueryRemoved; a removed query is not re-run", async () => {
  const peer = new Peer();
  await peer.start([[0, "items:top2", { group: "g4" }], [1, "items:top2", { group: "g5" }]]);
  const removed = await peer.modify([{ type: "Remove", queryId: 0 }]);
  expect(removed.modifications).toEqual([{ type: "QueryRemoved", queryId: 0 }]);
  expect(removed.endVersion.querySet).toBe(2);
  await write("items:add", { group: "g4", n: 1 });
  await settle();
  await write("items:add", { group: "g5", n: 1 });
  const next = await peer.next();
  expect(next.modifications).toEqual([{ type: "QueryUpdated", queryId: 1, value: [1], logLines: [], journal: null }]);
  peer.close();
});

test("a mutation is answered, then confirmed by a Transition at or after its commit", async () => {
  const peer = new Peer();
  await peer.start([[0, "items:top2", { group: "g6" }]]);
  await peer.send({ type: "Mutation", requestId: 0, udfPath: "items:add", args: [{ group: "g6", n: 7 }] });
  const response = await peer.next();
  expect(response).toMatchObject({ type: "MutationResponse", requestId: 0, success: true, result: 7, logLines: [] });
  const transition = await peer.next();
  expect(transition.type).toBe("Transition");
  expect(decodeTs(transition.endVersion.ts) >= decodeTs(response.ts)).toBe(true);
  expect(transition.modifications).toEqual([{ type: "QueryUpdated", queryId: 0, value: [7], logLines: [], journal: null }]);

  // A mutation that changes nothing this client reads still gets its Transition.
  await peer.send({ type: "Mutation", requestId: 1, udfPath: "items:add", args: [{ group: "elsewhere", n: 1 }] });
  const second = await peer.next();
  expect(second).toMatchObject({ type: "MutationResponse", requestId: 1, success: true });
  const empty = await peer.next();
  expect(empty).toMatchObject({ type: "Transition", modifications: [] });
  expect(decodeTs(empty.endVersion.ts) >= decodeTs(second.ts)).toBe(true);

  // A failing mutation: the message string, no ts.
  await peer.send({ type: "Mutation", requestId: 2, udfPath: "items:add", args: [{ group: "g6" }] });
  const failed = await peer.next();
  expect(failed).toMatchObject({ type: "MutationResponse", requestId: 2, success: false, ts: null, logLines: [] });
  expect(failed.result).toMatch(/ArgumentValidationError/);
  peer.close();
});

test("an action is answered with ActionResponse; the writes it made reach the subscriptions", async () => {
  const peer = new Peer();
  await peer.start([[0, "items:top2", { group: "g8" }]]);
  await peer.send({ type: "Action", requestId: 0, udfPath: "items:addTwice", args: [{ group: "g8", n: 1 }] });
  const seen = [];
  for (;;) {
    const message = await peer.next();
    seen.push(message);
    if (message.type === "ActionResponse") break;
  }
  expect(seen.at(-1)).toEqual({ type: "ActionResponse", requestId: 0, success: true, result: "added", logLines: [] });
  // Each of its mutations committed on its own; the last state shows both.
  const values = seen.filter((m) => m.type === "Transition").flatMap((m) => m.modifications.map((x) => x.value));
  const after = await peer.next();
  expect(after.type).toBe("Transition");
  expect([...values, ...after.modifications.map((x) => x.value)].at(-1)).toEqual([2, 1]);
  peer.close();
});

test("a mutation re-sent by the same session after a reconnect runs once", async () => {
  const sessionId = crypto.randomUUID();
  const first = new Peer();
  await first.start([], { sessionId });
  await first.send({ type: "Mutation", requestId: 0, udfPath: "items:add", args: [{ group: "g7", n: 1 }] });
  const response = await first.next();
  first.close();
  const again = new Peer();
  await again.start([[0, "items:top2", { group: "g7" }]], { sessionId });
  await again.send({ type: "Mutation", requestId: 0, udfPath: "items:add", args: [{ group: "g7", n: 1 }] });
  expect(await again.next()).toEqual(response);
  const check = await executor.call({ path: "items:top2", argsJson: { group: "g7" } });
  expect(JSON.parse(check.valueJson)).toEqual([1]);
  again.close();
});

test("Authenticate raises the identity version; a bad admin key is an AuthError and the socket closes", async () => {
  const peer = new Peer();
  await peer.start([[0, "items:whoami", {}]]);
  await peer.send({ type: "Authenticate", tokenType: "Admin", value: ADMIN_KEY, baseVersion: 0, impersonating: { subject: "user-1", issuer: "https://issuer" } });
  const authed = await peer.next();
  expect(authed.startVersion.identity).toBe(0);
  expect(authed.endVersion.identity).toBe(1);
  expect(authed.modifications).toEqual([{ type: "QueryUpdated", queryId: 0, value: "user-1", logLines: [], journal: null }]);

  await peer.send({ type: "Authenticate", tokenType: "Admin", value: "wrong-key", baseVersion: 1 });
  const error = await peer.next();
  expect(error).toMatchObject({ type: "AuthError", baseVersion: 1, authUpdateAttempted: true });
  expect(error.error).toMatch(/deploy key was invalid/);
  await peer.closed;
});

test("a query that throws is QueryFailed with its ConvexError data; an unknown one too", async () => {
  const peer = new Peer();
  const transition = await peer.start([[0, "items:fails", {}], [1, "items:missing", {}]]);
  const [failed, missing] = transition.modifications;
  expect(failed).toMatchObject({ type: "QueryFailed", queryId: 0, errorData: { code: "Nope" }, logLines: [], journal: null });
  expect(missing).toMatchObject({ type: "QueryFailed", queryId: 1 });
  expect(missing.errorMessage).toMatch(/Could not find public function for 'items:missing'/);
  peer.close();
});

test("a query set version that does not follow the last one is a FatalError", async () => {
  const peer = new Peer();
  await peer.start([]);
  await peer.send({ type: "ModifyQuerySet", baseVersion: 5, newVersion: 6, modifications: [] });
  const fatal = await peer.next();
  expect(fatal).toEqual({ type: "FatalError", error: "Base version 5 passed up doesn't match the current version 1" });
  await peer.closed;
});

test("both paths upgrade; anything else under /api is 404", async () => {
  const npm = new Peer(`ws://127.0.0.1:${server.port}/api/1.48.0/sync`);
  expect((await npm.start([])).type).toBe("Transition");
  npm.close();
  const wrong = new WebSocket(`ws://127.0.0.1:${server.port}/api/other`);
  const status = await new Promise((resolve) => wrong.on("unexpected-response", (_req, res) => resolve(res.statusCode)));
  expect(status).toBe(404);
});

test("a quiet connection gets a Ping", async () => {
  const peer = new Peer();
  await peer.start([]);
  for (const session of sync.sessions) session.lastSentAt -= 16_000;
  sync._tick();
  expect(await peer.next()).toEqual({ type: "Ping" });
  peer.close();
});
