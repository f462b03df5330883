// The official npm ConvexClient (the WebSocket sync protocol) against the
// sandbox runtime: a member subscribes to the inbox and sees the initial
// value and every write, whether it comes over HTTP or from the client's
// own mutation; a non-member's subscription fails; a bad token is refused.
import { ConvexClient } from "convex/browser";
import { afterEach, describe, expect, test } from "vitest";
import { inject } from "vitest";
import { api } from "../_generated/api";
import { loadFixtures, PHONE, USER_A, USER_B, V1, V2, V3, W1 } from "./fixtures.data";
import { mintJwt, runtimeBackend } from "./runtime.helper";

const clients: ConvexClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

function connect(): ConvexClient {
  const client = new ConvexClient(inject("convexUrl"), { logger: false });
  clients.push(client);
  return client;
}

/** The values a subscription delivers, awaited one by one. */
class Updates<T> {
  private values: T[] = [];
  private waiters: ((value: T) => void)[] = [];
  push = (value: T) => {
    const waiter = this.waiters.shift();
    if (waiter) waiter(value);
    else this.values.push(value);
  };
  next(): Promise<T> {
    const value = this.values.shift();
    if (value !== undefined) return Promise.resolve(value);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

describe("ConvexClient over /api/<version>/sync", () => {
  test("a member receives the inbox, then every write: over HTTP and from its own mutation", async () => {
    const backend = await runtimeBackend();
    await loadFixtures(backend);
    const client = connect();
    client.setAuth(async () => mintJwt(USER_A));
    const updates = new Updates<any>();
    client.onUpdate(api.conversations.inbox, { workspaceId: W1, limit: 3 }, updates.push);

    const initial = await updates.next();
    expect(initial.map((row: any) => row.id)).toEqual([V2, V3, V1]);
    expect(initial[0]).toMatchObject({ lastMessagePreview: `preview ${1_737_453_600_000 + 3000}`, unreadCount: 2 });

    const response = await backend.fetch("/messages/outbound", {
      method: "POST",
      headers: { "x-api-key": backend.crmApiKey, "content-type": "application/json" },
      body: JSON.stringify({ workspaceId: W1, phone: PHONE, content: "sent by the assistant" }),
    });
    expect(response.status).toBe(201);
    expect((await updates.next())[0]).toMatchObject({ id: V2, lastMessagePreview: "sent by the assistant" });

    // The mutation resolves only once a Transition covering its commit arrived,
    // so the subscription has seen the write by then.
    const appended = await client.mutation(api.messages.append, { workspaceId: W1, phone: PHONE, content: "typed by an agent" });
    expect(appended.conversationId).toBe(V2);
    expect((await updates.next())[0]).toMatchObject({ id: V2, lastMessagePreview: "typed by an agent" });
    expect(client.connectionState().isWebSocketConnected).toBe(true);
  });

  test("a non-member's subscription fails with the function's Forbidden error", async () => {
    const backend = await runtimeBackend();
    await loadFixtures(backend);
    const client = connect();
    client.setAuth(async () => mintJwt(USER_B));
    const error = await new Promise<any>((resolve) => {
      client.onUpdate(api.conversations.inbox, { workspaceId: W1 }, () => resolve(new Error("expected a failure")), resolve);
    });
    expect(error.data).toMatchObject({ code: "Forbidden" });
  });

  test("a token the deployment cannot verify is refused", async () => {
    const client = connect();
    const authenticated = await new Promise<boolean>((resolve) => {
      client.setAuth(async () => mintJwt(USER_A, {}, { kid: "not-in-the-jwks" }), resolve);
    });
    expect(authenticated).toBe(false);
  });
});
