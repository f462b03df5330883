// Starts the sandbox Convex runtime for the `runtime` test project: its real
// CLI, on free loopback ports, with a fresh data directory, an admin key,
// and an ES256 JWKS served by a tiny local server (as the sandbox's Supabase
// gateway serves it), so tests can sign in with Supabase-shaped tokens.
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { CRM_API_KEY } from "./backend.helper";

declare module "vitest" {
  export interface ProvidedContext {
    convexUrl: string;
    siteUrl: string;
    adminKey: string;
    jwtIssuer: string;
    jwtKid: string;
    jwtPrivateJwk: string;
    crmApiKey: string;
  }
}

let runtime: ChildProcess | undefined;
let jwksServer: Server | undefined;
let dataDir: string | undefined;

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject).listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
}

export async function setup(project: TestProject) {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const kid = randomUUID();
  const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid, alg: "ES256", use: "sig" }] });
  jwksServer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(jwks);
  });
  const jwksPort = await listen(jwksServer);
  const issuer = `http://127.0.0.1:${jwksPort}/auth/v1`;

  dataDir = mkdtempSync(join(tmpdir(), "convex-sandbox-test-"));
  const envFile = join(dataDir, "deployment-env.json");
  writeFileSync(
    envFile,
    JSON.stringify({ CRM_API_KEY, SUPABASE_JWT_ISSUER: issuer, SUPABASE_JWKS_URL: `${issuer}/.well-known/jwks.json` }),
  );
  const adminKey = `test|${randomBytes(16).toString("hex")}`;

  const child = spawn(
    process.execPath,
    [
      "sandbox/convex_runtime/bin/convex-sandbox.mjs",
      "--host", "127.0.0.1",
      "--port", "0",
      "--site-port", "0",
      "--functions", "convex",
      "--data-dir", join(dataDir, "data"),
      "--env-file", envFile,
      "--no-persist",
    ],
    { cwd: project.config.root, env: { ...process.env, CONVEX_ADMIN_KEY: adminKey }, stdio: ["ignore", "pipe", "pipe"] },
  );
  runtime = child;
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const ports = await new Promise<{ api: number; site: number }>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`runtime did not start in time: ${stderr}`)), 30_000);
    child.on("exit", (code) => reject(new Error(`runtime exited with ${code}: ${stderr}`)));
    child.stdout!.on("data", (chunk) => {
      stdout += chunk;
      const match = /API http:\/\/127\.0\.0\.1:(\d+), HTTP actions http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ api: Number(match[1]), site: Number(match[2]) });
      }
    });
  });

  project.provide("convexUrl", `http://127.0.0.1:${ports.api}`);
  project.provide("siteUrl", `http://127.0.0.1:${ports.site}`);
  project.provide("adminKey", adminKey);
  project.provide("jwtIssuer", issuer);
  project.provide("jwtKid", kid);
  project.provide("jwtPrivateJwk", JSON.stringify(privateKey.export({ format: "jwk" })));
  project.provide("crmApiKey", CRM_API_KEY);
}

export async function teardown() {
  if (runtime && runtime.exitCode === null) {
    const exited = new Promise((resolve) => runtime!.once("exit", resolve));
    runtime.kill("SIGTERM");
    await exited;
  }
  await new Promise((resolve) => (jwksServer ? jwksServer.close(resolve) : resolve(undefined)));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
