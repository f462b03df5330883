// GET /api/contacts/by-phone-convex?workspaceId=<uuid>&phone=<digits>
//
// The same contact-context lookup in ONE Convex call: the deployment's HTTP
// action `GET /contacts/by-phone` (convex/http.ts), which runs the lookup as
// one query and returns the canonical shape. Guarded by the `x-api-key`
// header (CRM_API_KEY); the same key authorises the call to Convex.
//
// Why the HTTP action and not ConvexHttpClient: the assistant calls this route
// with an API key, not as a signed-in user. ConvexHttpClient can run the public
// query `contacts:getContextByPhone` only with a workspace member's access
// token (one user, one workspace, expiring hourly), and the API-key variant is
// an internal query that only the HTTP action or an admin key can reach; an
// app server should not hold the deployment's admin key. This is also the path
// the load test's `convex_http` target measures directly, so
// api_convex - convex_http is the cost of the Next.js hop.
//
// Env: CONVEX_SITE_URL (https://<name>.convex.site; derived from CONVEX_URL /
// NEXT_PUBLIC_CONVEX_URL when unset), CRM_API_KEY (also set on the Convex deployment).
// Responses: 200 lookup, 400 bad input, 401 bad key, 404 {"error":"contact not found"},
// 500 misconfigured, 502 Convex error. Errors are {"error": "<message>"}.
//
// Self-contained on purpose: copy this file into an app's src/app/api/contacts/by-phone-convex/.

import { createHash, timingSafeEqual } from "node:crypto";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PHONE = /^[1-9][0-9]{5,14}$/;
const TIMEOUT_MS = 30_000;

function json(status: number, body: unknown): Response {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
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

// https://x.convex.cloud -> https://x.convex.site; self-hosted :3210 -> :3211.
function convexSiteUrl(): string | null {
  const explicit = process.env.CONVEX_SITE_URL;
  if (explicit) return explicit.replace(/\/+$/, "");
  const cloud = process.env.CONVEX_URL ?? process.env.NEXT_PUBLIC_CONVEX_URL;
  if (!cloud) return null;
  const url = new URL(cloud);
  if (url.hostname.endsWith(".convex.cloud")) {
    url.hostname = url.hostname.replace(/\.convex\.cloud$/, ".convex.site");
  } else if (url.port === "3210") {
    url.port = "3211";
  } else {
    return null;
  }
  return url.origin;
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

  const site = convexSiteUrl();
  if (!site) return json(500, { error: "CONVEX_SITE_URL (or CONVEX_URL) is not set on the server" });

  const query = new URLSearchParams({ workspaceId, phone });
  let upstream: Response;
  let body: string;
  try {
    upstream = await fetch(`${site}/contacts/by-phone?${query}`, {
      headers: { "x-api-key": apiKey, accept: "application/json" },
      cache: "no-store", // Next.js would otherwise consider caching the fetch
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    body = await upstream.text();
  } catch (err) {
    console.error(`by-phone-convex: ${err instanceof Error ? err.message : String(err)}`);
    return json(502, { error: "convex request failed" });
  }
  // The HTTP action already answers in this route's shapes; pass them through.
  if (upstream.status === 200) return json(200, body);
  if (upstream.status === 404) return json(404, { error: "contact not found" });
  console.error(`by-phone-convex: Convex answered ${upstream.status}: ${body.slice(0, 200)}`);
  return json(502, { error: "convex request failed" });
}
