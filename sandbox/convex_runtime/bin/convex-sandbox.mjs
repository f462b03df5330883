#!/usr/bin/env node
// The sandbox's Convex deployment: serves a project's convex/ functions over
// Convex's HTTP API on loopback. Started by `python -m sandbox up`:
//
//   node sandbox/convex_runtime/bin/convex-sandbox.mjs --host 127.0.0.1 \
//     --port 3210 --site-port 3211 --functions convex \
//     --data-dir .sandbox/convex --env-file .sandbox/convex/deployment-env.json
//
// The admin key comes from the environment (CONVEX_ADMIN_KEY), never argv.
// The env file is a JSON object of deployment env vars (what `npx convex env
// set` would hold), e.g. CRM_API_KEY, SUPABASE_JWT_ISSUER, SUPABASE_JWKS_URL.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startRuntime } from "../src/runtime.mjs";

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/;

function fail(message) {
  console.error(`convex-sandbox: ${message}`);
  process.exit(2);
}

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "3210" },
      "site-port": { type: "string", default: "3211" },
      functions: { type: "string", default: "convex" },
      "data-dir": { type: "string", default: ".sandbox/convex" },
      "env-file": { type: "string" },
      "no-persist": { type: "boolean", default: false },
    },
  }));
} catch (error) {
  fail(error.message);
}

if (!LOOPBACK.test(options.host)) fail(`--host must be a loopback address, not ${options.host}`);
const port = Number(options.port);
const sitePort = Number(options["site-port"]);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, not ${options.port}`);
if (!Number.isInteger(sitePort) || sitePort < 0 || sitePort > 65535) fail(`--site-port must be a port number, not ${options["site-port"]}`);

const adminKey = process.env.CONVEX_ADMIN_KEY;
if (!adminKey) fail("CONVEX_ADMIN_KEY is not set");

let deploymentEnv = {};
if (options["env-file"]) {
  try {
    deploymentEnv = JSON.parse(readFileSync(options["env-file"], "utf8"));
  } catch (error) {
    fail(`cannot read --env-file ${options["env-file"]}: ${error.message}`);
  }
  if (deploymentEnv === null || typeof deploymentEnv !== "object" || Array.isArray(deploymentEnv)) {
    fail(`--env-file ${options["env-file"]} must hold a JSON object of env vars`);
  }
  for (const [name, value] of Object.entries(deploymentEnv)) {
    if (typeof value !== "string") fail(`--env-file: ${name} must be a string`);
  }
}

let runtime;
try {
  runtime = await startRuntime({
    functionsDir: resolve(options.functions),
    dataDir: resolve(options["data-dir"]),
    host: options.host,
    port,
    sitePort,
    adminKey,
    deploymentEnv,
    persist: !options["no-persist"],
  });
} catch (error) {
  fail(error.errors ? error.errors.map((e) => e.text).join("; ") : error.message);
}

// A function's stray promise or timer callback must not take the deployment
// down (Convex would log it against the function): log it and keep serving.
process.on("unhandledRejection", (reason) => {
  console.error(`convex-sandbox: unhandled rejection in function code: ${reason?.stack ?? reason}`);
});
process.on("uncaughtException", (error) => {
  console.error(`convex-sandbox: uncaught exception in function code: ${error?.stack ?? error}`);
});

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    try {
      await runtime.stop();
      process.exit(0);
    } catch (error) {
      console.error(`convex-sandbox: could not save on ${signal}: ${error.message}`);
      process.exit(1);
    }
  });
}
