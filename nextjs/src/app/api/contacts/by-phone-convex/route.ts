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
// To use it in an app: copy this file into its src/app/api/contacts/by-phone-convex/,
// and src/lib/lookup-request.ts (the input and key checks both routes share).

import { json, readLookupRequest } from "@/lib/lookup-request";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

const TIMEOUT_MS = 30_000;

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
  const input = readLookupRequest(request);
  if (input instanceof Response) return input;

  const site = convexSiteUrl();
  if (!site) return json(500, { error: "CONVEX_SITE_URL (or CONVEX_URL) is not set on the server" });

  const query = new URLSearchParams({ workspaceId: input.workspaceId, phone: input.phone });
  let upstream: Response;
  let body: string;
  try {
    upstream = await fetch(`${site}/contacts/by-phone?${query}`, {
      headers: { "x-api-key": input.apiKey, accept: "application/json" },
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
