#!/bin/sh
# Runs once, when the database volume is created (after 00-bootstrap.sql):
# gives the PostgREST login role its password and applies supabase/migrations
# in order, recording each like the Supabase CLI does.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$POSTGRES_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
alter role authenticator with login password :'pw';
SQL
for file in "${MIGRATIONS_DIR:-/supabase/migrations}"/*.sql; do
  base=$(basename "$file" .sql)
  version=${base%%_*}
  name=${base#*_}
  echo "applying migration $base"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$file"
  psql -v ON_ERROR_STOP=1 -v version="$version" -v name="$name" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
insert into supabase_migrations.schema_migrations (version, name) values (:'version', :'name')
on conflict (version) do nothing;
SQL
done
