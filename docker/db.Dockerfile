# The stack's PostgreSQL (docker-compose.yml `db`, build context docker/db/):
# the official image plus wal2json, the logical decoding output plugin Supabase
# Realtime reads the WAL with (its postgres_cdc_rls extension creates a
# temporary slot with pg_create_logical_replication_slot(name, 'wal2json', true)
# and polls it). Supabase's own postgres image ships it; the official one does
# not. The package is the PGDG build for the image's PG_MAJOR, from the apt
# repository the official image is installed from (its sources list stays in
# the image).
FROM postgres:17.6-bookworm
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}-wal2json"; \
    rm -rf /var/lib/apt/lists/*; \
    test -f "/usr/lib/postgresql/${PG_MAJOR}/lib/wal2json.so"
