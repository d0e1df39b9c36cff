#!/usr/bin/env bash
# Runs once, when the postgres service initialises an empty data volume (docker-entrypoint-initdb.d):
# sitefleet's inventory database, owned by its own login role, next to Temporal's databases.
# The password comes from INVENTORY_DB_PASSWORD and reaches SQL as a psql variable, never spliced into the text.
if [ -z "${INVENTORY_DB_PASSWORD:-}" ]; then
  echo "init-inventory-db: INVENTORY_DB_PASSWORD is not set (see docs/production.md)" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=inventory_password="$INVENTORY_DB_PASSWORD" <<'SQL'
CREATE ROLE sitefleet LOGIN PASSWORD :'inventory_password';
CREATE DATABASE sitefleet OWNER sitefleet;
REVOKE ALL ON DATABASE sitefleet FROM PUBLIC;
SQL
