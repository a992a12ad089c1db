#!/bin/sh
# Creates Temporal's two PostgreSQL databases and brings their schemas to the version of this
# admin-tools image (the temporalio/server image no longer does it itself). Runs as a one-shot
# service before the server starts, on every `docker-compose up`, so it must be safe to re-run:
# `create` and `setup-schema` may find their work already done ("already exists"), which is fine;
# `update-schema` is version-aware, and any other failure (wrong password, unreachable database)
# stops here loudly instead of leaving the server to start on a half-made schema.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS names the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required (temporal-sql-tool reads the password from it)}"
DB_PORT="${DB_PORT:-5432}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql() {
  temporal-sql-tool --plugin postgres12 --ep "${POSTGRES_SEEDS}" -p "${DB_PORT}" \
    -u "${POSTGRES_USER}" "$@"
}

# Runs a step; succeeds when it succeeds or when it only reports that its work is already done.
unless_done() {
  if output=$("$@" 2>&1); then
    return 0
  fi
  case "${output}" in
    *"already exists"*) echo "already done: $*" ;;
    *) echo "${output}" >&2; return 1 ;;
  esac
}

attempt=1
until nc -z "${POSTGRES_SEEDS}" "${DB_PORT}"; do
  if [ "${attempt}" -ge 60 ]; then
    echo "PostgreSQL at ${POSTGRES_SEEDS}:${DB_PORT} did not accept connections" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 1
done

for pair in temporal:temporal temporal_visibility:visibility; do
  database="${pair%%:*}"
  schema="${pair##*:}"
  unless_done sql --db "${database}" create
  unless_done sql --db "${database}" setup-schema -v 0.0
  sql --db "${database}" update-schema -d "${SCHEMA_ROOT}/${schema}/versioned"
  echo "schema of ${database} is current"
done
