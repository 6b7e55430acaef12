#!/usr/bin/env bash
# Run once by the postgres image on its first start (docker-entrypoint-initdb.d): lets the
# replica service (docker-compose.yml, profile "replica") stream WAL as the database owner,
# with the same password check as every other connection.
set -euo pipefail
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
