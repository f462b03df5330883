// The CLI as the Python launcher runs it: refuses to start without an admin
// key, and keeps its data across a SIGTERM and a restart.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";

const CLI = "sandbox/convex_runtime/bin/convex-sandbox.mjs";
const dir = mkdtempSync(join(tmpdir(), "convex-cli-"));
const envFile = join(dir, "deployment-env.json");
writeFileSync(envFile, JSON.stringify({ CRM_API_KEY: "k" }));
const ADMIN = "cli-test|0123";

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function start() {
  const child = spawn(process.execPath, [CLI, "--port", "0", "--site-port", "0", "--functions", "convex", "--data-dir", join(dir, "data"), "--env-file", envFile], {
    env: { ...process.env, CONVEX_ADMIN_KEY: ADMIN },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const ready = new Promise((resolve, reject) => {
    child.on("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
    const onData = (chunk) => {
      output += chunk;
      const match = /(\d+) documents loaded; API http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (match) resolve({ documents: Number(match[1]), url: `http://127.0.0.1:${match[2]}` });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
  });
  return { child, ready };
}

function stop(child) {
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.kill("SIGTERM");
  });
}

test("without CONVEX_ADMIN_KEY it exits with one clear line", () => {
  const env = { ...process.env };
  delete env.CONVEX_ADMIN_KEY;
  const result = spawnSync(process.execPath, [CLI, "--port", "0", "--site-port", "0"], { env, encoding: "utf8" });
  expect(result.status).toBe(2);
  expect(result.stderr.trim()).toBe("convex-sandbox: CONVEX_ADMIN_KEY is not set");
});

test("refuses a non-loopback host", () => {
  const result = spawnSync(process.execPath, [CLI, "--host", "0.0.0.0"], { env: { ...process.env, CONVEX_ADMIN_KEY: ADMIN }, encoding: "utf8" });
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/loopback/);
});

test("data survives SIGTERM and a restart", async () => {
  const first = start();
  const { url, documents } = await first.ready;
  expect(documents).toBe(0);
  const rows = [{ supabaseId: "00000000-0000-4000-8000-000000000001", name: "Eagle", slug: "eagle", createdAt: 1 }];
  const response = await fetch(`${url}/api/mutation`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Convex ${ADMIN}` },
    body: JSON.stringify({ path: "migrate:upsertWorkspaces", args: { rows }, format: "json" }),
  });
  expect((await response.json()).status).toBe("success");
  expect(await stop(first.child)).toEqual({ code: 0, signal: null });

  const second = start();
  const restarted = await second.ready;
  expect(restarted.documents).toBe(1);
  const again = await fetch(`${restarted.url}/api/mutation`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Convex ${ADMIN}` },
    body: JSON.stringify({ path: "migrate:upsertWorkspaces", args: { rows }, format: "json" }),
  });
  expect((await again.json()).value).toEqual({ inserted: 0, updated: 0, unchanged: 1 });
  await stop(second.child);
}, 30_000);
