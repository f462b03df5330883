#!/bin/sh
# Renders kong.yml from the template (API keys come from the environment,
# never from a committed file), then starts Kong.
set -eu
: "${SUPABASE_ANON_KEY:?SUPABASE_ANON_KEY is not set}"
: "${SUPABASE_SERVICE_ROLE_KEY:?SUPABASE_SERVICE_ROLE_KEY is not set}"
# awk, not eval: keeps the YAML's quotes; only $NAME of a set variable is replaced.
awk '{
  out = ""; rest = $0
  while (match(rest, /\$[A-Za-z_][A-Za-z_0-9]*/)) {
    name = substr(rest, RSTART + 1, RLENGTH - 1)
    if (name in ENVIRON) out = out substr(rest, 1, RSTART - 1) ENVIRON[name]
    else out = out substr(rest, 1, RSTART + RLENGTH - 1)
    rest = substr(rest, RSTART + RLENGTH)
  }
  print out rest
}' "${KONG_CONFIG_TEMPLATE:-/home/kong/kong.yml.template}" > "$KONG_DECLARATIVE_CONFIG"
# KONG_RENDER_ONLY=1: stop after rendering (the tests check the result).
if [ "${KONG_RENDER_ONLY:-}" = 1 ]; then exit 0; fi
exec /docker-entrypoint.sh kong docker-start
