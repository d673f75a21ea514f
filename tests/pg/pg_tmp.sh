#!/usr/bin/env bash
# tests/pg/pg_tmp.sh: a throwaway PostgreSQL server for coil's tests and benchmarks.
#
#   pg_tmp.sh start STATE          initdb and start a server; STATE (a directory,
#                                  made if needed) gets `url`, the URL of its
#                                  `postgres` database, and `data`, the data path
#   pg_tmp.sh stop STATE           stop it and remove its files
#   pg_tmp.sh restart STATE [S]    stop it, wait S seconds (default 0), start it
#
# The server listens on a Unix socket only (no TCP), with trust auth, and with
# PostgreSQL's durable defaults (fsync on, synchronous_commit on). PostgreSQL
# refuses to run as root, so as root it runs as the `postgres` user that
# Debian's package creates. Without the PostgreSQL binaries, start says so
# in STATE/skipped and exits 77, which ctest reports as skipped; the tests
# that need the server find that file and skip too (exit 77).
set -euo pipefail

bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/postgres" ] && bin=$d; done

as_server() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

cmd=${1:-}
state=${2:-}
[ -n "$cmd" ] && [ -n "$state" ] || { echo "usage: $0 start|stop|restart STATE" >&2; exit 2; }

pg_start() {
  local data=$1 dir
  dir=$(dirname "$data")
  as_server "$bin/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 start >/dev/null
}

case "$cmd" in
start)
  mkdir -p "$state"
  rm -f "$state/skipped"
  if [ -z "$bin" ]; then
    msg="PostgreSQL is not installed (scripts/deps test installs it): the tests that need it are skipped"
    echo "$msg" >"$state/skipped"
    echo "pg_tmp.sh: $msg" >&2
    exit 77
  fi
  [ -f "$state/data" ] && "$0" stop "$state" || true
  dir=$(mktemp -d "${TMPDIR:-/tmp}/coil-pg.XXXXXX")
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  as_server "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  printf '%s\n' "listen_addresses = ''" "unix_socket_directories = '$dir'" \
    "max_connections = 400" "fsync = on" "synchronous_commit = on" \
    "shared_buffers = 128MB" >>"$dir/data/postgresql.conf"
  pg_start "$dir/data"
  echo "postgresql://postgres@/postgres?host=$dir" >"$state/url"
  echo "$dir/data" >"$state/data"
  cat "$state/url"
  ;;
stop)
  [ -f "$state/data" ] || exit 0
  data=$(cat "$state/data")
  as_server "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  case "$data" in */coil-pg.*/data) rm -rf "$(dirname "$data")" ;; esac
  rm -f "$state/url" "$state/data" "$state/skipped"
  ;;
restart)
  data=$(cat "$state/data")
  as_server "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  sleep "${3:-0}"
  pg_start "$data"
  ;;
*)
  echo "usage: $0 start|stop|restart STATE" >&2
  exit 2
  ;;
esac
