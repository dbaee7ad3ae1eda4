#!/bin/sh
# pg.sh — a throwaway PostgreSQL for the tests, run as the postgres user
# (PostgreSQL refuses root) in a temporary directory on a private port.
#   tools/pg.sh start DIR PORT   -> prints the URL to use
#   tools/pg.sh stop DIR         (and remove it)
#   tools/pg.sh halt DIR | resume DIR PORT   (an outage, for tests)
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
case $1 in
start)
  dir=$2 port=$3
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_pg "$bin/initdb -D '$dir/data' -U postgres --auth=trust -E UTF8 > '$dir/initdb.log' 2>&1"
  as_pg "$bin/pg_ctl -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off\" start > /dev/null"
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  as_pg "$bin/pg_ctl -D '$2/data' -m fast -w stop > /dev/null" || true
  rm -rf "$2"
  ;;
halt)      # stop the server, keep its data (outage tests)
  as_pg "$bin/pg_ctl -D '$2/data' -m fast -w stop > /dev/null"
  ;;
resume)    # start it again on the same port
  as_pg "$bin/pg_ctl -D '$2/data' -l '$2/server.log' -w -o \"-p $3 -k '$2' -c listen_addresses=127.0.0.1 -c fsync=off\" start > /dev/null"
  ;;
*) echo "usage: pg.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
