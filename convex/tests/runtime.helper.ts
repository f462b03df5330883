// The runtime backend for the function suite: the official ConvexHttpClient
// against the sandbox runtime started by runtime.setup.ts.
import { createPrivateKey, sign } from "node:crypto";
import { ConvexHttpClient } from "convex/browser";
import type { FunctionReference } from "convex/server";
import { inject } from "vitest";
import { internal } from "../_generated/api";
import type { Backend, Caller } from "./backend.helper";

export const TABLES = ["contactNotes", "messages", "conversations", "contacts", "workspaceMembers", "workspaces"] as const;

const b64url = (value: string | Buffer) => Buffer.from(value).toString("base64url");

/** A token shaped like one Supabase Auth issues, signed with the test JWKS key. */
export function mintJwt(sub: string, overrides: Record<string, unknown> = {}, header: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: inject("jwtIssuer"), sub, aud: "authenticated", role: "authenticated", email: "agent@example.com",
    iat: now, exp: now + 3600, ...overrides,
  };
  const head = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid: inject("jwtKid"), ...header }));
  const body = b64url(JSON.stringify(claims));
  const key = createPrivateKey({ key: JSON.parse(inject("jwtPrivateJwk")), format: "jwk" });
  const signature = sign("sha256", Buffer.from(`${head}.${body}`), { key, dsaEncoding: "ieee-p1363" });
  return `${head}.${body}.${b64url(signature)}`;
}

export function client(auth?: { admin?: boolean; token?: string }): ConvexHttpClient {
  const c = new ConvexHttpClient(inject("convexUrl"), { logger: false });
  if (auth?.admin) (c as any).setAdminAuth(inject("adminKey"));
  if (auth?.token) c.setAuth(auth.token);
  return c;
}

/** Empties every table, so each test starts like a fresh convex-test instance. */
export async function clearAll(admin: ConvexHttpClient): Promise<void> {
  // An admin client may call internal functions; the client's types only allow public ones.
  const clearTable = internal.migrate.clearTable as unknown as FunctionReference<"mutation">;
  for (const table of TABLES) {
    for (;;) {
      const { hasMore } = await admin.mutation(clearTable, { table, batchSize: 4000 });
      if (!hasMore) break;
    }
  }
}

export async function runtimeBackend(): Promise<Backend> {
  const admin = client({ admin: true });
  await clearAll(admin);
  return {
    kind: "runtime",
    anonymous: client() as Caller,
    admin: admin as unknown as Caller,
    asUser: (userId) => client({ token: mintJwt(userId) }) as Caller,
    fetch: (path, init) => fetch(`${inject("siteUrl")}${path}`, init),
    crmApiKey: inject("crmApiKey"),
  };
}
