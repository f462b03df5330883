// GET /api/health[?build=<hash>]: liveness for the sandbox launcher. With
// `build`, answers 503 unless this server runs that build of the sources, so
// a server left running from an older build is restarted rather than reused.
// Not part of the two routes a team copies.

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

// Inlined at build time (next.config.mjs `env`).
const BUILD = process.env.APP_BUILD_HASH ?? "";

export function GET(request: Request): Response {
  const wanted = new URL(request.url).searchParams.get("build");
  const ok = !wanted || wanted === BUILD;
  return Response.json({ ok, build: BUILD }, { status: ok ? 200 : 503, headers: { "cache-control": "no-store" } });
}
