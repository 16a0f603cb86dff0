#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for central's storage tests, on a free
# loopback port in a fresh temporary directory, and prints shell assignments
# to eval:
#
#   eval "$(central/tests/start-postgres.sh)"    # sets CENTRAL_TEST_PG_URL, CENTRAL_TEST_PG_DIR
#   cargo test -p central
#   central/tests/start-postgres.sh --stop       # stops it and removes the directory
#
# Installs Debian's `postgresql` with apt-get (with retries) when no server
# binaries are found and it runs as root. The server runs as a non-root user
# (PostgreSQL refuses root): the invoking user, or `postgres` when root.
set -euo pipefail

log() { echo "start-postgres: $*" >&2; }

find_bin() {
  local latest=""
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && latest=$dir
  done
  echo "$latest"
}

run_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  owner=postgres
fi

if [ "${1:-}" = "--stop" ]; then
  dir=${CENTRAL_TEST_PG_DIR:?CENTRAL_TEST_PG_DIR is not set: nothing to stop}
  bin=$(find_bin)
  if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
    run_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  case "$dir" in
    */central-pg.*) rm -rf "$dir" ;;
  esac
  exit 0
fi

bin=$(find_bin)
if [ -z "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; install them with: sudo apt-get install postgresql"
    exit 1
  fi
  log "installing postgresql"
  for attempt in 1 2 3 4 5; do
    if apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2; then
      break
    fi
    [ "$attempt" = 5 ] && { log "apt-get failed 5 times"; exit 1; }
    sleep $((attempt * 10))
  done
  bin=$(find_bin)
fi
if [ "$(id -u)" = 0 ] && ! id -u "$owner" >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/central-pg.XXXXXX")
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown "$owner" "$dir"

# A free port: one nothing answers on.
port=""
for candidate in $(seq 54330 54429); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port=$candidate
    break
  fi
done
[ -n "$port" ] || { log "no free port in 54330-54429"; exit 1; }

run_as_owner "$bin/initdb" -D "$dir/data" -U central --auth=trust -E UTF8 --lc-collate=C --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
run_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=1GB" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
log "PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir"

echo "export CENTRAL_TEST_PG_URL='postgres://central@127.0.0.1:$port/postgres'"
echo "export CENTRAL_TEST_PG_DIR='$dir'"
