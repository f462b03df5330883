// HTTP actions on the deployment's .convex.site host, for callers holding
// CRM_API_KEY (the AI assistant). Errors are JSON {"error": "<message>"}.
import { httpRouter } from "convex/server";
import { ConvexError } from "convex/values";
import { internal } from "./_generated/api";
import { type ActionCtx, httpAction } from "./_generated/server";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PHONE = /^[1-9][0-9]{5,14}$/;

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

/**
 * Compares in time that depends only on the lengths, not on where the strings
 * differ (the Convex runtime has no node:crypto timingSafeEqual).
 */
export function constantTimeEqual(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let difference = a.length ^ b.length;
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) {
    difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  }
  return difference === 0;
}

/** null when the request carries the right key, else the error response. */
function checkApiKey(request: Request): Response | null {
  const expected = process.env.CRM_API_KEY;
  if (!expected) return json(500, { error: "CRM_API_KEY is not set on the deployment" });
  const given = request.headers.get("x-api-key");
  if (given === null || !constantTimeEqual(given, expected)) {
    return json(401, { error: "missing or invalid x-api-key" });
  }
  return null;
}

type LookupInput = { workspaceId: string; phone: string };

function checkLookupInput(input: Record<string, unknown>): LookupInput | string {
  const { workspaceId, phone } = input;
  if (typeof workspaceId !== "string" || !UUID.test(workspaceId)) return "workspaceId must be a uuid";
  if (typeof phone !== "string" || !PHONE.test(phone)) return "phone must be E.164 digits without '+'";
  return { workspaceId, phone };
}

async function readJsonObject(request: Request): Promise<Record<string, unknown> | null> {
  try {
    const body: unknown = await request.json();
    return typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The canonical lookup for checked input: 200, or 400 / 404 with a JSON error. */
async function lookupResponse(ctx: ActionCtx, raw: Record<string, unknown>): Promise<Response> {
  const input = checkLookupInput(raw);
  if (typeof input === "string") return json(400, { error: input });
  const context = await ctx.runQuery(internal.contacts.getContextByPhoneInternal, input);
  return context === null ? json(404, { error: "contact not found" }) : json(200, context);
}

const lookupGet = httpAction(async (ctx, request) => {
  const denied = checkApiKey(request);
  if (denied) return denied;
  const params = new URL(request.url).searchParams;
  return await lookupResponse(ctx, { workspaceId: params.get("workspaceId"), phone: params.get("phone") });
});

const lookupPost = httpAction(async (ctx, request) => {
  const denied = checkApiKey(request);
  if (denied) return denied;
  const body = await readJsonObject(request);
  if (body === null) return json(400, { error: "body must be a JSON object" });
  return await lookupResponse(ctx, body);
});

const outboundPost = httpAction(async (ctx, request) => {
  const denied = checkApiKey(request);
  if (denied) return denied;
  const body = await readJsonObject(request);
  if (body === null) return json(400, { error: "body must be a JSON object" });
  const input = checkLookupInput(body);
  if (typeof input === "string") return json(400, { error: input });
  const content = body.content;
  if (typeof content !== "string" || content.length === 0 || content.length > 16_384) {
    return json(400, { error: "content must be a string of 1 to 16384 characters" });
  }
  try {
    const result = await ctx.runMutation(internal.messages.appendOutbound, { ...input, content });
    return json(201, result);
  } catch (error) {
    if (error instanceof ConvexError && (error.data as { code?: string })?.code === "NotFound") {
      return json(404, { error: (error.data as { message: string }).message });
    }
    throw error;
  }
});

const methodNotAllowed = (allowed: string) =>
  httpAction(async () => {
    const response = json(405, { error: "method not allowed" });
    response.headers.set("allow", allowed);
    return response;
  });

const http = httpRouter();
http.route({ path: "/contacts/by-phone", method: "GET", handler: lookupGet });
http.route({ path: "/contacts/by-phone", method: "POST", handler: lookupPost });
http.route({ path: "/messages/outbound", method: "POST", handler: outboundPost });
for (const method of ["PUT", "PATCH", "DELETE"] as const) {
  http.route({ path: "/contacts/by-phone", method, handler: methodNotAllowed("GET, POST") });
  http.route({ path: "/messages/outbound", method, handler: methodNotAllowed("POST") });
}
http.route({ path: "/messages/outbound", method: "GET", handler: methodNotAllowed("POST") });

export default http;
