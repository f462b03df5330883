#!/bin/sh
# One-shot of docker-compose.yml: installs the locked Convex CLI into the
# node_modules volume (again only when package-lock.json changes), then sets
# the deployment's env vars and pushes convex/ (convex-push.sh).
set -eu
if [ -z "${CONVEX_ADMIN_KEY:-}" ]; then
  echo "convex-deploy: CONVEX_ADMIN_KEY is not set. Run" >&2
  echo "  docker compose up -d convex-backend && docker compose exec convex-backend ./generate_admin_key.sh" >&2
  echo "and put the printed key in .env as CONVEX_ADMIN_KEY." >&2
  exit 1
fi
cd /app
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.compose-stamp 2>/dev/null || true)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > node_modules/.compose-stamp
fi
exec sh docker/convex-push.sh
