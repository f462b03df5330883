#!/bin/sh
# One-shot: sets the deployment's env vars on the self-hosted Convex backend,
# then pushes convex/ to it. Env vars first: convex/auth.config.ts reads them
# when the functions are pushed.
set -eu
if [ -z "${CONVEX_ADMIN_KEY:-}" ]; then
  echo "convex-deploy: CONVEX_ADMIN_KEY is not set. Run" >&2
  echo "  docker compose up -d convex-backend && docker compose exec convex-backend ./generate_admin_key.sh" >&2
  echo "and put the printed key in .env as CONVEX_ADMIN_KEY." >&2
  exit 1
fi
cd /app
npm ci --no-audit --no-fund --loglevel=error
export CONVEX_SELF_HOSTED_URL="$CONVEX_URL"
export CONVEX_SELF_HOSTED_ADMIN_KEY="$CONVEX_ADMIN_KEY"
unset CONVEX_DEPLOYMENT  # the CLI refuses it together with the self-hosted pair
npx convex env set CRM_API_KEY "$CRM_API_KEY"
npx convex env set SUPABASE_JWT_ISSUER "$SUPABASE_JWT_ISSUER"
npx convex env set SUPABASE_JWKS_URL "$SUPABASE_JWKS_URL"
npx convex deploy --yes
echo "convex-deploy: functions deployed to $CONVEX_URL"
