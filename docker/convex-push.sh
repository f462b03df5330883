#!/bin/sh
# Sets the Convex deployment's env vars, then pushes convex/, with the CLI in
# ./node_modules, to the self-hosted backend at CONVEX_URL. Runs in the
# repository root (docker/convex-deploy.sh starts it there). Env vars first:
# convex/auth.config.ts reads them when the functions are pushed.
set -eu
: "${CONVEX_URL:?convex-deploy: CONVEX_URL is not set}"
: "${CONVEX_ADMIN_KEY:?convex-deploy: CONVEX_ADMIN_KEY is not set}"
: "${CRM_API_KEY:?convex-deploy: CRM_API_KEY is not set}"
: "${SUPABASE_JWT_ISSUER:?convex-deploy: SUPABASE_JWT_ISSUER is not set}"
: "${SUPABASE_JWKS_URL:?convex-deploy: SUPABASE_JWKS_URL is not set}"

cli=$(node -p 'require("./node_modules/convex/package.json").version')
if [ -n "${CONVEX_CLI_VERSION:-}" ] && [ "$cli" != "$CONVEX_CLI_VERSION" ]; then
  echo "convex-deploy: the installed Convex CLI is $cli, but docker/convex-versions.env pairs" \
    "backend ${CONVEX_BACKEND_TAG:-?} with CLI $CONVEX_CLI_VERSION; move both pins together" >&2
  exit 1
fi

# A non-interactive one-shot: with CI set the CLI sends no crash reports.
CI=1
export CI
convex() { node node_modules/convex/bin/main.js "$@"; }

# The deployment is named by this file alone (--env-file): the CLI then reads
# neither CONVEX_DEPLOYMENT nor CONVEX_DEPLOY_KEY from the environment, .env or
# the team's .env.local (it refuses CONVEX_DEPLOYMENT next to a self-hosted URL).
# Single quotes: an unquoted # would start a dotenv comment.
selection=$(mktemp)
trap 'rm -f "$selection"' EXIT
trap 'exit 130' INT TERM
printf "CONVEX_SELF_HOSTED_URL='%s'\nCONVEX_SELF_HOSTED_ADMIN_KEY='%s'\n" "$CONVEX_URL" "$CONVEX_ADMIN_KEY" >"$selection"

# Values go in on stdin, never as arguments: a value starting with "-" would
# be parsed as an option, and arguments are visible to every process.
set_env() {
  printf '%s' "$2" | convex env set "$1" --env-file "$selection"
}
set_env CRM_API_KEY "$CRM_API_KEY"
set_env SUPABASE_JWT_ISSUER "$SUPABASE_JWT_ISSUER"
set_env SUPABASE_JWKS_URL "$SUPABASE_JWKS_URL"

# --codegen disable: convex/_generated is committed, and /app is the host's
# checkout. --skip-large-indexes-check: nobody is there to answer the prompt.
convex deploy --env-file "$selection" --yes --codegen disable --skip-large-indexes-check
echo "convex-deploy: functions deployed to $CONVEX_URL (Convex CLI $cli, backend ${CONVEX_BACKEND_TAG:-unpinned})"
