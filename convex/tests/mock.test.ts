/// <reference types="vite/client" />
// The function suite under convex-test, the official Convex mock.
import { convexTest } from "convex-test";
import { vi } from "vitest";
import schema from "../schema";
import { CRM_API_KEY, type Backend, type Caller } from "./backend.helper";
import { functionSuite } from "./functions.suite";

const modules = import.meta.glob(["../**/*.ts", "../_generated/*.js", "!../tests/**", "!../**/*.d.ts"]);

vi.stubEnv("CRM_API_KEY", CRM_API_KEY);

const ISSUER = "https://test-project.supabase.co/auth/v1";

functionSuite(async (): Promise<Backend> => {
  const t = convexTest(schema, modules);
  return {
    kind: "mock",
    anonymous: t as unknown as Caller,
    admin: t as unknown as Caller,
    asUser: (userId) =>
      t.withIdentity({ subject: userId, issuer: ISSUER, tokenIdentifier: `${ISSUER}|${userId}` }) as unknown as Caller,
    fetch: (path, init) => t.fetch(path, init),
    crmApiKey: CRM_API_KEY,
  };
});
