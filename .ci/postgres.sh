#!/usr/bin/env bash
# Install (if missing) and start Debian's PostgreSQL, create the test role, print the URL to use:
#   export EXCHANGE_SYNC_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
# Idempotent: safe to run again on a machine where it already ran. Runs as root (apt, pg_ctlcluster).
# All progress messages go to stderr; stdout carries only the URL.
set -euo pipefail

ROLE="${EXCHANGE_SYNC_PG_ROLE:-exsync}"
PASSWORD="${EXCHANGE_SYNC_PG_PASSWORD:-exsync}"
PORT="${EXCHANGE_SYNC_PG_PORT:-5432}"

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs packages and starts the cluster)"; exit 1
fi

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    log "installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    log "creating cluster $VERSION/main"
    pg_createcluster "$VERSION" main --port "$PORT" >&2
fi
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    log "starting cluster $VERSION/main"
    pg_ctlcluster "$VERSION" main start >&2
fi
PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')"

# Wait until it accepts connections (the init scripts return before that on slow machines).
for _ in $(seq 1 60); do
    if su postgres -c "pg_isready -q -p $PORT"; then break; fi
    sleep 0.5
done
su postgres -c "pg_isready -q -p $PORT" || { log "postgresql did not become ready"; exit 1; }

# SUPERUSER: the tests create and drop a database per session and a schema per test.
su postgres -c "psql -v ON_ERROR_STOP=1 -q -p $PORT" >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE "$ROLE" LOGIN SUPERUSER PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE "$ROLE" LOGIN SUPERUSER PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL

echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/postgres"
