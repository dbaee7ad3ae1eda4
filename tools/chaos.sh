#!/bin/sh
# chaos.sh — `make chaos`: the long fault scenarios (spec/chaos/), on SQLite
# and, with a private PostgreSQL as tools/test.sh starts one, the replica
# scenarios. Prints the summary table; exits non-zero when an invariant
# broke. The full-volume scenario needs root (it mounts a tmpfs).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
case $BUILD in /*) export SLUICE_BUILD="$BUILD" ;; *) export SLUICE_BUILD="$PWD/$BUILD" ;; esac
rc=0
echo "== chaos on SQLite (a full volume too, when root)"
node spec/chaos/chaos.mjs || rc=1
pgdir=$(mktemp -d /tmp/sluice-pg.XXXXXX)
pgport=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
trap 'tools/pg.sh stop "$pgdir"' EXIT INT TERM
echo "== chaos on PostgreSQL (two replicas for the leader scenarios)"
if url=$(tools/pg.sh start "$pgdir" "$pgport"); then
  SLUICE_TEST_PG="$url" SLUICE_TEST_PG_DIR="$pgdir" node spec/chaos/chaos.mjs || rc=1
else
  echo "chaos: PostgreSQL did not start" >&2
  rc=1
fi
exit $rc
