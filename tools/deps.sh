#!/bin/sh
# deps.sh — install what Sluice needs on Debian 12, once.
#
# As root: apt-get update (only when something is missing), then install.
# Not root: print the exact command and stop, so nothing happens behind the
# user's back.
set -eu

PKGS="build-essential pkg-config libmicrohttpd-dev liblua5.4-dev libsqlite3-dev
libjansson-dev libssl-dev libhiredis-dev libpq-dev libcurl4-openssl-dev postgresql redis-server sqlite3 curl
ca-certificates chromium"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Sluice needs these Debian packages:$missing" >&2
    echo "Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
  fi
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

# npm packages: sluice-bullmq's own, then the tests' (each pinned by its
# lock file; the tests use sluice-bullmq from agents/bullmq).
if [ ! -d agents/bullmq/node_modules ] || [ agents/bullmq/package-lock.json -nt agents/bullmq/node_modules ]; then
  echo "installing sluice-bullmq's packages from npm (agents/bullmq/package-lock.json)"
  (cd agents/bullmq && npm ci --no-audit --no-fund --loglevel=error)
  touch agents/bullmq/node_modules
fi
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules ]; then
  echo "installing the UI's chart library from npm (ui/package-lock.json)"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  touch ui/node_modules
fi
if [ ! -d spec/node_modules ] || [ spec/package-lock.json -nt spec/node_modules ]; then
  echo "installing test packages from npm (spec/package-lock.json)"
  (cd spec && npm ci --no-audit --no-fund --loglevel=error)
  touch spec/node_modules
fi
