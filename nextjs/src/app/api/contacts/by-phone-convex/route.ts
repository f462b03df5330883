// GET /api/contacts/by-phone-convex?workspaceId=<uuid>&phone=<digits>
//
// The same contact-context lookup in ONE Convex call: the public query
// `contacts:getContextByPhone` through ConvexHttpClient, which returns the
// canonical lookup shape (or null). Guarded by the `x-api-key` header (CRM_API_KEY).
//
// The query is member-checked, so the client authenticates as a workspace
// member with CONVEX_AUTH_TOKEN (a Supabase-issued JWT, which Convex verifies
// against Supabase's JWKS). The internal variant would need the deployment's
// admin key in the app server; a user token keeps the app at member privileges.
//
// Env: CONVEX_URL (or NEXT_PUBLIC_CONVEX_URL), CONVEX_AUTH_TOKEN, CRM_API_KEY.
// Responses: 200 lookup, 400 bad input, 401 bad key, 404 {"error":"contact not found"},
// 500 misconfigured, 502 Convex error. Errors are {"error": "<message>"}.
//
// Self-contained on purpose: copy this file into an app's src/app/api/contacts/by-phone-convex/.

import { createHash, timingSafeEqual } from "node:crypto";
import { ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PHONE = /^[1-9][0-9]{5,14}$/;

// Named by string so this file needs no `convex/_generated` import; in an app
// that has one, `api.contacts.getContextByPhone` is the same reference.
const getContextByPhone = makeFunctionReference<"query", { workspaceId: string; phone: string }, unknown>(
  "contacts:getContextByPhone",
);

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

// Hashing first makes both sides the same length, so timingSafeEqual never
// throws and the comparison time does not depend on where the keys differ.
function keyMatches(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

let client: ConvexHttpClient | null = null;

// One client per server process; the token is fixed for the process's life.
function convex(): ConvexHttpClient | null {
  if (client) return client;
  const url = process.env.CONVEX_URL ?? process.env.NEXT_PUBLIC_CONVEX_URL;
  const token = process.env.CONVEX_AUTH_TOKEN;
  if (!url || !token) return null;
  // Next.js patches fetch with a data cache; every lookup must reach Convex.
  const fetchNoStore: typeof fetch = (input, init) => fetch(input, { ...init, cache: "no-store" });
  client = new ConvexHttpClient(url, { logger: false, fetch: fetchNoStore });
  client.setAuth(token);
  return client;
}

export async function GET(request: Request): Promise<Response> {
  const apiKey = process.env.CRM_API_KEY;
  if (!apiKey) return json(500, { error: "CRM_API_KEY is not set on the server" });
  if (!keyMatches(request.headers.get("x-api-key"), apiKey)) {
    return json(401, { error: "missing or invalid x-api-key" });
  }

  const params = new URL(request.url).searchParams;
  const workspaceId = params.get("workspaceId") ?? "";
  const phone = params.get("phone") ?? "";
  if (!UUID.test(workspaceId)) return json(400, { error: "workspaceId must be a uuid" });
  if (!PHONE.test(phone)) return json(400, { error: "phone must be E.164 digits without '+'" });

  const db = convex();
  if (!db) return json(500, { error: "CONVEX_URL or CONVEX_AUTH_TOKEN is not set on the server" });

  try {
    const result = await db.query(getContextByPhone, { workspaceId, phone });
    return result === null ? json(404, { error: "contact not found" }) : json(200, result);
  } catch (err) {
    console.error(`by-phone-convex: ${err instanceof Error ? err.message : String(err)}`);
    return json(502, { error: "convex request failed" });
  }
}
