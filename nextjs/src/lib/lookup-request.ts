// What both lookup routes check before looking anything up, in this order:
// the server's CRM_API_KEY (500 when unset), the caller's `x-api-key` (401),
// then `workspaceId` (a uuid) and `phone` (E.164 digits without '+') (400).
// Errors are {"error": "<message>"}.

import { createHash, timingSafeEqual } from "node:crypto";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PHONE = /^[1-9][0-9]{5,14}$/;

export interface LookupRequest {
  workspaceId: string;
  phone: string;
  /** The server's CRM_API_KEY (the Convex route passes it on to the HTTP action). */
  apiKey: string;
}

/** A JSON response that is never cached; a string body is sent as it is (already JSON). */
export function json(status: number, body: unknown): Response {
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

/** The lookup's input, or the error response to send instead. */
export function readLookupRequest(request: Request): LookupRequest | Response {
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
  return { workspaceId, phone, apiKey };
}
