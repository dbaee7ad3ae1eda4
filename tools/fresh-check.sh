#!/bin/sh
# fresh-check.sh — `make fresh-check`: prove that a fresh clone builds and
# runs on the first try on a machine that lacks what the build needs.
#
#   1. remove one -dev package the build needs (FRESH_PKG, default
#      liblua5.4-dev) and every node_modules of this checkout;
#   2. clone the committed repository into a temporary directory;
#   3. `make run` there (on spare ports) until /healthz answers, then stop it;
#   4. `make` again there, which must succeed and build nothing new.
#
# Root only (it removes and installs Debian packages); not part of make test.
# Leaves the machine with the package installed again and nothing running.
set -eu
cd "$(dirname "$0")/.."
repo=$PWD
pkg=${FRESH_PKG:-liblua5.4-dev}
limit=${FRESH_TIMEOUT:-900}

[ "$(id -u)" -eq 0 ] || { echo "fresh-check: needs root (it removes and reinstalls $pkg)" >&2; exit 2; }
if [ -n "$(git status --porcelain)" ]; then
  echo "fresh-check: note: uncommitted changes are not in the clone; it checks HEAD $(git rev-parse --short HEAD)"
fi

free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})" 2>/dev/null ||
              shuf -i 20000-40000 -n 1; }

# The shell's own kill cannot signal a process group in every sh; procps' can.
killgroup() { env kill -s "$1" -- "-$2" 2>/dev/null || true; }

work=$(mktemp -d /tmp/sluice-fresh.XXXXXX)
runpid=""
finish() {
  rc=$?
  if [ -n "$runpid" ]; then
    killgroup TERM "$runpid"; sleep 2; killgroup KILL "$runpid"
  fi
  if [ $rc -ne 0 ]; then
    cp "$work/run.log" /tmp/sluice-fresh-run.log 2>/dev/null || true
    echo "fresh-check: FAILED; the last lines of make run (all of it: /tmp/sluice-fresh-run.log):" >&2
    tail -n 30 "$work/run.log" 2>/dev/null >&2 || true
  fi
  rm -rf "$work"
  exit $rc
}
trap finish EXIT INT TERM

echo "fresh-check: removing $pkg and every node_modules"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$pkg" > /dev/null
find "$repo" -name node_modules -type d -prune -exec rm -rf {} +
# Node resolves modules from every parent directory: a stray one there would
# hide a missing install in the clone.
for d in /tmp/node_modules /node_modules; do
  [ -e "$d" ] && { echo "fresh-check: $d exists and would mask missing modules; remove it first" >&2; exit 1; }
done

git clone -q "$repo" "$work/sluice"
cd "$work/sluice"
port=$(free_port)
rport=$(free_port)
echo "fresh-check: make run in $work/sluice (port $port, redis $rport; up to ${limit}s)"
start=$(date +%s)
# A process group of its own, so stopping it stops sluiced, Redis and the workers.
setsid env SLUICE_PORT="$port" SLUICE_REDIS_PORT="$rport" make run > "$work/run.log" 2>&1 < /dev/null &
runpid=$!
until curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null 2>&1; do
  kill -0 "$runpid" 2>/dev/null || { echo "fresh-check: make run exited before /healthz answered" >&2; exit 1; }
  [ $(( $(date +%s) - start )) -lt "$limit" ] || { echo "fresh-check: /healthz did not answer within ${limit}s" >&2; exit 1; }
  sleep 1
done
echo "fresh-check: /healthz answered after $(( $(date +%s) - start ))s"
grep -q "^installing:.*$pkg" "$work/run.log" || { echo "fresh-check: make run did not install $pkg" >&2; exit 1; }
grep -q 'Token:  slc_' "$work/run.log" || { echo "fresh-check: make run printed no admin token" >&2; exit 1; }
killgroup TERM "$runpid"
wait "$runpid" 2>/dev/null || true
runpid=""

echo "fresh-check: make again"
make > "$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; echo "fresh-check: second make failed" >&2; exit 1; }
if grep -qE '^(cc|gcc) ' "$work/make.log"; then
  echo "fresh-check: the second make recompiled; the build is not idempotent" >&2
  exit 1
fi
dpkg-query -W -f='${Status}' "$pkg" | grep -q "install ok installed" ||
  { echo "fresh-check: $pkg was not reinstalled" >&2; exit 1; }
echo "fresh-check: passed ($pkg reinstalled, make run served /healthz, make is idempotent)"
