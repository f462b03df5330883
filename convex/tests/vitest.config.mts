// Vitest projects for `npm test`:
//  - mock:    the function suite under convex-test (the official mock);
//  - runtime: the same suite over HTTP (ConvexHttpClient) against the sandbox
//             runtime, started on free loopback ports by runtime.setup.ts;
//  - runtime-unit: the runtime's own building blocks.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL("../..", import.meta.url));

export default defineConfig({
  test: {
    root,
    // The shared suite runs twice; keep the total well inside CI's budget.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: "mock",
          environment: "edge-runtime",
          include: ["convex/tests/mock.test.ts", "convex/tests/fingerprint.test.ts"],
          server: { deps: { inline: ["convex-test"] } },
        },
      },
      {
        extends: true,
        test: {
          name: "runtime",
          environment: "node",
          include: ["convex/tests/runtime*.test.ts"],
          globalSetup: ["convex/tests/runtime.setup.ts"],
          // The files share one runtime (one database): run them one after another.
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: "runtime-unit",
          environment: "node",
          include: ["sandbox/convex_runtime/test/*.test.mjs"],
        },
      },
    ],
  },
});
