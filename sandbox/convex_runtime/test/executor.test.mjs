// The executor's transaction guarantees, with hand-made functions shaped like
// the ones `convex/server` registers: a failing or timed-out mutation leaves
// no write behind, and mutations never interleave.
import { beforeAll, expect, test } from "vitest";
import { Executor } from "../src/executor.mjs";
import { Database } from "../src/storage.mjs";
import { installSyscalls } from "../src/syscalls.mjs";

const db = new Database(null);
const functions = new Map();
const project = { lookup: (path) => functions.get(path) };
const executor = new Executor({ db, project, deploymentName: "test", functionTimeoutMs: 200 });

const insert = (value) => Convex.asyncSyscall("1.0/insert", JSON.stringify({ table: "items", value }));
const count = () => db.tables.get("items")?.count ?? 0;

function mutation(path, body) {
  functions.set(path, {
    path, kind: "mutation", visibility: "public", argsValidator: { type: "any" }, returnsValidator: null,
    fn: { invokeMutation: async (argsText) => JSON.stringify((await body(JSON.parse(argsText)[0])) ?? null) },
  });
}

beforeAll(() => {
  installSyscalls({ db, deploymentName: "test", runNested: () => null, runFromAction: () => null });
  mutation("m:ok", async ({ n }) => {
    for (let i = 0; i < n; i++) await insert({ i });
    return n;
  });
  mutation("m:throwsAfterWrites", async () => {
    await insert({ i: 1 });
    await insert({ i: 2 });
    throw new Error("boom");
  });
  mutation("m:hangs", async () => {
    await insert({ i: 1 });
    await new Promise(() => {});
  });
  mutation("m:slowPair", async ({ tag }) => {
    await insert({ tag, step: 1 });
    await new Promise((r) => setTimeout(r, 20));
    await insert({ tag, step: 2 });
  });
});

test("a throwing mutation leaves no partial write", async () => {
  const before = count();
  const outcome = await executor.call({ path: "m:throwsAfterWrites", argsJson: {} });
  expect(outcome.status).toBe("error");
  expect(outcome.errorMessage).toMatch(/Uncaught Error: boom/);
  expect(count()).toBe(before);
  expect((await executor.call({ path: "m:ok", argsJson: { n: 3 } })).valueJson).toBe("3");
  expect(count()).toBe(before + 3);
});

test("a mutation that runs past the time limit is rolled back and fails", async () => {
  const before = count();
  const outcome = await executor.call({ path: "m:hangs", argsJson: {} });
  expect(outcome.status).toBe("error");
  expect(outcome.errorMessage).toMatch(/timed out/);
  expect(count()).toBe(before);
  expect((await executor.call({ path: "m:ok", argsJson: { n: 1 } })).status).toBe("success");
});

test("concurrent mutations run one after another", async () => {
  await Promise.all(["a", "b", "c"].map((tag) => executor.call({ path: "m:slowPair", argsJson: { tag } })));
  const order = [...db.tables.get("items").indexes.get("by_creation_time").list.all()]
    .map((key) => db.get(key[1]).value)
    .filter((doc) => doc.tag)
    .map((doc) => `${doc.tag}${doc.step}`);
  expect(order).toEqual(["a1", "a2", "b1", "b2", "c1", "c2"]);
});
