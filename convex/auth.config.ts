// Supabase-issued user JWTs, verified by Convex against the project's JWKS.
// Convex accepts only ES256 and RS256: the project must use Supabase's
// asymmetric JWT signing keys (the legacy HS256 secret cannot be verified).
// SUPABASE_JWT_ISSUER is `https://<project-ref>.supabase.co/auth/v1` and
// SUPABASE_JWKS_URL is that issuer + `/.well-known/jwks.json`.
import type { AuthConfig } from "convex/server";

export default {
  providers: [
    {
      type: "customJwt",
      issuer: process.env.SUPABASE_JWT_ISSUER!,
      jwks: process.env.SUPABASE_JWKS_URL!,
      algorithm: "ES256",
      applicationID: "authenticated",
    },
  ],
} satisfies AuthConfig;
