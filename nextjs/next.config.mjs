import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** @type {import("next").NextConfig} */
const nextConfig = {
  // The repository root has its own package-lock.json (the Convex functions);
  // pin the app root so Next does not guess the parent folder.
  turbopack: { root: here },
  outputFileTracingRoot: here,
  poweredByHeader: false,
  // Lets /api/health tell which sources this build was made from (sandbox/nextjs.py).
  env: { APP_BUILD_HASH: process.env.APP_BUILD_HASH ?? "" },
};

export default nextConfig;
