// One interface over the two backends the function suite runs against:
// convex-test (the official mock) and the sandbox runtime over HTTP.
import type { FunctionReference } from "convex/server";

export type Caller = {
  query<F extends FunctionReference<"query", any>>(ref: F, args: F["_args"]): Promise<F["_returnType"]>;
  mutation<F extends FunctionReference<"mutation", any>>(ref: F, args: F["_args"]): Promise<F["_returnType"]>;
};

export interface Backend {
  kind: "mock" | "runtime";
  /** No identity. */
  anonymous: Caller;
  /** May call internal functions (admin key on the runtime). */
  admin: Caller;
  /** Signed in as this Supabase user (JWT `sub`). */
  asUser(userId: string): Caller;
  /** An HTTP action request (path with query string). */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  crmApiKey: string;
}

export const CRM_API_KEY = "test-crm-api-key";
