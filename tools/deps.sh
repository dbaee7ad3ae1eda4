#!/bin/sh
# deps.sh — install what Sluice needs on Debian 12, once.
#   tools/deps.sh build   compiler, -dev packages, Node.js and npm
#   tools/deps.sh run     build + redis-server (the demo behind `make run`)
#   tools/deps.sh test    run + PostgreSQL, Chromium, and the tests' npm packages
#   tools/deps.sh bench   run + wrk, libevent-dev and the tests' npm packages (make bench)
#
# As root: apt-get update (only when something is missing), then install.
# Not root: one line naming the exact command, exit 1, so nothing happens
# behind the user's back.
set -eu
cd "$(dirname "$0")/.."
tier=${1:-test}

BUILD_PKGS="build-essential pkg-config libmicrohttpd-dev liblua5.4-dev libsqlite3-dev
libjansson-dev libssl-dev libhiredis-dev libpq-dev libcurl4-openssl-dev ca-certificates"
RUN_PKGS="redis-server curl"
TEST_PKGS="postgresql sqlite3 chromium tzdata"
# wrk drives the read benchmark; the fleet simulator runs hiredis's async
# contexts on libevent (hiredis ships the adapter).
BENCH_PKGS="wrk libevent-dev"

case $tier in
build) want="$BUILD_PKGS" ;;
run)   want="$BUILD_PKGS $RUN_PKGS" ;;
test)  want="$BUILD_PKGS $RUN_PKGS $TEST_PKGS" ;;
bench) want="$BUILD_PKGS $RUN_PKGS $BENCH_PKGS" ;;
*) echo "usage: tools/deps.sh build|run|test|bench" >&2; exit 2 ;;
esac

# One dpkg-query for all of them: packages it does not know are missing too.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' $want 2>/dev/null |
            awk '/ install ok installed$/ {print $1}')
missing=""
for p in $want; do
  echo "$installed" | grep -qx "$p" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "sluice: missing Debian packages; install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
  fi
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

case $tier in test|bench) ;; *) exit 0 ;; esac

# npm packages for the tests, each pinned by its lock file (the UI's chart
# library is the build's business: see the Makefile). npm writes
# node_modules/.package-lock.json last, so its age tells a finished install.
for d in agents/bullmq spec; do
  if [ ! -f "$d/node_modules/.package-lock.json" ] ||
     [ "$d/package-lock.json" -nt "$d/node_modules/.package-lock.json" ]; then
    echo "installing npm packages for $d ($d/package-lock.json)"
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
