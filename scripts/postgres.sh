#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian's `postgresql`): loopback only, a private
# port, durability off (test data only). Sourced by scripts/test.sh:
#   source scripts/postgres.sh; postgres_start; trap postgres_stop EXIT
# exports CAIRN_TEST_POSTGRES_URL. Run directly (`scripts/postgres.sh start|stop DIR`) by hand.
# Installs the package when missing; initdb refuses root, so the cluster runs as `postgres`.

postgres_start() {
    if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
        echo "installing: postgresql (the tests' PostgreSQL registry)" >&2
        local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    CAIRN_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    # The first free port from 54329 (another test run, or a cluster started by hand, may hold one).
    CAIRN_PG_PORT="${CAIRN_PG_PORT:-54329}"
    while (exec 3<>"/dev/tcp/127.0.0.1/$CAIRN_PG_PORT") 2>/dev/null; do CAIRN_PG_PORT=$((CAIRN_PG_PORT + 1)); done
    CAIRN_PG_DIR=$(mktemp -d /tmp/cairn-pg.XXXXXX)
    local as=()
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$CAIRN_PG_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$CAIRN_PG_BIN/initdb" -D "$CAIRN_PG_DIR/data" -N -A trust -U postgres >/dev/null
    # One role that must give its password (SCRAM), for the tests of PGPASSWORD and PGPASSWORD_FILE.
    { echo "host all cairn_password 127.0.0.1/32 scram-sha-256"; cat "$CAIRN_PG_DIR/data/pg_hba.conf"; } > "$CAIRN_PG_DIR/hba"
    "${as[@]}" cp "$CAIRN_PG_DIR/hba" "$CAIRN_PG_DIR/data/pg_hba.conf"
    "${as[@]}" "$CAIRN_PG_BIN/pg_ctl" -D "$CAIRN_PG_DIR/data" -l "$CAIRN_PG_DIR/log" -w -o \
        "-p $CAIRN_PG_PORT -k $CAIRN_PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null
    "${as[@]}" "$CAIRN_PG_BIN/psql" -qX -h "$CAIRN_PG_DIR" -p "$CAIRN_PG_PORT" -U postgres -d postgres \
        -c "CREATE ROLE cairn_password LOGIN CREATEDB PASSWORD 'pg-test-password-2026'" >/dev/null
    export CAIRN_PG_BIN CAIRN_PG_DIR
    export CAIRN_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$CAIRN_PG_PORT/postgres?sslmode=disable"
    echo "postgres: a throwaway cluster on 127.0.0.1:$CAIRN_PG_PORT ($CAIRN_PG_DIR)" >&2
}

postgres_stop() {
    [ -n "${CAIRN_PG_DIR:-}" ] || return 0
    local as=()
    [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
    "${as[@]}" "$CAIRN_PG_BIN/pg_ctl" -D "$CAIRN_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$CAIRN_PG_DIR"
    CAIRN_PG_DIR=""
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
        start) postgres_start; echo "export CAIRN_TEST_POSTGRES_URL='$CAIRN_TEST_POSTGRES_URL' CAIRN_PG_DIR='$CAIRN_PG_DIR' CAIRN_PG_BIN='$CAIRN_PG_BIN'" ;;
        stop) CAIRN_PG_DIR="${2:?the cluster folder}"; CAIRN_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); postgres_stop ;;
        *) echo "usage: scripts/postgres.sh start | stop DIR" >&2; exit 2 ;;
    esac
fi
