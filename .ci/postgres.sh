# Start a throw-away PostgreSQL server on 127.0.0.1 (Debian's packages) and export its URL for the tests.
PG_PORT=${PG_PORT:-54329}

start_postgres() {
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PGDATA_DIR=$(mktemp -d /tmp/oscsim-pg.XXXXXX)
  chown postgres: "$PGDATA_DIR"
  su postgres -s /bin/sh -c "$bin/initdb -D $PGDATA_DIR -A trust -U postgres >/dev/null"
  # settings in the data directory, so a test can stop and start the server with pg_ctl alone
  printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '/tmp'\nmax_connections = 200\n" \
    "$PG_PORT" >> "$PGDATA_DIR/postgresql.conf"
  su postgres -s /bin/sh -c "$bin/pg_ctl -D $PGDATA_DIR -w -l $PGDATA_DIR/server.log start >/dev/null"
  su postgres -s /bin/sh -c "$bin/createdb -h 127.0.0.1 -p $PG_PORT -U postgres oscsim_test"
  PG_BIN=$bin
  export OSCSIM_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PG_PORT/oscsim_test"
  # for the outage test: `su postgres -c "$OSCSIM_TEST_PG_CTL -D $OSCSIM_TEST_PGDATA stop|start"`
  export OSCSIM_TEST_PG_CTL="$bin/pg_ctl" OSCSIM_TEST_PGDATA="$PGDATA_DIR"
  echo "PostgreSQL running: $OSCSIM_TEST_POSTGRES_URL"
}

stop_postgres() {
  if [ -n "${PGDATA_DIR:-}" ]; then
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $PGDATA_DIR -m fast stop >/dev/null" || true
    rm -rf "$PGDATA_DIR"
  fi
}
